"""flask-audit: audit logging for Flask that never slows a request and never loses an event."""

from .errors import AuditConfigError, AuditError, AuditValidationError, AuditWriteError
from .event import AuditEvent
from .extension import FlaskAudit

__all__ = [
    "AuditConfigError",
    "AuditError",
    "AuditEvent",
    "AuditValidationError",
    "AuditWriteError",
    "FlaskAudit",
]
__version__ = "0.1.0"
