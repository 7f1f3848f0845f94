"""A real PostgreSQL installation without some extensions, for "the target lacks it" tests.

The server finds its share folder (and so the extension control files) relative to its own
binary, so a copy of the binaries next to a share folder that leaves some extensions out is a
server built without them: ``pg_available_extensions`` does not list them, ``CREATE
EXTENSION`` fails. Nothing on the system is changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from amprenta_backup.sandbox.cluster import find_bin_dir

SERVER_TOOLS = ("postgres", "initdb", "pg_ctl")


def _pg_config(bin_dir: Path, what: str) -> Path:
    done = subprocess.run([str(bin_dir / "pg_config"), f"--{what}"], capture_output=True,
                          text=True, check=True)
    return Path(done.stdout.strip())


def install_without(root: Path, extensions: tuple[str, ...]) -> Path:
    """Lay out an installation under ``root`` lacking ``extensions``; returns its bin folder."""
    real_bin = find_bin_dir()
    share, pkglib = _pg_config(real_bin, "sharedir"), _pg_config(real_bin, "pkglibdir")
    common = Path(os.path.commonpath([real_bin, share, pkglib]))
    bin_dir = root / real_bin.relative_to(common)
    bin_dir.mkdir(parents=True)
    for name in SERVER_TOOLS:  # copies: the server resolves symlinks to find its home
        shutil.copy2(real_bin / name, bin_dir / name)
    (root / pkglib.relative_to(common)).parent.mkdir(parents=True, exist_ok=True)
    (root / pkglib.relative_to(common)).symlink_to(pkglib)
    new_share = root / share.relative_to(common)
    new_share.mkdir(parents=True)
    for entry in share.iterdir():
        if entry.name != "extension":
            (new_share / entry.name).symlink_to(entry)
    (new_share / "extension").mkdir()
    for control in (share / "extension").iterdir():
        if not control.name.startswith(tuple(f"{e}--" for e in extensions)
                                       + tuple(f"{e}.control" for e in extensions)):
            (new_share / "extension" / control.name).symlink_to(control)
    for path in [root, *root.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    return bin_dir
