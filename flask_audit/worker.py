"""Entry point of ``dramatiq flask_audit.worker``: finds the app like ``flask`` does (FLASK_APP),
builds its broker, sets it as Dramatiq's broker and declares the drain actor on it."""

from __future__ import annotations

import os

from flask import Flask
from flask.cli import ScriptInfo

from flask_audit.pipeline.tasks import setup


def load_app() -> Flask:
    """The app named by FLASK_APP (a module, ``module:app`` or ``module:create_app()``)."""
    return ScriptInfo(app_import_path=os.environ.get("FLASK_APP")).load_app()


app = load_app()
broker, actors = setup(app.extensions["audit"].runtime(app), vocabulary=app.extensions["audit"].vocabulary)
