"""Optional integrations with other Flask extensions, each behind its own AUDIT_* switch."""
