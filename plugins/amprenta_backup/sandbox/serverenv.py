"""An ``amprenta-wal`` that the server's OS user can run, for archive_command/restore_command.

PostgreSQL runs ``archive_command`` and ``restore_command`` as its own OS user. On a database
host ``amprenta-backup`` is installed where that user can run it; in the sandbox, when the
test process's interpreter cannot be executed by that user (here: a pyenv Python under
``/root``, mode 700), we build a small venv from a system Python of the same version with the
package installed in editable mode, under ``/var/tmp``, once per dependency set. Nothing in
``/root`` is opened up.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import amprenta_backup
from amprenta_backup.sandbox.cluster import SandboxError

VENV_ROOT = Path("/var/tmp")
VENV_STEM = "amprenta-server-venv"


def repo_root() -> Path:
    """The checkout the package is imported from (holds pyproject.toml)."""
    root = Path(amprenta_backup.__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise SandboxError(f"{root} holds no pyproject.toml; the package is not imported from "
                           "a checkout, so no server-side venv can be built from it")
    return root


def runs_as(os_user: str | None, argv: list[str]) -> bool:
    """Whether ``argv`` runs successfully as ``os_user`` (as ourselves when None)."""
    full = argv if os_user is None else ["runuser", "-u", os_user, "--", *argv]
    try:
        done = subprocess.run(full, capture_output=True, timeout=60, cwd="/")
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def wal_command(os_user: str | None) -> str:
    """Absolute path of an ``amprenta-wal`` that ``os_user`` can execute."""
    own = Path(sys.executable).parent / "amprenta-wal"
    if own.is_file() and runs_as(os_user, [str(own), "--help"]):
        return str(own)
    if os_user is None:
        raise SandboxError(f"{own} is missing or broken; reinstall the package "
                           "(uv pip install -e .)")
    return str(server_venv(os_user) / "bin" / "amprenta-wal")


def _python_for(os_user: str) -> str:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}",
                  shutil.which(f"python{version}") or ""]
    for candidate in candidates:
        if candidate and runs_as(os_user, [candidate, "-c", "pass"]):
            return candidate
    raise SandboxError(
        f"no Python {version} that OS user {os_user} can run (tried "
        f"{', '.join(filter(None, candidates))}); install python{version} from the OS packages")


def server_venv(os_user: str) -> Path:
    """A venv with the package (editable) that ``os_user`` can run; built once and reused."""
    root = repo_root()
    python = _python_for(os_user)
    key = hashlib.sha256()
    for part in (str(root), python, *(p.read_text() for p in (root / "pyproject.toml",
                                                             root / "requirements.txt")
                                      if p.exists())):
        key.update(part.encode())
    venv = VENV_ROOT / f"{VENV_STEM}-{key.hexdigest()[:12]}"
    with open(VENV_ROOT / f"{VENV_STEM}.lock", "ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not runs_as(os_user, [str(venv / "bin" / "amprenta-wal"), "--help"]):
            _build(venv, python, root)
            _prune(venv)
    return venv


def _prune(keep: Path, days: float = 7) -> None:
    """Remove server-side venvs of older dependency sets not used for ``days``."""
    cutoff = time.time() - days * 86400
    for old in VENV_ROOT.glob(f"{VENV_STEM}-*"):
        if old != keep and old.is_dir() and old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)


def _build(venv: Path, python: str, root: Path) -> None:
    uv = shutil.which("uv", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if uv is None:
        raise SandboxError("uv is needed to build the server-side venv; install it into the "
                           "venv (pip install uv) or run scripts/bootstrap.sh")
    shutil.rmtree(venv, ignore_errors=True)  # a build cut short: start again
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    constraints = ["-c", str(root / "requirements.txt")] \
        if (root / "requirements.txt").exists() else []
    _run([uv, "venv", "--quiet", "--python", python, str(venv)], env)
    install = [uv, "pip", "install", "--quiet", "--compile-bytecode", *constraints, "-e",
               str(root)]
    env["VIRTUAL_ENV"] = str(venv)
    try:
        _run([*install, "--offline"], env)
    except SandboxError:
        _run(install, env)
    subprocess.run(["chmod", "-R", "a+rX", str(venv)], check=True)
    # modules are imported from the checkout: compile them, the server user cannot write there
    subprocess.run([str(venv / "bin" / "python"), "-m", "compileall", "-q",
                    str(root / "plugins")], capture_output=True)


def _run(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SandboxError(f"{' '.join(argv[:3])} failed: {done.stderr.strip()[-2000:]}")
