"""Restore drills: scratch databases, data checks, assertions, records and reports."""
