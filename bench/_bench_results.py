"""What every benchmark script does around its run: stop cleanly on SIGTERM, write results."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``sys.exit(143)``, so ``finally`` blocks and ``closing`` stop the
    servers the benchmark started on the way out."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def save_results(result: dict[str, Any], output: Path) -> None:
    """Write ``result`` as indented JSON to ``output`` (its folder made) and say where."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults written to {output}")
