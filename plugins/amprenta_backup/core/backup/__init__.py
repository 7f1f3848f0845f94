"""Logical backups and the one backup-record lifecycle."""
