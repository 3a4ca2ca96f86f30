"""One POST of a batch to the stream's endpoint; anything but a 2xx answer is a failure."""

from __future__ import annotations

import urllib.error
import urllib.request

from flask_audit.errors import StreamDeliveryError


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None  # a redirect is not an acceptance: the batch is sent again later


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST ``body``; returns the status of a 2xx answer, raises ``StreamDeliveryError`` otherwise."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raise StreamDeliveryError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StreamDeliveryError(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None
    if not 200 <= status < 300:
        raise StreamDeliveryError(f"HTTP {status}")
    return status
