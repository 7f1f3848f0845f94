"""The plugin registers once: through the package's entry point, else the plugins folder."""

from __future__ import annotations

import importlib.metadata

import pytest

from tests.support.airflow_env import REPO

FOLDER = str(REPO / "plugins")


def _folder_plugins() -> tuple[list[str], dict[str, str]]:
    """What Airflow's plugins-folder loader finds in the repo's plugins/ (names, errors)."""
    from airflow.plugins_manager import _load_plugins_from_plugin_directory

    plugins, errors = _load_plugins_from_plugin_directory(plugins_folder=FOLDER)
    return [p.name for p in plugins], errors


def test_the_folder_defines_no_second_plugin_when_the_package_is_installed() -> None:
    assert importlib.metadata.entry_points(group="airflow.plugins", name="amprenta_backup")
    assert _folder_plugins() == ([], {})  # the package's modules are in .airflowignore too


def test_the_folder_registers_the_plugin_when_the_package_is_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a plugins-folder-only deployment (compose mount, no pip install) cannot be made in this
    # venv, where the package is installed: hide its entry point from the lookup instead
    real = importlib.metadata.entry_points

    def without_ours(**selection: str) -> importlib.metadata.EntryPoints:
        found = real(**selection)
        return importlib.metadata.EntryPoints(e for e in found if e.name != "amprenta_backup")

    monkeypatch.setattr(importlib.metadata, "entry_points", without_ours)
    names, errors = _folder_plugins()
    assert (names, errors) == (["amprenta_backup"], {})


def test_the_app_is_mounted_under_api_v1_backup_and_every_route_needs_airflow_auth() -> None:
    from amprenta_backup.web.auth import require_backup_access
    from amprenta_backup.web.plugin import AmprentaBackupPlugin

    (entry,) = AmprentaBackupPlugin.fastapi_apps
    assert entry["url_prefix"] == "/api/v1/backup"
    app = entry["app"]
    assert [d.dependency for d in app.router.dependencies] == [require_backup_access]
    (view,) = AmprentaBackupPlugin.external_views
    assert view["href"] == "api/v1/backup/dashboard" and not view["href"].startswith("/")
