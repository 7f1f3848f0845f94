#!/usr/bin/env bash
# Idempotent setup: PostgreSQL 15 binaries, then .venv with the pinned lock and the package.
# Silent on the fast path (nothing changed since the last install).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMP="$VENV/.amprenta-bootstrap.sha256"
UV_VERSION="0.13.9"
PG_PKG="postgresql-15"

say() { echo "bootstrap: $*" >&2; }

# --- PostgreSQL 15 ---------------------------------------------------------------------------
pg_bindir() {
    # The first directory (same order as scripts/env.sh and the sandbox) holding the tools.
    local dir
    for dir in "${AMPRENTA_PG_BINDIR:-}" "$(pg_config --bindir 2>/dev/null || true)" \
               /usr/lib/postgresql/15/bin; do
        [ -n "$dir" ] || continue
        if [ -x "$dir/pg_dump" ] && [ -x "$dir/pg_restore" ] && [ -x "$dir/initdb" ] \
           && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            local major
            major="$("$dir/pg_dump" --version 2>/dev/null | sed -E 's/[^0-9]*([0-9]+).*/\1/')"
            if [ "${major:-0}" -ge 15 ] 2>/dev/null; then
                echo "$dir"
                return 0
            fi
        fi
    done
    return 1
}

if ! pg_bindir >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "PostgreSQL 15 binaries not found; running: apt-get install -y $PG_PKG"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y "$PG_PKG" || { apt-get update && apt-get install -y "$PG_PKG"; }
        pg_bindir >/dev/null || { say "$PG_PKG installed but its binaries were not found"; exit 1; }
    else
        cat >&2 <<EOF
bootstrap: PostgreSQL 15 binaries (pg_dump, pg_restore, initdb, pg_ctl, postgres) not found.
  Install them, then re-run:
    Debian/Ubuntu:  sudo apt-get install -y $PG_PKG
    (other systems: the PostgreSQL 15 server package; put its bin dir first on PATH
     or set AMPRENTA_PG_BINDIR=/path/to/postgresql/15/bin)
EOF
        exit 1
    fi
fi

# --- Python virtualenv -----------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    python3 -m venv "$VENV"
fi
if [ ! -x "$VENV/bin/uv" ]; then
    say "installing uv $UV_VERSION into .venv"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

want="$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
    say "installing requirements.txt and the package (-e .) into .venv (about 30 s the first time)"
    started=$SECONDS
    VIRTUAL_ENV="$VENV" "$VENV/bin/uv" pip install --quiet --compile-bytecode \
        -r requirements.txt -e .
    echo "$want" > "$STAMP"
    say "done in $((SECONDS - started)) s"
fi
