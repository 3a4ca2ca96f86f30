"""Log streams: stored events sent on to a SIEM over HTTP, in order, at least once.

``AUDIT_STREAM_URL`` makes every worker process run a sender thread (``StreamThread``); one of
them at a time holds the stream's lock and sends. It reads committed rows after the stream's
cursor, in id order, POSTs them in batches in ``AUDIT_STREAM_FORMAT`` and moves the cursor, kept
in the database, only after the endpoint accepted the batch. A crash between the two sends that
batch again: at least once. The thread never runs on a Dramatiq worker thread, so a stream that
is down or slow never slows the drain.
"""
