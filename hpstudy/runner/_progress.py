"""Progress of a run: a silent default for the Python API and a live rich display for the CLI.

Updates come from the training loop every epoch, so they must cost microseconds: the rich
display only records numbers and redraws on its own timer.
"""

from __future__ import annotations

import math
from typing import Any

from optuna.trial import TrialState


class Progress:
    """Receives run events. The base class ignores them (what the Python API uses), except
    that it keeps the last test-score retraining count (``scored``: done, total)."""

    scored: tuple[int, int] | None = None

    def experiment_started(self, studies: list[tuple[str, int]]) -> None:
        """The run will go through these (study name, budget) pairs, in this order."""

    def study_started(self, name: str, finished: int, budget: int, best: float | None) -> None:
        """A study begins (or continues) with ``finished`` of ``budget`` trials done."""

    def trial_started(self, name: str, number: int, max_epochs: int) -> None:
        """Trial ``number`` of study ``name`` starts training."""

    def epoch(self, name: str, epoch: int, value: float) -> None:
        """An epoch of the running trial ended with validation score ``value``."""

    def trial_finished(
        self, name: str, state: TrialState, value: float | None, best: float | None
    ) -> None:
        """The running trial ended."""

    def trials_finished(self, name: str, n: int, best: float | None) -> None:
        """``n`` trials finished COMPLETE at once (a batch of table lookups)."""
        for _ in range(n):
            self.trial_finished(name, TrialState.COMPLETE, None, best)

    def study_finished(self, name: str, reason: str) -> None:
        """The study stopped: ``reason`` is 'budget met', 'timeout', 'grid exhausted', ..."""

    def scoring(self, done: int, total: int) -> None:
        """Test-score retraining: ``done`` of ``total`` configurations retrained so far."""
        self.scored = (done, total)

    def close(self) -> None:
        """Stop drawing."""


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"


class RichProgress(Progress):
    """One live row per study: bar of finished/budget, best score, pruned/failed, current epoch."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as _RichProgress

        self._progress = _RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TextColumn(
                "[yellow]pruned {task.fields[pruned]}[/] [red]failed {task.fields[failed]}[/]"
            ),
            TextColumn("{task.fields[now]}"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            refresh_per_second=4,
        )
        self._tasks: dict[str, Any] = {}
        self._counts: dict[str, list[int]] = {}
        self._max_epochs = 0
        self._started = False

    def _start(self) -> None:
        if not self._started:  # nothing is drawn (not even a blank line) before work starts
            self._progress.start()
            self._started = True

    def experiment_started(self, studies: list[tuple[str, int]]) -> None:
        self._start()
        for name, budget in studies:  # every row up front, so the whole plan is visible
            self._add(name, budget, start=False)

    def _add(self, name: str, budget: int, start: bool) -> None:
        self._counts[name] = [0, 0]
        self._tasks[name] = self._progress.add_task(
            name, total=budget, completed=0, best="-", pruned=0, failed=0, now="", start=start
        )

    def study_started(self, name: str, finished: int, budget: int, best: float | None) -> None:
        self._start()
        if name not in self._tasks:
            self._add(name, budget, start=True)
        task = self._tasks[name]
        self._progress.start_task(task)
        # Several workers announce the same study: never move its bar backwards.
        done = max(finished, int(self._progress.tasks[task].completed))
        self._progress.update(task, total=budget, completed=done, best=_fmt(best), now="starting")

    def trial_started(self, name: str, number: int, max_epochs: int) -> None:
        self._max_epochs = max_epochs
        self._progress.update(self._tasks[name], now=f"trial {number}")

    def epoch(self, name: str, epoch: int, value: float) -> None:
        task = self._tasks[name]
        now = f"epoch {epoch}/{self._max_epochs} val {_fmt(value)}"
        self._progress.update(task, now=now)

    def trial_finished(
        self, name: str, state: TrialState, value: float | None, best: float | None
    ) -> None:
        counts = self._counts[name]
        if state == TrialState.PRUNED:
            counts[0] += 1
        elif state == TrialState.FAIL:
            counts[1] += 1
        self._progress.update(
            self._tasks[name],
            advance=1,
            best=_fmt(best),
            pruned=counts[0],
            failed=counts[1],
            now="",
        )

    def trials_finished(self, name: str, n: int, best: float | None) -> None:
        self._progress.update(self._tasks[name], advance=n, best=_fmt(best), now="")

    def study_finished(self, name: str, reason: str) -> None:
        self._progress.update(self._tasks[name], now=f"[green]{reason}[/]")

    def scoring(self, done: int, total: int) -> None:
        super().scoring(done, total)
        self._start()
        name = "test scores (retraining on train+validation)"
        if name not in self._tasks:
            self._add(name, total, start=True)
        self._progress.update(self._tasks[name], total=total, completed=done)

    def close(self) -> None:
        if self._started:
            self._progress.stop()
