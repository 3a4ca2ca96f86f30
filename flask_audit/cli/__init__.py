"""The ``flask audit`` command group."""

from flask_audit.cli.commands import audit_cli

__all__ = ["audit_cli"]
