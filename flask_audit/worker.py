"""Entry point of ``dramatiq flask_audit.worker``: finds the app like ``flask`` does (FLASK_APP),
builds its broker, sets it as Dramatiq's broker and declares the drain actor on it."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.cli import ScriptInfo

from flask_audit.pipeline.tasks import setup


def load_app() -> Flask:
    """The app named by FLASK_APP (a module, ``module:app`` or ``module:create_app()``)."""
    return ScriptInfo(app_import_path=os.environ.get("FLASK_APP")).load_app()


def outbox_engines_of(app: Flask) -> Callable[[], list[Any]] | None:
    """The databases of the models the app tracks (in its context: Flask-SQLAlchemy's engines
    live there); None when it tracks none."""
    tracker = app.extensions["audit"].tracker
    if tracker is None:
        return None

    def engines() -> list[Any]:
        with app.app_context():
            return tracker.engines()

    return engines


app = load_app()
broker, actors = setup(
    app.extensions["audit"].runtime(app),
    vocabulary=app.extensions["audit"].vocabulary,
    outbox_engines=outbox_engines_of(app),
)
