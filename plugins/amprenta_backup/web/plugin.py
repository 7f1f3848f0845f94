"""AmprentaBackupPlugin: the plugin app under ``/api/v1/backup`` and "Backups" in the nav.

Registered through the ``airflow.plugins`` entry point of the installed package, and through
``plugins/amprenta_backup_plugin.py`` when only the plugins folder is mounted.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from amprenta_backup.web.app import URL_PREFIX, create_app

PLUGIN_NAME = "amprenta_backup"
DASHBOARD_ROUTE = "backups"  # the UI's /plugin/backups


class AmprentaBackupPlugin(AirflowPlugin):
    """The backup dashboard, the JSON API and the metrics endpoint of amprenta-backup."""

    name = PLUGIN_NAME
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "amprenta-backup"}]
    external_views = [{"name": "Backups", "href": f"{URL_PREFIX.lstrip('/')}/dashboard",
                       "destination": "nav", "category": "browse", "url_route": DASHBOARD_ROUTE}]
