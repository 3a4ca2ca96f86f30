"""The Redis side: the capped queue and its Lua scripts, the failed list, the embedded server."""
