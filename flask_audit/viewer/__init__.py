"""The audit viewer: a page for people, at ``AUDIT_VIEWER_URL_PREFIX`` (``/audit``).

The page is a shell (HTML, one script, one stylesheet, all served from here: no CDN, no build
step); its script reads the query API with the viewer's cookie. A token in the address (the API
token, or one from ``audit.viewer_token``) is traded for that cookie and removed from the
address by a redirect. The responses forbid inline script (Content-Security-Policy), send no
referrer, are never cached, and may be framed only by ``AUDIT_VIEWER_FRAME_ANCESTORS``.
"""
