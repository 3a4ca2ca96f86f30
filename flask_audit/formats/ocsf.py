"""OCSF 1.3.0 events: each stored event in the class its vocabulary entry names.

An event type registered with ``ocsf="account_change:disable"`` becomes an Account Change event
with activity Disable; without a mapping, an API Activity whose activity is read from the type's
name (``*_created`` is Create, ``*_deleted`` Delete, ...). The fields OCSF has a place for go
there (``metadata.uid`` the event_id, ``actor.user.uid``, ``src_endpoint.ip``,
``http_request.user_agent``, ``status`` from the outcome); the rest go under ``unmapped``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask_audit.errors import AuditValidationError

if TYPE_CHECKING:
    from flask_audit.vocabulary import EventType

#: the schema version the events declare and the tests check against
OCSF_VERSION = "1.3.0"
PRODUCT = {"name": "flask-audit", "vendor_name": "flask-audit"}
OTHER = 99


@dataclass(frozen=True)
class OcsfClass:
    uid: int
    name: str
    category_uid: int
    category_name: str
    #: activity name -> activity_id, as the class's schema numbers them
    activities: dict[str, int]


_IAM = (3, "Identity & Access Management")
_CRUD = {"create": 1, "read": 2, "update": 3, "delete": 4}
CLASSES: dict[str, OcsfClass] = {
    "api_activity": OcsfClass(6003, "API Activity", 6, "Application Activity", _CRUD),
    "account_change": OcsfClass(
        3001,
        "Account Change",
        *_IAM,
        {
            "create": 1,
            "enable": 2,
            "password_change": 3,
            "password_reset": 4,
            "disable": 5,
            "delete": 6,
            "attach_policy": 7,
            "detach_policy": 8,
            "lock": 9,
            "mfa_factor_enable": 10,
            "mfa_factor_disable": 11,
        },
    ),
    "authentication": OcsfClass(3002, "Authentication", *_IAM, {"logon": 1, "logoff": 2}),
    "entity_management": OcsfClass(3004, "Entity Management", *_IAM, _CRUD),
}

#: words of an event type's name that say its activity, when its mapping names none
_VERBS = {
    "created": "create",
    "added": "create",
    "read": "read",
    "viewed": "read",
    "exported": "read",
    "updated": "update",
    "changed": "update",
    "rotated": "update",
    "upgraded": "update",
    "deleted": "delete",
    "removed": "delete",
    "enabled": "enable",
    "disabled": "disable",
    "locked": "lock",
    "logged_in": "logon",
    "login": "logon",
    "logged_out": "logoff",
    "logout": "logoff",
}
_SEVERITY = {"info": (1, "Informational"), "warning": (3, "Medium"), "critical": (5, "Critical")}
_STATUS = {"success": (1, "Success"), "failure": (2, "Failure"), "denied": (2, "Failure")}
#: the stored fields an OCSF attribute holds; the others go under ``unmapped``
_MAPPED = {
    "event_id",
    "created_at",
    "description",
    "user_id",
    "ip_address",
    "user_agent",
    "request_id",
    "tenant_id",
}


def check_mapping(mapping: str) -> tuple[str, str | None]:
    """``"class"`` or ``"class:activity"`` split and checked; the application's own mistake is
    refused with the field and the rule."""
    name, _, activity = mapping.partition(":")
    known = CLASSES.get(name)
    if known is None:
        raise AuditValidationError("ocsf", f"the class must be one of {', '.join(CLASSES)}, not {name!r}")
    if activity and activity not in known.activities:
        raise AuditValidationError(
            "ocsf", f"the activity of {name} must be one of {', '.join(known.activities)}, not {activity!r}"
        )
    return name, activity or None


def activity_of(event_type: str, ocsf_class: OcsfClass, given: str | None) -> tuple[int, str]:
    """(activity_id, activity_name): the mapping's activity, else one the type's name says."""
    if given is not None:
        return ocsf_class.activities[given], given.replace("_", " ").title()
    name = event_type.lower()
    for word, activity in _VERBS.items():
        if (
            name.endswith("_" + word) or name == word or f"_{word}_" in name
        ) and activity in ocsf_class.activities:
            return ocsf_class.activities[activity], activity.replace("_", " ").title()
    return OTHER, event_type


def to_ocsf(row: dict[str, Any], event_type: EventType | None, source: str) -> dict[str, Any]:
    """The OCSF event of one stored row (``to_dict``'s shape)."""
    class_name, given = (
        check_mapping(event_type.ocsf) if event_type and event_type.ocsf else ("api_activity", None)
    )
    ocsf_class = CLASSES[class_name]
    activity_id, activity_name = activity_of(row["event_type"], ocsf_class, given)
    severity_id, severity = _SEVERITY[row["event_category"]]
    status_id, status = _STATUS[row["outcome"]]
    moment = datetime.fromisoformat(row["created_at"])
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION,
        "product": PRODUCT,
        "uid": row["event_id"],
        "original_time": row["created_at"],
        "log_name": source,
    }
    if row.get("request_id"):
        metadata["correlation_uid"] = row["request_id"]
    if row.get("tenant_id"):
        metadata["tenant_uid"] = row["tenant_id"]
    event: dict[str, Any] = {
        "class_uid": ocsf_class.uid,
        "class_name": ocsf_class.name,
        "category_uid": ocsf_class.category_uid,
        "category_name": ocsf_class.category_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": ocsf_class.uid * 100 + activity_id,
        "type_name": f"{ocsf_class.name}: {activity_name}",
        "time": int(moment.timestamp() * 1000),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "metadata": metadata,
        "actor": {"user": {"uid": row["user_id"]}} if row.get("user_id") else {"app_name": source},
    }
    if row["outcome"] != "success":
        event["status_detail"] = row["outcome"]
    if row.get("description"):
        event["message"] = row["description"]
    if row.get("ip_address"):
        event["src_endpoint"] = {"ip": row["ip_address"]}
    if row.get("user_agent") or row.get("request_id"):
        event["http_request"] = {
            k: v for k, v in (("user_agent", row.get("user_agent")), ("uid", row.get("request_id"))) if v
        }
    _CLASS_FIELDS[class_name](event, row, source)
    event["unmapped"] = {k: v for k, v in row.items() if k not in _MAPPED and v is not None}
    return event


