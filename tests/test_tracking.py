"""Model change tracking: what `audit.track` records for commits, rollbacks, savepoints,
relationships and bulk statements, on PostgreSQL and SQLite, with plain SQLAlchemy sessions and
with Flask-SQLAlchemy; the records travel the outbox, the relay and the drain like any event."""

from __future__ import annotations

import pytest

sa = pytest.importorskip("sqlalchemy")  # the 'sqlalchemy' extra; CI installs it (dev extra)

from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship  # noqa: E402

from flask_audit.integrations.outbox import relay_all  # noqa: E402
from flask_audit.integrations.sqlalchemy import MASKED  # noqa: E402
from flask_audit.pipeline.drain import Drainer  # noqa: E402


class Base(DeclarativeBase):
    pass


members = sa.Table(
    "team_members",
    Base.metadata,
    sa.Column("team_id", sa.ForeignKey("teams.id"), primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id"), primary_key=True),
)


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    email: Mapped[str | None] = mapped_column(sa.String(120))
    password_hash: Mapped[str | None] = mapped_column(sa.String(120))
    api_token: Mapped[str | None] = mapped_column(sa.String(64))
    last_seen: Mapped[str | None] = mapped_column(sa.String(40))
    balance: Mapped[float] = mapped_column(sa.Numeric(12, 2), default=0)


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id"))
    owner: Mapped[Account | None] = relationship(foreign_keys=[owner_id])
    members: Mapped[list[Account]] = relationship(secondary=members)


@pytest.fixture(params=["sqlite", "postgresql"])
def tracked(request, make_app, fake_redis, tmp_path):
    """(app, audit, engine, records): Account and Team tracked on an app database of each kind;
    ``records()`` relays the outbox, drains, and returns the stored change events, oldest first."""
    if request.param == "postgresql":
        pg_url = request.getfixturevalue("pg_url")
        engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg2://", 1))
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS team_members, teams, accounts, audit_outbox CASCADE")
    else:
        engine = sa.create_engine(f"sqlite:///{tmp_path}/app.db")
    Base.metadata.create_all(engine)
    app, audit = make_app(redis_client=fake_redis, user_loader=lambda: "admin-7", tenant_loader=lambda: "t1")
    audit.track(Account, exclude=["last_seen"], mask=["email"], engine=engine)
    audit.track(Team, engine=engine)
    with app.app_context():
        audit.tracker.install()
    runtime = audit.runtime(app)

    def records():
        with app.app_context():
            relay_all(audit.tracker.engines(), runtime)
        Drainer(runtime.queue, runtime.store).drain_all(1000)
        model = runtime.store.model
        return list(model.select().order_by(model.id))

    yield app, audit, engine, records
    engine.dispose()


def test_create_update_delete_are_recorded_with_their_changes_and_the_request(tracked):
    app, audit, engine, records = tracked
    with app.test_request_context(
        "/accounts",
        headers={"X-Request-ID": "req-9", "User-Agent": "curl/8"},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    ):
        with Session(engine, expire_on_commit=False) as session, session.begin():
            account = Account(name="ada", email="ada@example.com", password_hash="h1", last_seen="now")
            session.add(account)
        with Session(engine, expire_on_commit=False) as session, session.begin():
            account = session.get(Account, account.id)
            account.email = "ada@example.org"
            account.password_hash = "h2"
            account.last_seen = "later"  # excluded: no change recorded for it
        with Session(engine, expire_on_commit=False) as session, session.begin():
            session.get(Account, account.id).last_seen = "again"  # only an excluded field: no event
        with Session(engine, expire_on_commit=False) as session, session.begin():
            session.delete(session.get(Account, account.id))
    rows = records()
    assert [r.event_type for r in rows] == ["account_created", "account_updated", "account_deleted"]
    created, updated, deleted = rows
    assert created.metadata["changes"]["name"] == [None, "ada"]
    assert created.metadata["changes"]["email"] == [MASKED, MASKED]  # masked: changed, values hidden
    assert created.metadata["changes"]["password_hash"] == "[REDACTED]"  # a sensitive name: redacted
    assert "last_seen" not in created.metadata["changes"]
    assert updated.metadata["changes"] == {"email": [MASKED, MASKED], "password_hash": "[REDACTED]"}
    assert deleted.metadata["changes"]["name"] == ["ada", None]
    assert "ada@example" not in str([r.metadata for r in rows]) and "h2" not in str(
        [r.metadata for r in rows]
    )
    for row in rows:
        assert (row.resource_type, row.resource_id) == ("accounts", str(account.id))
        assert (row.user_id, row.tenant_id, row.request_id) == ("admin-7", "t1", "req-9")
        assert (row.ip_address, row.user_agent) == ("10.1.2.3", "curl/8")
        assert row.metadata["via"] == "orm"


def test_a_rollback_records_nothing_and_a_rolled_back_savepoint_drops_only_its_own(tracked):
    app, audit, engine, records = tracked
    with Session(engine, expire_on_commit=False) as session:
        session.add(Account(name="never"))
        session.flush()  # written to the outbox, then rolled back with the change
        session.rollback()
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add(Account(name="kept"))
        savepoint = session.begin_nested()
        session.add(Account(name="dropped"))
        session.flush()
        savepoint.rollback()
        with session.begin_nested():  # released: its record stays
            session.add(Account(name="released"))
    names = [r.metadata["changes"]["name"][1] for r in records()]
    assert sorted(names) == ["kept", "released"]


def test_relationship_changes_name_the_related_keys(tracked):
    app, audit, engine, records = tracked
    with Session(engine, expire_on_commit=False) as session, session.begin():
        ada, bob = Account(name="ada"), Account(name="bob")
        team = Team(name="core", owner=ada, members=[ada])
        session.add_all([ada, bob, team])
    records()
    with Session(engine, expire_on_commit=False) as session, session.begin():
        team = session.get(Team, team.id)
        team.owner = session.get(Account, bob.id)
        team.members.remove(session.get(Account, ada.id))
        team.members.append(session.get(Account, bob.id))
    changes = {}  # each flush records what it wrote: the autoflush of a get() splits this one
    for row in records():
        if row.event_type == "team_updated":
            changes.update(row.metadata["changes"])
    assert changes["owner"] == [str(ada.id), str(bob.id)]
    assert changes["owner_id"] == [ada.id, bob.id]
    assert changes["members"] == {"added": [str(bob.id)], "removed": [str(ada.id)]}


def test_sensitive_column_names_are_redacted_as_any_metadata_is(tracked):
    app, audit, engine, records = tracked
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add(Account(name="ada", api_token="tok-123"))
    row = records()[-1]
    assert row.metadata["changes"]["api_token"] == "[REDACTED]"
    assert "tok-123" not in str(row.metadata)


def test_a_bulk_update_bypasses_orm_tracking(tracked):
    """Documented: without triggers, a bulk statement is not seen (the trigger test shows it is with them)."""
    app, audit, engine, records = tracked
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add(Account(name="ada"))
    before = len(records())
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.execute(sa.update(Account).values(email="bulk@example.com"))
    assert len(records()) == before


def test_track_refuses_what_it_cannot_record(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)
    with pytest.raises(ValueError, match="'nickname' is not an attribute"):
        audit.track(Account, exclude=["nickname"], engine=sa.create_engine("sqlite://"))
    with pytest.raises(ValueError, match="pass engine= for a model that is not Flask-SQLAlchemy's"):
        audit.track(Account)
    with pytest.raises(ValueError, match="one-column primary key"):
        audit.track(
            sa.orm.aliased(Account).__class__ if False else _two_key_model(),
            engine=sa.create_engine("sqlite://"),
        )


def _two_key_model():
    class Pair(Base):
        __tablename__ = "pairs"
        a: Mapped[int] = mapped_column(primary_key=True)
        b: Mapped[int] = mapped_column(primary_key=True)

    return Pair


def test_trigger_mode_records_bulk_statements_and_raw_sql_with_the_request(make_app, fake_redis, pg_url):
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS team_members, teams, accounts, audit_outbox CASCADE")
    Base.metadata.create_all(engine)
    app, audit = make_app(redis_client=fake_redis, user_loader=lambda: "admin-7", AUDIT_DATABASE_URL=pg_url)
    audit.track(Account, triggers=True, exclude=["last_seen"], mask=["email"], engine=engine)
    migrated = app.test_cli_runner().invoke(args=["audit", "migrate"])
    assert "trigger on accounts" in migrated.output, migrated.output
    runtime = audit.runtime(app)
    with app.test_request_context("/bulk", headers={"X-Request-ID": "req-bulk"}):
        with Session(engine, expire_on_commit=False) as session, session.begin():
            session.add_all([Account(name=f"a{i}", email=f"{i}@example.com") for i in range(3)])
        with Session(engine) as session, session.begin():
            session.execute(sa.update(Account).values(balance=10))  # bulk: one event per row
    with engine.begin() as conn:  # raw SQL, outside any request
        conn.exec_driver_sql("DELETE FROM accounts WHERE name = 'a0'")
        conn.exec_driver_sql("UPDATE accounts SET id = id + 1000 WHERE name = 'a1'")  # a key change
    with app.app_context():
        relay_all(audit.tracker.engines(), runtime)
    Drainer(runtime.queue, runtime.store).drain_all(1000)
    rows = list(runtime.store.model.select().order_by(runtime.store.model.id))
    kinds = [r.event_type for r in rows]
    assert kinds.count("account_created") == 3 and kinds.count("account_updated") == 5
    assert kinds.count("account_deleted") == 1 and len(rows) == 9  # the ORM recorded nothing twice
    moved = [r for r in rows if r.event_type == "account_updated" and "id" in r.metadata["changes"]]
    old_key, new_key = sorted(moved, key=lambda r: r.metadata["changes"]["id"][0] is None)
    assert old_key.metadata["changes"]["id"][1] is None and new_key.metadata["changes"]["id"][0] is None
    assert int(new_key.resource_id) == int(old_key.resource_id) + 1000
    created = next(r for r in rows if r.event_type == "account_created")
    assert created.metadata["via"] == "trigger"
    assert created.metadata["changes"]["email"] == [MASKED, MASKED]
    assert "last_seen" not in created.metadata["changes"]
    updated = next(r for r in rows if r.event_type == "account_updated")
    assert updated.metadata["changes"] == {"balance": [0, 10]}
    assert (updated.user_id, updated.request_id) == ("admin-7", "req-bulk")
    deleted = next(r for r in rows if r.event_type == "account_deleted")
    assert deleted.user_id is None and deleted.metadata["changes"]["name"] == ["a0", None]
    assert all(r.resource_type == "accounts" and r.resource_id for r in rows)
    engine.dispose()


def test_flask_sqlalchemy_models_need_no_engine_and_record_the_request(make_app, fake_redis, tmp_path):
    flask_sqlalchemy = pytest.importorskip("flask_sqlalchemy")
    app, audit = make_app(redis_client=fake_redis, user_loader=lambda: "u-1")
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path}/fsa.db"
    db = flask_sqlalchemy.SQLAlchemy(app)

    class Invoice(db.Model):
        id: Mapped[int] = mapped_column(primary_key=True)
        total: Mapped[int] = mapped_column()

    audit.track(Invoice)
    with app.app_context():
        db.create_all()
    assert app.test_cli_runner().invoke(args=["audit", "migrate"]).exit_code == 0
    with app.test_request_context("/invoices"):
        invoice = Invoice(total=5)
        db.session.add(invoice)
        db.session.commit()
        invoice.total = 7
        db.session.commit()
    runtime = audit.runtime(app)
    with app.app_context():
        relay_all(audit.tracker.engines(), runtime)
    Drainer(runtime.queue, runtime.store).drain_all(100)
    rows = list(runtime.store.model.select().order_by(runtime.store.model.id))
    assert [(r.event_type, r.resource_type, r.user_id) for r in rows] == [
        ("invoice_created", "invoice", "u-1"),
        ("invoice_updated", "invoice", "u-1"),
    ]
    assert rows[1].metadata["changes"] == {"total": [5, 7]}


def test_without_migrate_the_first_recorded_flush_creates_the_outbox(make_app, fake_redis, tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/fresh.db")
    Base.metadata.create_all(engine)
    app, audit = make_app(redis_client=fake_redis)
    audit.track(Account, engine=engine)
    assert not sa.inspect(engine).has_table("audit_outbox")
    with Session(engine) as session:  # the first try rolls back: the new outbox goes with it
        session.add(Account(name="gone"))
        session.flush()
        session.rollback()
    with Session(engine) as session, session.begin():
        session.add(Account(name="kept"))
    assert sa.inspect(engine).has_table("audit_outbox")
    runtime = audit.runtime(app)
    with app.app_context():
        relay_all(audit.tracker.engines(), runtime)
    Drainer(runtime.queue, runtime.store).drain_all(100)
    assert [r.metadata["changes"]["name"][1] for r in runtime.store.model.select()] == ["kept"]
