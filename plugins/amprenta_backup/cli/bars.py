"""Progress bars at a terminal (rich), for :mod:`amprenta_backup.cli.progress`: imported only
when a bar is shown, so that a command without one never loads rich."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.text import Text

from amprenta_backup.core.models import human_bytes


class BytesColumn(ProgressColumn):
    """``12.0 MiB of 40.0 MiB`` (or ``12.0 MiB read`` when the total is unknown), then the
    rate in the same units as everywhere else in the CLI."""

    def render(self, task: Task) -> Text:
        done = human_bytes(int(task.completed))
        of = f" of {human_bytes(int(task.total))}" if task.total else " read"
        speed = task.speed or (task.completed / task.elapsed if task.elapsed else 0)
        rate = f", {human_bytes(int(speed))}/s" if speed else ""
        return Text(f"{done}{of}{rate}")


class Bar:
    """One transfer's line of a rich progress display."""

    def __init__(self, display: RichProgress, label: str, total: int) -> None:
        self.display = display
        self.task: TaskID = display.add_task(label, total=total or None, stored="")

    def __call__(self, done: int, stored: int | None = None) -> None:
        if stored is None:
            self.display.update(self.task, completed=done)
        else:
            self.display.update(self.task, completed=done, stored=f"{human_bytes(stored)} stored")


def start_display(stream: TextIO) -> RichProgress:
    """A started rich display on ``stream``: label, bar, bytes and rate, stored, elapsed."""
    display = RichProgress(
        TextColumn("{task.description}"), BarColumn(), BytesColumn(),
        TextColumn("{task.fields[stored]}"), TimeElapsedColumn(),
        console=Console(file=stream), transient=False)
    display.start()
    return display
