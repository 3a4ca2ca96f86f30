"""The exceptions callers of flask_audit see; driver errors are translated into these at the edge."""

import redis


class AuditError(Exception):
    """Base class of every error flask_audit raises on purpose."""


class AuditValidationError(AuditError, ValueError):
    """An event failed validation. ``field`` names the field, ``rule`` the rule it broke."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class AuditWriteError(AuditError):
    """An event could not be stored anywhere (database, Redis and spool all failed)."""


class TransientStoreError(AuditError):
    """The database could not be reached or is not ready: keep the events and retry later."""


class RejectedError(AuditError):
    """The database refused the rows themselves: retrying will not help."""


class DatabaseUnavailable(Exception):
    """Raised by the drain actor so that Dramatiq retries it with back-off; the events stay in
    Redis. Not an AuditError: it never reaches the application."""


class AuditConfigError(AuditError, ValueError):
    """A configuration key holds a value the extension cannot use."""

    def __init__(self, key: str, rule: str) -> None:
        super().__init__(f"{key}: {rule}")
        self.key = key
        self.rule = rule


class StreamDeliveryError(Exception):
    """The log stream's endpoint did not accept a batch (refused, unreachable, too slow or
    redirecting): the batch is sent again after a back-off. Never reaches the application."""


class StreamCursorMoved(Exception):
    """Another sender moved the log stream's cursor: this one stops and reads it again."""


class ReplicationShortfall(redis.RedisError):
    """A push reached the master but not the replicas AUDIT_REDIS_WAIT_REPLICAS asks for in time:
    a failover now could lose it. ``accepted`` entries are in the queue."""

    def __init__(self, accepted: int, replicas: int, wanted: int) -> None:
        super().__init__(f"pushed to the master, confirmed by {replicas} of {wanted} replicas")
        self.accepted = accepted
        self.replicas = replicas
        self.wanted = wanted
