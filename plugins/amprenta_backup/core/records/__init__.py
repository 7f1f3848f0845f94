"""What makes a backup record trustworthy: one clock (the catalog server's), a heartbeat and
one run per backup id, and the typed schema a stored manifest must pass."""
