"""Client tools get the password through the environment only."""

from __future__ import annotations

from amprenta_backup.core.pgtools import PgConnInfo

SECRET = "s3cr3t-Pa55"


def test_password_is_in_env_never_in_repr() -> None:
    conn = PgConnInfo(host="db", port=6543, user="backup", dbname="app", password=SECRET,
                      options={"sslmode": "verify-full"})
    env = conn.env(base={"PGPASSWORD": "inherited", "PATH": "/bin"})
    assert env["PGPASSWORD"] == SECRET and env["PGSSLMODE"] == "verify-full"
    assert env["PGHOST"] == "db" and env["PGPORT"] == "6543" and env["PGDATABASE"] == "app"
    assert SECRET not in repr(conn) and SECRET not in conn.describe()
    assert conn.redact(f"error near {SECRET}") == "error near ********"


def test_env_drops_inherited_libpq_settings() -> None:
    conn = PgConnInfo(host="db")
    env = conn.env(base={"PGPASSWORD": "other", "PGSERVICE": "prod", "PGPASSFILE": "/p"})
    assert "PGPASSWORD" not in env and "PGSERVICE" not in env
    assert env["PGPASSFILE"] == "/p"
