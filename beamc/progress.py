"""Progress of long stages (training, frame decoding, file checks), on a terminal and in a log file.

On a terminal, rich's live bars. When the output is a file or a pipe (CI, `nohup`, `> log`)
rich cannot redraw, and it prints nothing until the stage ends: a 20-minute teacher would
leave "preparing data ..." as the last line of the log. `LineProgress` implements the part of
rich's Progress API the stages use (add_task / update, as a context manager) and prints one
plain line per task at most every `interval` seconds, and one when the task completes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

T = TypeVar("T")


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float
    started: float = field(default_factory=time.monotonic)
    last_line: float = field(default_factory=time.monotonic)
    finished: bool = False


class LineProgress:
    """rich.progress.Progress's add_task / update for output that is not a terminal: plain lines."""

    def __init__(self, stream: TextIO | None = None, interval: float = 30.0):
        self.stream = stream
        self.interval = interval
        self.tasks: dict[int, _Task] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **_: Any) -> int:
        task_id = len(self.tasks)
        self.tasks[task_id] = _Task(description, total, completed)
        self._line(self.tasks[task_id], "started")
        return task_id

    def update(self, task_id: int, *, advance: float | None = None, completed: float | None = None,
               description: str | None = None, **_: Any) -> None:
        task = self.tasks[task_id]
        if description is not None:
            task.description = description
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        now = time.monotonic()
        if task.total is not None and task.completed >= task.total and not task.finished:
            task.finished = True
            self._line(task, "done")
        elif now - task.last_line >= self.interval:
            self._line(task, None)

    def _line(self, task: _Task, state: str | None) -> None:
        task.last_line = time.monotonic()
        elapsed = task.last_line - task.started
        share = f" {task.completed:.0f}/{task.total:.0f}" if task.total else ""
        suffix = f" {state}" if state else ""
        stream = self.stream or sys.stderr
        print(f"{task.description}{share} [{elapsed:.0f} s]{suffix}", file=stream, flush=True)


def _on_terminal() -> bool:
    from rich.console import Console

    return Console().is_terminal


def stage_progress(enabled: bool) -> Any:
    """rich bars on a terminal, LineProgress otherwise, None when progress is off."""
    if not enabled:
        return None
    if not _on_terminal():
        return LineProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), transient=False)


def track(items: Iterable[T], label: str, show: bool, total: int | None = None) -> Iterator[T]:
    """Yield `items` with a transient bar on a terminal, LineProgress lines in a log, nothing when not
    `show`. Pass `total` for a generator that should not be materialised (e.g. simulated frames)."""
    if not show:
        yield from items
        return
    if total is None:
        items = items if hasattr(items, "__len__") else list(items)
        total = len(items)  # type: ignore[arg-type]
    if _on_terminal():
        from rich.progress import Progress

        bar: Any = Progress(transient=True)
    else:
        bar = LineProgress()
    with bar:
        task = bar.add_task(label, total=total)
        for x in items:
            yield x
            bar.update(task, advance=1)
