"""Shared bits of the CLI: consoles, the debug flag, rich progress."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from enum import Enum

# the samplers as a choice the help lists (an Enum's values; "dpm++" is no Python name)
Sampler = Enum("Sampler", {"dpmpp": "dpm++", "ddim": "ddim", "ddpm": "ddpm"}, type=str)

console = Console()
console_err = Console(stderr=True)
STATE: dict[str, bool] = {"debug": False}


@contextlib.contextmanager
def stage_progress(quiet: bool = False) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress display driven by ``callback(stage, done, total)``.

    Each distinct ``stage`` gets its own bar with an ETA.
    """
    if quiet:
        yield lambda stage, done, total: None
        return
    progress = Progress(TextColumn("[bold]{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console_err,
                        transient=False)
    tasks: dict[str, int] = {}

    def callback(stage: str, done: int, total: int) -> None:
        if not tasks:
            progress.start()  # lazily: an early error prints no empty display
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    try:
        yield callback
    finally:
        if tasks:
            progress.stop()
