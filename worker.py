"""Worker entry for the example app, so that ``dramatiq worker`` works from the repository root.

Any other app: ``FLASK_APP=yourapp dramatiq flask_audit.worker``.
"""

import os

os.environ.setdefault("FLASK_APP", "examples.app")

from flask_audit.worker import actors, app, broker

__all__ = ["actors", "app", "broker"]
