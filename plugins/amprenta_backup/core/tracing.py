"""OpenTelemetry spans around the phases of a backup and a restore.

Airflow 3.3 sets a tracer provider in every task process when ``[traces] otel_on`` is true,
and runs the task inside a ``worker.<task_id>`` span: these spans become its children
(``backup`` > ``backup.dump`` ...), exported wherever ``OTEL_TRACES_EXPORTER`` and
``OTEL_EXPORTER_OTLP_*`` say. Without a provider (tracing off, the CLI) the API's no-op
tracer makes them free; without the ``opentelemetry-api`` package they are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:
    from opentelemetry import trace
    from opentelemetry.trace import Span, Status, StatusCode
except ImportError:  # pragma: no cover - opentelemetry-api comes with Airflow
    trace = None  # type: ignore[assignment]

TRACER = "amprenta_backup"
Attributes = dict[str, str | int | float | bool]


def _clean(attributes: dict[str, Any]) -> Attributes:
    return {f"amprenta_backup.{k}": v for k, v in attributes.items()
            if isinstance(v, str | int | float | bool)}


def _failed(span: Any, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:200]))


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """One span (the current one inside the block); an exception marks it ERROR."""
    if trace is None:
        yield None
        return
    with trace.get_tracer(TRACER).start_as_current_span(
            name, attributes=_clean(attributes), record_exception=False,
            set_status_on_exception=False) as current:
        try:
            yield current
        except BaseException as exc:
            _failed(current, exc)
            raise


class Phases:
    """A parent span with one child span per phase: :meth:`enter` ends the phase before.

    :param name: the parent's name (``backup``); phases are ``<name>.<phase>``
    :param attributes: set on the parent (target, backup id ...)
    """

    def __init__(self, name: str, **attributes: Any) -> None:
        self.name = name
        self._tracer = trace.get_tracer(TRACER) if trace is not None else None
        self._parent: Span | None = None
        self._phase: Span | None = None
        if self._tracer is not None:
            self._parent = self._tracer.start_span(name, attributes=_clean(attributes))

    def enter(self, phase: str) -> None:
        """End the current phase's span and start ``<name>.<phase>``."""
        if self._tracer is None or self._parent is None:
            return
        if self._phase is not None:
            self._phase.end()
        context = trace.set_span_in_context(self._parent)
        self._phase = self._tracer.start_span(f"{self.name}.{phase}", context=context)

    def close(self, exc: BaseException | None = None) -> None:
        """End the phase and the parent; ``exc`` marks both ERROR."""
        for current in (self._phase, self._parent):
            if current is not None:
                if exc is not None:
                    _failed(current, exc)
                current.end()
        self._phase = self._parent = None
