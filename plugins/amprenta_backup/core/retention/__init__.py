"""Retention: policies (strategy classes) and cleanup of storage and catalog."""
