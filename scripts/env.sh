# Sourced by the scripts and the Makefile: the system PostgreSQL bin dir (Debian's 15 here) and
# .venv/bin first on PATH. The engine finds every other installed major itself (core/pgtools.py:
# pg_config, /usr/lib/postgresql/N/bin, BACKUP_PG_BINDIRS, the bootstrap cache), so
# AMPRENTA_PG_BINDIR (which pins one folder) is not exported.
# PYTHONDONTWRITEBYTECODE is left as it is: bootstrap.sh precompiles the venv's bytecode
# (uv --compile-bytecode), and UV_COMPILE_BYTECODE makes later `uv pip install`s do the same.
# shellcheck shell=bash

AMPRENTA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export AMPRENTA_ROOT

_amprenta_pg_bindir() {
    local dir
    for dir in "${AMPRENTA_PG_BINDIR:-}" "$(pg_config --bindir 2>/dev/null || true)" \
               /usr/lib/postgresql/15/bin; do
        if [ -n "$dir" ] && [ -x "$dir/pg_dump" ] && [ -x "$dir/initdb" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

export VIRTUAL_ENV="$AMPRENTA_ROOT/.venv"
PATH="$VIRTUAL_ENV/bin:$PATH"
if _amprenta_pg_bindir >/dev/null; then
    PATH="$(_amprenta_pg_bindir):$PATH"
fi
unset -f _amprenta_pg_bindir
export PATH
export UV_COMPILE_BYTECODE=1
