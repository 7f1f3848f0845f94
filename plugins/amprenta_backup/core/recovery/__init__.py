"""Whole-service recovery from storage alone: the storage-backed index of backups, the
recovery plan (what goes where), the run (catalog, globals, databases, checks) and its report."""
