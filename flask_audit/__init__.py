"""flask-audit: audit logging for Flask that never slows a request and never loses an event."""

from flask_audit.errors import AuditConfigError, AuditError, AuditValidationError, AuditWriteError
from flask_audit.events.event import AuditEvent
from flask_audit.extension import FlaskAudit

__all__ = [
    "AuditConfigError",
    "AuditError",
    "AuditEvent",
    "AuditValidationError",
    "AuditWriteError",
    "FlaskAudit",
]
__version__ = "0.1.0"
