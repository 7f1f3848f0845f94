"""Command-line entry points: `amprenta-backup` (cli.main) and `amprenta-wal` (cli.wal).

Kept free of imports so `amprenta-wal push` loads only the standard library on its fast path.
"""
