"""Registers amprenta-backup's Airflow plugin from the plugins folder.

When the package is pip-installed, its ``airflow.plugins`` entry point registers the plugin
already, and this file defines nothing (the same plugin twice would be an import error).
"""

from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT = "amprenta_backup"

if not entry_points(group="airflow.plugins", name=ENTRY_POINT):
    from amprenta_backup.web.plugin import AmprentaBackupPlugin

    __all__ = ["AmprentaBackupPlugin"]
