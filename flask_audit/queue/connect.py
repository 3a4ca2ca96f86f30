"""Redis clients for one app: straight from AUDIT_REDIS_URL, or through Sentinel.

With ``AUDIT_REDIS_SENTINELS`` every client asks the Sentinels where the master is whenever it
opens a connection, and drops connections to a master that was demoted (redis-py's
``SentinelConnectionPool``). A failover therefore looks, to the request path, like a short Redis
outage: the breaker opens, events are written through, and the next try after the cooldown
reaches the new master. No process needs a restart.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import Sentinel

from flask_audit.config import AuditConfig

#: seconds a Sentinel may take to answer where the master is
SENTINEL_TIMEOUT = 0.5


def url_credentials(url: str | None) -> dict[str, Any]:
    """The database number, user and password an AUDIT_REDIS_URL carries, for the master that
    Sentinel names (its host and port are Sentinel's to say)."""
    if not url:
        return {}
    parts = urlsplit(url)
    found: dict[str, Any] = {}
    if parts.username:
        found["username"] = unquote(parts.username)
    if parts.password:
        found["password"] = unquote(parts.password)
    path = parts.path.strip("/")
    if path.isdigit():
        found["db"] = int(path)
    return found


class RedisConnector:
    """Makes the app's Redis clients with the options each caller asks for (timeouts, retries)."""

    def __init__(self, config: AuditConfig, url: str | None) -> None:
        self.config = config
        self.url = url
        self._sentinel: Sentinel | None = None

    @property
    def uses_sentinel(self) -> bool:
        return bool(self.config.redis_sentinels)

    def sentinel(self) -> Sentinel:
        """The Sentinel manager, made once and shared by this app's clients."""
        if self._sentinel is None:
            self._sentinel = Sentinel(
                list(self.config.redis_sentinels or ()),
                sentinel_kwargs={
                    "socket_timeout": SENTINEL_TIMEOUT,
                    "socket_connect_timeout": SENTINEL_TIMEOUT,
                },
            )
        return self._sentinel

    def client(self, **options: Any) -> redis.Redis:
        """A client of the master: the one Sentinel names, else the one at the URL."""
        if self.uses_sentinel:
            return self.sentinel().master_for(
                self.config.redis_sentinel_master, **url_credentials(self.url), **options
            )
        if not self.url:
            raise ValueError("a Redis URL is needed when no Sentinels are configured")
        return redis.Redis.from_url(self.url, **options)

    def master_address(self) -> tuple[str, int] | None:
        """Where the master is now, as the Sentinels say (None without Sentinel)."""
        if not self.uses_sentinel:
            return None
        return self.sentinel().discover_master(self.config.redis_sentinel_master)
