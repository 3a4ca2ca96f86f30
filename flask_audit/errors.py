"""The exceptions callers of flask_audit see; driver errors are translated into these at the edge."""


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


class AuditConfigError(AuditError, ValueError):
    """A configuration key holds a value the extension cannot use."""

    def __init__(self, key: str, rule: str) -> None:
        super().__init__(f"{key}: {rule}")
        self.key = key
        self.rule = rule
