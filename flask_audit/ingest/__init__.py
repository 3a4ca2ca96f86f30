"""The write path of a web process: request capture, the buffer, the breaker, the spool."""
