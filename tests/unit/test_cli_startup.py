"""What ``amprenta-backup`` loads to answer: its help and a mistyped command come from the
command index alone (no psycopg, boto3, pydantic or engine), a command loads its own module
(and runs with the cyclic garbage collector on), and the root help lists every command exactly
as the command itself describes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from amprenta_backup.cli.index import BY_MODULE, COMMANDS, modules
from amprenta_backup.cli.main import LazyCommands, build_app

# the module run as `python -m` does, writing sys.modules to argv[1] at exit
PROBE = ("import atexit, json, runpy, sys\n"
         "path = sys.argv.pop(1)\n"
         "atexit.register(lambda: open(path, 'w').write(json.dumps(sorted(sys.modules))))\n"
         "runpy.run_module('amprenta_backup.cli', run_name='__main__', alter_sys=True)\n")
# a command run as a process, reporting whether the collector is on when the command runs
GC_PROBE = ("import functools, gc, runpy, sys\n"
            "import amprenta_backup.cli.dags as dags\n"
            "real = dags.cmd_install_dags\n"
            "@functools.wraps(real)\n"
            "def probe(*a, **k):\n"
            "    print('gc enabled:', gc.isenabled(), file=sys.stderr)\n"
            "    return real(*a, **k)\n"
            "dags.cmd_install_dags = probe\n"
            "runpy.run_module('amprenta_backup.cli', run_name='__main__', alter_sys=True)\n")
HEAVY = ("psycopg", "boto3", "botocore", "pydantic", "pydantic_settings",
         "amprenta_backup.core.engine", "amprenta_backup.core.settings")


def imported(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``amprenta-backup ARGS`` as a process (``python -m amprenta_backup.cli``); its result
    and every module it had imported when it exited."""
    listing = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", PROBE, str(listing), *args], capture_output=True,
                          text=True, timeout=60, env={"PATH": os.environ["PATH"], "COLUMNS": "100"})
    return done, set(json.loads(listing.read_text()))


def heavy(names: set[str]) -> list[str]:
    return sorted(n for n in names if n.startswith(HEAVY))


def test_help_version_and_a_mistyped_command_load_none_of_the_commands(tmp_path: Path) -> None:
    done, names = imported(tmp_path, "--help")
    assert done.returncode == 0 and "install-dags" in done.stdout and "export" in done.stdout
    assert heavy(names) == []
    assert not any(n.startswith("amprenta_backup.cli.") and n.rsplit(".", 1)[1] in modules()
                   for n in names)
    done, names = imported(tmp_path, "--version")
    assert done.returncode == 0 and done.stdout.startswith("amprenta-backup ")
    assert heavy(names) == [] and "rich" not in names
    done, names = imported(tmp_path, "lst")  # typer reads the root's options with pydantic
    assert done.returncode == 2 and "No such command 'lst'. Did you mean 'list'?" in done.stderr
    assert [n for n in heavy(names) if not n.startswith("pydantic")] == []


def test_a_command_loads_its_own_module_and_no_other(tmp_path: Path) -> None:
    done, names = imported(tmp_path, "metrics", "--help")
    assert done.returncode == 0 and "success-rate" in done.stdout
    assert "amprenta_backup.cli.metrics" in names
    assert "amprenta_backup.cli.restore" not in names and "amprenta_backup.cli.recover" not in names
    assert not any(n.startswith(("psycopg", "boto3", "botocore")) for n in names)


def test_the_listing_of_each_command_is_what_its_module_registers() -> None:
    group = typer.main.get_group(build_app())
    assert isinstance(group, LazyCommands)
    listed = dict(group.commands)
    for module in modules():
        group.load(module)
    assert list(group.commands) == list(COMMANDS)  # no command missing from the index
    for name, command in group.commands.items():
        assert command is not listed[name], name  # built from its module
        # what the listing reads: short_help if any, else help (typer's rich panel and click)
        shown = ("short_help",) if listed[name].short_help else ("short_help", "help")
        for attribute in ("name", "hidden", "deprecated", *shown):
            assert getattr(listed[name], attribute) == getattr(command, attribute), \
                (name, attribute)


def test_each_command_is_built_by_the_module_the_index_names() -> None:
    for module, names in BY_MODULE.items():
        group = typer.main.get_group(build_app())
        assert isinstance(group, LazyCommands)
        listed = dict(group.commands)
        group.load(module)  # that module alone: what `amprenta-backup NAME` loads
        for name in names:
            assert group.commands[name] is not listed[name], (module, name)
        assert list(group.commands) == list(COMMANDS)  # the root help's order is kept


def test_a_listing_run_in_place_of_its_command_fails_loudly() -> None:
    group = typer.main.get_group(build_app())
    callback = group.commands["verify"].callback
    assert callback is not None
    with pytest.raises(RuntimeError, match="'verify' is not built by amprenta_backup.cli.restore"):
        callback()


def test_a_command_run_as_a_process_runs_with_the_collector_on(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", GC_PROBE, "install-dags", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"]})
    assert "gc enabled: True" in done.stderr, done.stderr
