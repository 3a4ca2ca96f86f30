"""Screenshots of the audit viewer for the README: the list at desktop and phone width, and an
event's details. Rerun after changing the viewer:

    python tools/viewer_screenshots.py   # writes docs/viewer-*.png

Serves a demo app (SQLite in a temporary folder, an in-memory Redis) on loopback with a few
hundred sealed events, and photographs it with Debian's headless Chromium.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import tempfile
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import fakeredis
from flask import Flask
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask_audit import FlaskAudit  # noqa: E402
from flask_audit.events.event import build_event  # noqa: E402
from flask_audit.integrity.sealer import seal_pending  # noqa: E402
from flask_audit.vocabulary import ORIGINAL_DESIGN  # noqa: E402
from tests.processes import CHROMIUM_FLAGS  # noqa: E402

SHOTS = (
    ("viewer-desktop.png", "1280,860", "/audit/?token=demo-token"),
    ("viewer-phone.png", "390,844", "/audit/?token=demo-token"),
    ("viewer-detail.png", "1280,860", None),
)


def demo_app(folder: str) -> tuple[Flask, FlaskAudit, list]:
    app = Flask("demo", instance_path=folder)
    audit = FlaskAudit(
        app,
        redis=fakeredis.FakeRedis(),
        AUDIT_TESTING=False,
        AUDIT_DATABASE_URL=f"sqlite:///{folder}/audit.db",
        AUDIT_API_TOKEN="demo-token",
        AUDIT_VIEWER_SECRET="demo-secret",
    )
    audit.register_event_types(ORIGINAL_DESIGN)
    store = audit.runtime(app).store
    store.create_schema()
    rng = random.Random(7)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    kinds = [t.name for t in ORIGINAL_DESIGN] + ["user_logged_in"] * 4
    events = []
    for i in range(300):
        kind = rng.choice(kinds)
        category = next((t.category for t in ORIGINAL_DESIGN if t.name == kind), "info")
        user = f"user-{rng.randint(1, 40)}"
        events.append(
            build_event(
                kind,
                event_category=category,
                outcome=rng.choice(["success"] * 8 + ["failure", "denied"]),
                user_id=user,
                tenant_id=rng.choice(["acme", "globex"]),
                resource_type="account" if "ban" in kind or "account" in kind else "api_key",
                resource_id=str(rng.randint(100, 999)),
                description=f"{kind.replace('_', ' ').capitalize()} for {user}",
                metadata={"plan": rng.choice(["free", "pro", "team"]), "attempt": rng.randint(1, 5)},
                ip_address=f"203.0.113.{rng.randint(1, 254)}",
                user_agent="Mozilla/5.0 (X11; Linux x86_64)",
                request_id=f"req-{i // 2}",
                created_at=now - timedelta(minutes=7 * (300 - i)),
            )
        )
    store.insert(events)
    seal_pending(store, audit.runtime(app).signer)
    return app, audit, events


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("needs Chromium: apt-get install chromium", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        app, _audit, events = demo_app(folder)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        critical = next(e for e in reversed(events) if e.event_category == "critical")
        try:
            for name, size, path in SHOTS:
                path = path or f"/audit/events/{critical.event_id}?token=demo-token"
                target = ROOT / "docs" / name
                subprocess.run(
                    [
                        chromium,
                        *CHROMIUM_FLAGS,
                        f"--user-data-dir={folder}/chromium",
                        "--hide-scrollbars",
                        f"--window-size={size}",
                        "--virtual-time-budget=5000",
                        f"--screenshot={target}",
                        base + path,
                    ],
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
                print(f"wrote {target.relative_to(ROOT)}")
        finally:
            server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
