"""Logical restores: request, plan, run, and the target server."""
