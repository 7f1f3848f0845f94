"""What a restore or a recovery checks on the target server before it creates anything: the
roles (those the globals will bring count as there), extensions, locale and tablespace."""

from __future__ import annotations

import dataclasses

from amprenta_backup.core.dbprops import DatabaseProperties, Extension
from amprenta_backup.core.restore.properties import check_target
from amprenta_backup.sandbox.cluster import ClusterBase

PROPS = DatabaseProperties(name="app", owner="r_coming", encoding="UTF8", collate="C",
                           ctype="C", tablespace="ts_coming", roles=("r_coming", "r_absent"),
                           extensions=(Extension("pgcrypto", "1.3", "public"),))


def test_roles_and_tablespaces_of_the_globals_count_as_there(pg_cluster: ClusterBase) -> None:
    with pg_cluster.connect() as db:
        checks = check_target(db, PROPS, False, "HINT", frozenset({"r_coming", "ts_coming"}))
        without = check_target(db, PROPS, False, "HINT")
    assert checks.missing == ("role r_absent does not exist on the target: restore the globals "
                              "first (HINT) or create it, or restore with --no-owner",)
    assert "roles r_coming come with the globals" in checks.passed
    assert "tablespace ts_coming comes with the globals" in checks.passed
    assert len(without.missing) == 3 and "tablespace ts_coming does not exist" in without.missing[2]


def test_a_missing_locale_and_extension_are_named_with_the_fix(pg_cluster: ClusterBase) -> None:
    props = dataclasses.replace(PROPS, owner="postgres", roles=("postgres",),
                                tablespace="pg_default", collate="xx_XX.UTF-8",
                                extensions=(Extension("no_such_ext", "2.0", "public"),))
    major = pg_cluster.server_major()
    with pg_cluster.connect() as db:
        checks = check_target(db, props, False, "HINT")
    extension, locale = checks.missing
    assert extension == (f"extension no_such_ext (2.0 in the backup) is not available on the "
                         f"target: install postgresql-{major}-no_such_ext or your "
                         f"distribution's package of no_such_ext for PostgreSQL {major} on the "
                         "server")
    assert locale.startswith("locale xx_XX.UTF-8 is not usable on the target: ")
    assert locale.endswith("install it in the server's OS (Debian: locales, then `locale-gen`) "
                           "and restart the server")
