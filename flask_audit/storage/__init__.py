"""The database side: the table, COPY, partitions, retention, searching and migrations."""
