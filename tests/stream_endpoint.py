"""A log-stream endpoint on loopback for tests: it accepts, fails (503), stalls past the
client's timeout, or answers with a redirect, as the test says, and keeps what it accepted."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StreamEndpoint:
    def __init__(self) -> None:
        self.mode = "ok"  # ok | fail | stall | redirect
        self.stall_seconds = 2.0
        self.accepted: list[tuple[bytes, dict[str, str]]] = []
        self.attempts = 0
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with endpoint._lock:
                    endpoint.attempts += 1
                    mode = endpoint.mode
                if mode == "stall":
                    time.sleep(endpoint.stall_seconds)
                if mode in ("fail", "stall"):
                    self.send_response(503)
                elif mode == "redirect":
                    self.send_response(307)
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                else:
                    with endpoint._lock:
                        endpoint.accepted.append((body, dict(self.headers)))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ingest"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def lines(self) -> list[dict]:
        """Every JSON line of every accepted body, in the order accepted."""
        with self._lock:
            bodies = [body for body, _ in self.accepted]
        return [json.loads(line) for body in bodies for line in body.split(b"\n") if line]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
