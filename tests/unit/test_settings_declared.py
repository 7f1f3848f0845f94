"""Every BACKUP_* variable is declared once in core/settings/, read through it, bounded, and
documented in docs/configuration.md with the declared default (the tables are generated)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic.fields import FieldInfo

from amprenta_backup.core.settings import ALL
from amprenta_backup.core.settings.base import TABLES_BEGIN as BEGIN
from amprenta_backup.core.settings.base import TABLES_END as END
from amprenta_backup.core.settings.base import allowed, markdown, shown_default

REPO = Path(__file__).resolve().parents[2]
CONFIGURATION = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
# every page a user reads: the README and the docs site
DOCS = "\n".join(p.read_text(encoding="utf-8")
                 for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
NOT_VARIABLES = {"BACKUP_ID"}  # the CLI's placeholder for a backup id
# the only modules that read BACKUP_* from a mapping themselves (see core/wal/quick.py)
RAW_READERS = {"core/settings/base.py", "core/settings/backup.py", "core/settings/pitr.py",
               "core/wal/settings.py", "core/wal/quick.py"}


def declared() -> dict[str, FieldInfo]:
    found: dict[str, FieldInfo] = {}
    for cls in ALL:
        for name, field in cls.variables().items():
            if name in found:  # BACKUP_WAL_TARGET: one help text on both sides of PITR
                assert found[name].description == field.description, name
            found.setdefault(name, field)
    return found


def names_in(text: str) -> set[str]:
    return {n for n in re.findall(r"BACKUP_[A-Z0-9_]+", text)
            if not n.endswith("_") and n not in NOT_VARIABLES}


def test_the_configuration_tables_are_the_generated_ones() -> None:
    assert BEGIN in CONFIGURATION and END in CONFIGURATION
    block = CONFIGURATION.split(BEGIN, 1)[1].split(END, 1)[0]
    assert block == markdown(ALL), (
        "docs/configuration.md's settings tables differ from core/settings/; regenerate them "
        "with python -m amprenta_backup.core.settings --write docs/configuration.md")
    assert set(declared()) == names_in(block)


def test_every_variable_the_docs_name_is_declared_with_the_same_default() -> None:
    variables = declared()
    assert names_in(DOCS) <= set(variables), names_in(DOCS) - set(variables)
    for row in re.findall(r"^\| `(BACKUP_[A-Z0-9_]+)` \| ([^|]*) \|", DOCS, re.MULTILINE):
        name, default = row
        assert shown_default(variables[name]) in default, (name, default)


def test_every_variable_the_code_names_is_declared_and_read_through_settings() -> None:
    variables = set(declared())
    package = REPO / "plugins" / "amprenta_backup"
    for path in [*package.rglob("*.py"), *(REPO / "dags").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        assert names_in(text) <= variables, (path, names_in(text) - variables)
        relative = path.relative_to(package).as_posix() if package in path.parents else ""
        if relative not in RAW_READERS:
            assert not re.search(r"""(environ|env)(\.get\(|\[)\s*["']BACKUP_""", text), path


def test_every_number_has_bounds_and_every_variable_has_help() -> None:
    for name, field in declared().items():
        assert field.description, name
        if field.annotation in (int, float):
            assert " " in allowed(field) or "-" in allowed(field), name
            assert any(hasattr(m, "le") for m in field.metadata), f"{name} has no upper bound"


def test_storage_is_declared_once_inside_the_backup_config() -> None:
    from amprenta_backup.core.settings import BackupConfig, StorageConfig

    assert BackupConfig.model_fields["storage"].annotation is StorageConfig
    assert not set(BackupConfig.variables()) & set(StorageConfig.variables())
    config = BackupConfig.from_env({"BACKUP_STORAGE_TYPE": "s3", "BACKUP_S3_BUCKET": "b-1"})
    assert config.storage.to_env()["BACKUP_S3_BUCKET"] == "b-1"
    assert StorageConfig(**config.storage.model_dump()) == config.storage
