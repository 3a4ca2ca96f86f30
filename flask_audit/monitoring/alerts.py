"""Alerts: the clock evaluates the rules, logs the original design's messages, and POSTs them to
AUDIT_ALERT_WEBHOOK_URL once per condition, again after the cooldown, and resolved when it clears.

The decision (``decide``) is pure. State lives in Redis so a new leading clock keeps the cooldowns.
Webhooks are sent by one background thread through a bounded queue: a slow or dead endpoint
never holds up the clock, let alone the drain. They go to http or https URLs only, follow no
redirect, are retried twice with back-off, carry a ``timestamp``, and are signed with
AUDIT_ALERT_WEBHOOK_SECRET when it is set (``X-Audit-Signature: sha256=<hex>``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import redis

from flask_audit.monitoring.health import ALERT_RULES, Finding

logger = logging.getLogger(__name__)

#: seconds a webhook POST may take before it is abandoned
WEBHOOK_TIMEOUT = 5.0
#: notifications waiting for the webhook thread; past this they are logged and dropped
WEBHOOK_BACKLOG = 100
#: seconds to wait before each retry of a failed POST (two retries)
WEBHOOK_RETRY_DELAYS = (1.0, 3.0)
SIGNATURE_HEADER = "X-Audit-Signature"


@dataclass
class AlertState:
    """What was last said about one rule."""

    issue: str
    severity: str
    firing_since: float
    last_sent: float


@dataclass(frozen=True)
class Notice:
    status: str  # "firing" | "resolved"
    rule: str
    severity: str
    text: str
    value: float | None = None
    threshold: float | None = None
    action: str | None = None

    def payload(self) -> dict[str, Any]:
        """Slack-compatible (``text``) plus the structured fields."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def decide(
    active: list[Finding], state: dict[str, AlertState], now: float, cooldown: float
) -> tuple[list[Notice], dict[str, AlertState]]:
    """Which notices to send now, and the state after sending them."""
    notices: list[Notice] = []
    new_state: dict[str, AlertState] = {}
    for finding in active:
        if finding.rule not in ALERT_RULES:
            continue
        previous = state.get(finding.rule)
        if previous is None or now - previous.last_sent >= cooldown:
            notices.append(
                Notice(
                    "firing",
                    finding.rule,
                    finding.severity,
                    finding.alert_text,
                    finding.value,
                    finding.threshold,
                    finding.action,
                )
            )
            sent = now
        else:
            sent = previous.last_sent
        since = previous.firing_since if previous else now
        new_state[finding.rule] = AlertState(finding.issue, finding.severity, since, sent)
    for rule, previous in state.items():
        if rule not in new_state:
            notices.append(Notice("resolved", rule, previous.severity, f"✅ RESOLVED: {previous.issue}"))
    return notices, new_state


class Alerter:
    """Keeps alert state in Redis and delivers notices to the log and the webhook."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        webhook_url: str | None,
        cooldown: float,
        *,
        secret: str | None = None,
        retry_delays: tuple[float, ...] | None = None,
    ) -> None:
        self.client = client
        self.key = key
        self.webhook_url = webhook_url
        self.cooldown = cooldown
        self.secret = secret
        self.retry_delays = WEBHOOK_RETRY_DELAYS if retry_delays is None else retry_delays
        self._outbox: queue.Queue[Notice] = queue.Queue(maxsize=WEBHOOK_BACKLOG)
        self._sender: threading.Thread | None = None

    def evaluate(self, active: list[Finding], now: float) -> list[Notice]:
        """Decide, log, queue the webhooks, and save the state; returns the notices."""
        state = {
            rule.decode(): AlertState(**orjson.loads(raw))
            for rule, raw in self.client.hgetall(self.key).items()
        }
        notices, new_state = decide(active, state, now, self.cooldown)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self.key)
            if new_state:
                pipe.hset(self.key, mapping={rule: orjson.dumps(asdict(s)) for rule, s in new_state.items()})
            pipe.execute()
        for notice in notices:
            log = (
                logger.critical
                if notice.severity == "critical" and notice.status == "firing"
                else logger.warning
            )
            log(notice.text)
            if self.webhook_url:
                self._post_later(notice)
        return notices

    def _post_later(self, notice: Notice) -> None:
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(
                target=self._send_forever, name="audit-alert-webhook", daemon=True
            )
            self._sender.start()
        try:
            self._outbox.put_nowait(notice)
        except queue.Full:
            logger.error("alert webhook backlog full, not sent: %s", notice.text)

    def _send_forever(self) -> None:
        while True:
            notice = self._outbox.get()
            try:
                self._send(notice)
            finally:
                self._outbox.task_done()

    def _send(self, notice: Notice) -> None:
        """POST one notice, retrying with back-off; the endpoint's trouble is logged, not raised."""
        body = {**notice.payload(), "timestamp": int(time.time())}
        for attempt, delay in enumerate((*self.retry_delays, None)):
            try:
                post_json(self.webhook_url or "", body, secret=self.secret)
                return
            except Exception as exc:  # the endpoint's trouble, not ours: retry, then log and go on
                if delay is None:
                    logger.error(
                        "alert webhook failed after %d attempts (%s): %s", attempt + 1, exc, notice.text
                    )
                    return
                time.sleep(delay)

    def join(self, timeout: float = 10.0) -> None:
        """Wait until the queued webhooks are sent (tests, shutdown)."""
        deadline = threading.Event()
        waiter = threading.Thread(target=lambda: (self._outbox.join(), deadline.set()), daemon=True)
        waiter.start()
        deadline.wait(timeout)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is refused: the alert must not be sent somewhere else."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to {newurl} refused", headers, fp)


_opener = urllib.request.build_opener(_NoRedirect)


def sign(body: bytes, secret: str) -> str:
    """The X-Audit-Signature value: ``sha256=`` and the HMAC-SHA256 of the raw body, in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_json(url: str, body: dict[str, Any], *, secret: str | None = None) -> int:
    """POST ``body`` as JSON to an http or https URL, without following redirects."""
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise ValueError("the alert webhook must be an http or https URL")
    data = orjson.dumps(body)
    headers = {"Content-Type": "application/json", "User-Agent": "flask-audit"}
    if secret:
        headers[SIGNATURE_HEADER] = sign(data, secret)
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)
    with _opener.open(request, timeout=WEBHOOK_TIMEOUT) as response:
        return response.status
