"""From queue to table: the Dramatiq actor, one drain, batch sizing, and the clock."""
