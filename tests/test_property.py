"""Property: whatever text, numbers and nested metadata reach an event, through log (direct and
buffered), critical and @audited, every accepted event_id is stored exactly once on the real Redis
and PostgreSQL, and nothing is raised."""

from __future__ import annotations

import urllib.parse
import uuid
from collections import Counter

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flask_audit.events.event import decode_entry
from flask_audit.integrity.seals import uuid_bytes, uuids_bytes
from flask_audit.pipeline.drain import Drainer

#: every code point, lone surrogates and control characters included
ANY_CHAR = st.characters(codec=None, categories=None)
TEXT = st.text(ANY_CHAR, max_size=400)
CLIENT_VALUE = st.one_of(st.none(), TEXT, st.integers(), st.binary(max_size=64))
JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), TEXT
)
METADATA = st.dictionaries(
    st.one_of(TEXT, st.integers()),
    st.recursive(
        JSON_LEAF,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
        max_leaves=20,
    ),
    max_size=6,
)
EVENT = st.fixed_dictionaries(
    {},
    optional={
        "user_id": CLIENT_VALUE,
        "resource_type": CLIENT_VALUE,
        "resource_id": CLIENT_VALUE,
        "description": CLIENT_VALUE,
        "metadata": st.one_of(st.none(), METADATA),
        "ip_address": st.one_of(st.none(), TEXT, st.ip_addresses().map(str)),
        "user_agent": CLIENT_VALUE,
        "request_id": CLIENT_VALUE,
    },
)


def test_any_client_input_is_stored_exactly_once(make_app, real_redis_client, key_prefix, pg_url):
    direct_app, direct = make_app(
        redis_client=real_redis_client, AUDIT_KEY_PREFIX=key_prefix, AUDIT_DATABASE_URL=pg_url
    )
    buffered_app, buffered = make_app(
        redis_client=real_redis_client,
        AUDIT_KEY_PREFIX=key_prefix,
        AUDIT_DATABASE_URL=pg_url,
        AUDIT_BUFFERED=True,
        AUDIT_BUFFER_FLUSH_MS=60000,
        create_schema=False,
    )

    @direct_app.route("/items/<item_id>", methods=["POST"])
    @direct.audited("item_changed", resource_id="item_id")
    def change(item_id):
        return "ok"

    accepted: list[str] = []
    client = direct_app.test_client()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(fields=EVENT, path=TEXT.filter(bool), agent=TEXT)
    def run(fields, path, agent):
        with direct_app.test_request_context("/", environ_base={"HTTP_USER_AGENT": agent}):
            accepted.append(direct.log("direct_event", **fields))
            accepted.append(direct.critical("critical_event", **fields))
        with buffered_app.app_context():
            accepted.append(buffered.log("buffered_event", **fields))
        encoded = urllib.parse.quote(path.encode("utf-8", "surrogatepass"), safe="")
        before = direct.runtime(direct_app).queue.depth()
        response = client.post(f"/items/{encoded}", environ_overrides={"HTTP_USER_AGENT": agent})
        # a decoded "/" makes a path the router does not match (308 or 404): then no view ran
        assert response.status_code in (200, 308, 404)
        if response.status_code == 200:
            (raw,) = direct.runtime(direct_app).queue.client.lrange(
                direct.runtime(direct_app).config.queue_key, 0, 0
            )
            assert direct.runtime(direct_app).queue.depth() == before + 1
            accepted.append(decode_entry(raw)["event_id"])

    run()
    buffered.runtime(buffered_app).buffer.flush()
    runtime = direct.runtime(direct_app)
    result = Drainer(runtime.background_queue, runtime.store).drain_all(1000)
    assert result.failed == 0
    stored = Counter(runtime.store.event_ids())
    assert set(stored) == set(accepted)
    assert max(stored.values()) == 1 and len(accepted) == len(set(accepted))
    assert runtime.background_queue.failed_length() == 0


@given(st.uuids())
def test_a_leaf_packs_the_event_id_as_uuid_does(value):
    assert uuid_bytes(str(value)) == value.bytes


@given(st.text(max_size=40))
def test_what_uuid_refuses_the_leaf_packer_refuses_too(text):
    try:
        expected = uuid.UUID(text).bytes
    except ValueError:
        with pytest.raises(ValueError):
            uuid_bytes(text)
    else:
        assert uuid_bytes(text) == expected


def _one_by_one(texts):
    try:
        return [uuid_bytes(text) for text in texts]
    except ValueError:
        return ValueError


#: strings shaped like hyphenated UUIDs, some not quite: a space, a stray dash, a letter past f
_NEAR_UUIDS = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.from_regex(r"\A[0-9a-fA-F -]{8}-[0-9a-f -]{4}-[0-9a-g -]{4}-[0-9a-f]{4}-[0-9a-f -]{12}\Z"),
    st.text(alphabet="0123456789abcdef- ", min_size=30, max_size=40),
)


@given(st.lists(_NEAR_UUIDS, max_size=20))
# a dash too many in one, too few in the next: the right count in all, and not one UUID between them
@example(["01234567-89ab-cdef-0123-4567-89abcde", "01234567-89ab-cdef-0123456789abcdef0"])
def test_a_seal_packs_its_event_ids_all_at_once_as_one_by_one(texts):
    """The sealer converts a seal's event ids in one go; what it gives, or refuses, is what the
    one-by-one conversion gives."""
    expected = _one_by_one(texts)
    if expected is ValueError:
        with pytest.raises(ValueError):
            uuids_bytes(texts)
    else:
        assert uuids_bytes(texts) == expected
