"""What the CLIs write to stderr, for people or, under ``--json``, as JSON Lines.

Under ``--json`` every line on stderr is one JSON object with one key: ``warning`` (a
warning: ``{"message": ..., "logger": ...}``), ``log`` (with ``-v``: ``{"level": "INFO",
"logger": ..., "message": ...}``), ``progress`` (with ``--progress`` off a terminal) and, last,
``error`` when the command fails; stdout holds the result alone. A script reads each line
with ``json.loads``; warnings never come in between as plain text. It imports only json,
logging and sys: ``amprenta-wal`` uses it too.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any


def line(kind: str, fields: dict[str, Any]) -> str:
    """``{kind: fields}`` as one line of JSON, newline included."""
    return json.dumps({kind: fields}, default=str) + "\n"


def write(kind: str, fields: dict[str, Any]) -> None:
    """One line ``{kind: fields}`` on stderr."""
    sys.stderr.write(line(kind, fields))
    sys.stderr.flush()


def warn(message: str, as_json: bool) -> None:
    """A warning for the person or script running the command; a JSON line under ``--json``
    (``as_json``)."""
    if as_json:
        write("warning", {"message": message})
    else:
        print(f"warning: {message}", file=sys.stderr, flush=True)


class JsonLinesHandler(logging.Handler):
    """Each log record as one ``warning`` (WARNING and above) or ``log`` line on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message = f"{message}: {record.exc_info[1]}"
            kind = "warning" if record.levelno >= logging.WARNING else "log"
            write(kind, {"level": record.levelname, "logger": record.name, "message": message})
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)


def configure_logging(verbose: bool, text_format: str, as_json: bool) -> None:
    """The root logger: INFO with ``-v``, WARNING otherwise, onto stderr as text in
    ``text_format`` or, ``as_json`` (``--json``), as JSON Lines; left alone when it has
    handlers already (the CLI called inside another program, as ``logging.basicConfig``
    does)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler: logging.Handler
    if as_json:
        handler = JsonLinesHandler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(text_format))
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
