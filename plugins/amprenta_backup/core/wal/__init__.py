"""WAL archiving: segment names, push/fetch, async push, spool, settings, health, retention."""
