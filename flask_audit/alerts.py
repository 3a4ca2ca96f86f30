"""Alerts: the clock evaluates the rules, logs the original design's messages, and POSTs them to
AUDIT_ALERT_WEBHOOK_URL once per condition, again after the cooldown, and resolved when it clears.

The decision (``decide``) is pure. State lives in Redis so a new leading clock keeps the cooldowns.
Webhooks are sent by one background thread through a bounded queue: a slow or dead endpoint
never holds up the clock, let alone the drain.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

import redis

from .health import ALERT_RULES, Finding

logger = logging.getLogger("flask_audit.alerts")

#: seconds a webhook POST may take before it is abandoned
WEBHOOK_TIMEOUT = 5.0
#: notifications waiting for the webhook thread; past this they are logged and dropped
WEBHOOK_BACKLOG = 100


@dataclass
class AlertState:
    """What was last said about one rule."""

    issue: str
    severity: str
    firing_since: float
    last_sent: float


@dataclass(frozen=True)
class Notice:
    status: str  # "firing" | "resolved"
    rule: str
    severity: str
    text: str
    value: float | None = None
    threshold: float | None = None
    action: str | None = None

    def payload(self) -> dict[str, Any]:
        """Slack-compatible (``text``) plus the structured fields."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def decide(
    active: list[Finding], state: dict[str, AlertState], now: float, cooldown: float
) -> tuple[list[Notice], dict[str, AlertState]]:
    """Which notices to send now, and the state after sending them."""
    notices: list[Notice] = []
    new_state: dict[str, AlertState] = {}
    for finding in active:
        if finding.rule not in ALERT_RULES:
            continue
        previous = state.get(finding.rule)
        if previous is None or now - previous.last_sent >= cooldown:
            notices.append(
                Notice(
                    "firing",
                    finding.rule,
                    finding.severity,
                    finding.alert_text,
                    finding.value,
                    finding.threshold,
                    finding.action,
                )
            )
            sent = now
        else:
            sent = previous.last_sent
        since = previous.firing_since if previous else now
        new_state[finding.rule] = AlertState(finding.issue, finding.severity, since, sent)
    for rule, previous in state.items():
        if rule not in new_state:
            notices.append(Notice("resolved", rule, previous.severity, f"✅ RESOLVED: {previous.issue}"))
    return notices, new_state


class Alerter:
    """Keeps alert state in Redis and delivers notices to the log and the webhook."""

    def __init__(self, client: redis.Redis, key: str, webhook_url: str | None, cooldown: float) -> None:
        self.client = client
        self.key = key
        self.webhook_url = webhook_url
        self.cooldown = cooldown
        self._outbox: queue.Queue[Notice] = queue.Queue(maxsize=WEBHOOK_BACKLOG)
        self._sender: threading.Thread | None = None

    def evaluate(self, active: list[Finding], now: float) -> list[Notice]:
        """Decide, log, queue the webhooks, and save the state; returns the notices."""
        state = {
            rule.decode(): AlertState(**json.loads(raw))
            for rule, raw in self.client.hgetall(self.key).items()
        }
        notices, new_state = decide(active, state, now, self.cooldown)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self.key)
            if new_state:
                pipe.hset(self.key, mapping={rule: json.dumps(asdict(s)) for rule, s in new_state.items()})
            pipe.execute()
        for notice in notices:
            log = (
                logger.critical
                if notice.severity == "critical" and notice.status == "firing"
                else logger.warning
            )
            log(notice.text)
            if self.webhook_url:
                self._post_later(notice)
        return notices

    def _post_later(self, notice: Notice) -> None:
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(
                target=self._send_forever, name="audit-alert-webhook", daemon=True
            )
            self._sender.start()
        try:
            self._outbox.put_nowait(notice)
        except queue.Full:
            logger.error("alert webhook backlog full, not sent: %s", notice.text)

    def _send_forever(self) -> None:
        while True:
            notice = self._outbox.get()
            try:
                post_json(self.webhook_url or "", notice.payload())
            except Exception as exc:  # the endpoint's trouble, not ours: log and go on
                logger.error("alert webhook failed (%s): %s", exc, notice.text)
            finally:
                self._outbox.task_done()

    def join(self, timeout: float = 10.0) -> None:
        """Wait until the queued webhooks are sent (tests, shutdown)."""
        deadline = threading.Event()
        waiter = threading.Thread(target=lambda: (self._outbox.join(), deadline.set()), daemon=True)
        waiter.start()
        deadline.wait(timeout)


def post_json(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:
        return response.status
