"""CLI command ``install-dags``: put the DAG files shipped in the package into a dags folder."""

from __future__ import annotations

import filecmp
import shutil
from importlib.resources import as_file, files
from pathlib import Path
from typing import Annotated

import typer

from amprenta_backup.cli.arguments import JsonOption
from amprenta_backup.cli.index import listed
from amprenta_backup.cli.output import print_json
from amprenta_backup.core.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("install-dags", **listed("install-dags"))(cmd_install_dags)


def shipped_dags() -> list[Path]:
    """The DAG files inside the installed package (``amprenta_backup/dags/*.py``)."""
    with as_file(files("amprenta_backup") / "dags") as folder:
        return sorted(p for p in Path(folder).glob("*.py") if not p.name.startswith("_"))


def install(folder: Path, link: bool = False, force: bool = False) -> dict[str, list[str]]:
    """Copy (``link``: symlink) every shipped DAG file into ``folder``.

    A file of the same name with other content is refused (ConfigError, nothing written)
    unless ``force``; an identical one is left as it is.
    """
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder; create it or name Airflow's dags folder "
                          "([core] dags_folder)")
    sources = shipped_dags()
    if not sources:
        raise ConfigError("no DAG files in the installed package; reinstall amprenta-backup")
    result: dict[str, list[str]] = {"installed": [], "unchanged": [], "replaced": []}
    plan = []
    for source in sources:
        dest = folder / source.name
        equal = dest.exists() and filecmp.cmp(dest, source, shallow=False)
        same = equal and dest.is_symlink() == link and (
            not link or dest.resolve() == source.resolve())
        if dest.exists() and not equal and not force:
            raise ConfigError(f"{dest} exists with other content; move it away or pass --force "
                              "to replace the package's DAG files")
        plan.append((source, dest, same))
    for source, dest, same in plan:
        if same:
            result["unchanged"].append(dest.name)
            continue
        result["replaced" if dest.exists() or dest.is_symlink() else "installed"].append(
            dest.name)
        dest.unlink(missing_ok=True)
        if link:
            dest.symlink_to(source.resolve())
        else:
            shutil.copyfile(source, dest)
    return result


def cmd_install_dags(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="Airflow's dags folder")],
    link: Annotated[bool, typer.Option(
        "--link", help="symlink the files, so upgrading the package updates the DAGs")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="replace files of the same name with other content")] = False,
    as_json: JsonOption = False,
) -> int:
    result = install(folder, link=link, force=force)
    if as_json:
        print_json(result)
    else:
        for state, names in result.items():
            if names:
                print(f"{state}: {', '.join(names)}")
        print(f"{sum(map(len, result.values()))} DAG files in {folder}")
    return 0