def _resource(row: dict[str, Any]) -> dict[str, Any]:
    found = {k: v for k, v in (("type", row.get("resource_type")), ("uid", row.get("resource_id"))) if v}
    return found or {"name": row["event_type"]}


def _target_user(row: dict[str, Any]) -> dict[str, Any]:
    """The account an IAM event is about: its resource when that is a user or an account, else
    the user who acted, else the name a failed login was tried with."""
    if row.get("resource_type") in ("user", "account") and row.get("resource_id"):
        return {"uid": row["resource_id"]}
    if row.get("user_id"):
        return {"uid": row["user_id"]}
    tried = (row.get("metadata") or {}).get("username")
    return {"name": tried if isinstance(tried, str) and tried else "unknown"}


def _api_activity(event: dict[str, Any], row: dict[str, Any], source: str) -> None:
    event["api"] = {"operation": row["event_type"], "service": {"name": source}}
    event.setdefault("src_endpoint", {"name": "unknown"})  # required: a background job has no client
    if row.get("resource_type") or row.get("resource_id"):
        event["resources"] = [_resource(row)]


def _account_change(event: dict[str, Any], row: dict[str, Any], source: str) -> None:
    event["user"] = _target_user(row)


def _authentication(event: dict[str, Any], row: dict[str, Any], source: str) -> None:
    event["user"] = _target_user(row)
    event["service"] = {"name": source}


def _entity_management(event: dict[str, Any], row: dict[str, Any], source: str) -> None:
    event["entity"] = _resource(row)
    if row.get("description"):
        event["comment"] = row["description"]


_CLASS_FIELDS = {
    "api_activity": _api_activity,
    "account_change": _account_change,
    "authentication": _authentication,
    "entity_management": _entity_management,
}
