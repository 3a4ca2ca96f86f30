"""The app `bench/load.py` puts under load: one route that answers "ok", and the same route with
one `audit.log`. Configured from the environment (AUDIT_*), like any app."""

from __future__ import annotations

from flask import Flask

from flask_audit import FlaskAudit


def create_app() -> Flask:
    app = Flask(__name__)
    audit = FlaskAudit(app, user_loader=lambda: "load-user")

    @app.get("/plain")
    def plain() -> str:
        return "ok"

    @app.get("/audited")
    def audited() -> str:
        audit.log("page_viewed", resource_type="page", resource_id="1")
        return "ok"

    return app
