"""Remove the globals objects that no backup in storage names any more."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from amprenta_backup.core.catalog import stored_manifests
from amprenta_backup.core.constants import GLOBALS_INFO_NAME, GLOBALS_ROOT
from amprenta_backup.core.errors import ObjectLocked
from amprenta_backup.core.layout import folder_of
from amprenta_backup.core.models import ObjectInfo
from amprenta_backup.core.storage.base import Storage

log = logging.getLogger(__name__)


@dataclass
class GlobalsSweep:
    """Globals folders removed (or, in a dry run, that would be) and their bytes."""

    removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    locked: list[str] = field(default_factory=list)


def sweep_globals(storage: Storage, prefix: str, now: datetime, min_age: timedelta,
                  dry_run: bool) -> GlobalsSweep:
    """Delete each globals folder no ``manifest.json`` in storage names, once older than
    ``min_age`` (a run still writing its manifests keeps its globals).

    Storage is the source of truth: the manifests are read from it, not from the catalog.
    """
    stem = prefix.strip("/")
    root = "/".join(p for p in (stem, GLOBALS_ROOT) if p) + "/"
    folders: dict[str, list[ObjectInfo]] = defaultdict(list)
    for obj in storage.list_objects(root):
        folders[folder_of(obj.key)].append(obj)
    sweep = GlobalsSweep()
    if not folders:
        return sweep
    named = {folder_of(str(m.globals["key"]))
             for _, m in stored_manifests(storage, stem + "/" if stem else "") if m.globals}
    for folder, objects in sorted(folders.items()):
        if folder in named or max(o.last_modified for o in objects) >= now - min_age:
            continue
        if not dry_run:  # the info first: a half-done delete leaves no usable globals
            info = [o.key for o in objects if o.key.endswith("/" + GLOBALS_INFO_NAME)]
            try:
                storage.delete(info)
                storage.delete([o.key for o in objects if o.key not in info])
            except ObjectLocked as exc:  # a later run deletes them, once the date has passed
                sweep.locked.append(f"{folder}: {exc}")
                log.warning("unused globals kept: %s", exc)
                continue
        sweep.removed.append(folder)
        sweep.bytes_freed += sum(o.size for o in objects)
        log.info("%s globals %s: no backup names them", "would remove" if dry_run
                 else "removed", storage.uri(folder))
    return sweep
