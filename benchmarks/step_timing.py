"""Shared by the vision training-step benchmarks (vision_window_block.py, kd_teacher_outputs.py):
the simulated data they time on, their common options, and the interleaved timing loop."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any


def add_step_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--sequences", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=10, help="timed training steps per setting and round")
    ap.add_argument("--rounds", type=int, default=3)


def simulated_vision(image_size: int, sequences: int, **task: Any) -> Any:
    """VisionData of the embedded simulator with `sequences` sequences and task options `task`."""
    from beamc.registry import TASKS
    from beamc.tasks.vision import VisionDataConfig, VisionTaskConfig

    dc = VisionDataConfig()
    dc = replace(dc, synth=replace(dc.synth, sequences=sequences))
    return TASKS.get("vision").prepare(VisionTaskConfig(image_size=image_size, **task), dc, progress=False)


def interleaved_step_seconds(settings: dict[str, Callable[[int], Iterable[Callable[[], None]]]], batches: int,
                             rounds: int) -> dict[str, list[float]]:
    """Seconds per training step of each setting. `settings[name](round)` yields one callable per
    step (a fresh model per round); the settings take turns within a round, so load changes on a
    shared machine hit all of them alike, and each round's first step (allocator warm-up) is not timed."""
    seconds: dict[str, list[float]] = {name: [] for name in settings}
    for r in range(rounds):
        for name, steps in settings.items():
            for i, step in enumerate(steps(r)):
                if i > batches:
                    break
                t0 = time.perf_counter()
                step()
                if i > 0:
                    seconds[name].append(time.perf_counter() - t0)
    return seconds
