"""The event: its fields, validation and repair of client input, ids, and the queue entry."""
