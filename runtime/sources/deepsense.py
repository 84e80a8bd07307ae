"""DeepSense 6G streams: a scenario folder replayed row by row (`deepsense:DIR`) and the
embedded V2I simulator as a live generator (`synth:deepsense`).

Runtime modality names are the sensors' (camera, lidar, radar, gps); a DeepSense row holds
them under unit1_rgb, unit1_lidar_SCR, unit1_radar and unit2_loc. One row is one instant:
its files share the row's timestamp, so a row is aligned by construction (tolerance 0). Only
the modalities the task's preprocessing needs are read, plus the 64 beam powers (labels and
the power loss of a top-K sweep) when the folder has them.

Replay: rows are released at their `time_stamp[UTC]`; a gap longer than `max_gap_s`
(default 1 s: the pause between two vehicle passes) is shortened to one frame interval so a
replay does not sit idle for the tens of seconds between sequences. A row whose file cannot
be decoded becomes a bad frame (reason per modality); rows the CSV check rejects (missing
file, bad field) are bad frames "bad CSV row" whose message names the CSV line, delivered in
their place in the CSV (after the row before them). Frame ids are the CSV `index` column for
every row, good or bad; -1 for a bad row whose `index` field itself is unreadable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from beamc.errors import BeamcError
from beamc.registry import SOURCES
from beamc.runtime.frames import (UNDECODABLE_IMAGE, UNREADABLE_FILE, UNREADABLE_MAT, BadFrame, Frame, FrameError)
from beamc.runtime.sources import Source, SourceContext

# runtime modality -> DeepSense reader name
TO_DEEPSENSE = {"camera": "rgb", "lidar": "lidar", "radar": "radar", "gps": "gps"}
REASON = {"rgb": UNDECODABLE_IMAGE, "lidar": UNREADABLE_MAT, "radar": UNREADABLE_MAT, "lidar_raw": UNREADABLE_MAT}


def _deepsense_names(modalities: tuple[str, ...], kind: str) -> list[str]:
    unknown = [m for m in modalities if m not in TO_DEEPSENSE]
    if unknown:
        raise BeamcError(f"source {kind}: the task needs modality '{unknown[0]}', which DeepSense folders do not "
                         f"hold; they hold {', '.join(TO_DEEPSENSE)}")
    return [TO_DEEPSENSE[m] for m in modalities]


@SOURCES.register("deepsense")
class DeepSenseFolder(Source):
    kind = "deepsense"
    options_known = ("csv", "max_gap_s", "strict")

    def __init__(self, target: str, options: dict[str, str], ctx: SourceContext) -> None:
        super().__init__(target, options, ctx)
        from beamc.data.deepsense import open_scenario

        self.sc = open_scenario(Path(target), csv_name=self.opt("csv", None), lenient=not self.opt("strict", False, bool))
        self.names = _deepsense_names(ctx.modalities, "deepsense")
        missing = [n for n in self.names if n not in self.sc.paths]
        if missing:
            raise BeamcError(f"{self.sc.csv_path}: the task needs '{missing[0]}' frames, this scenario has: "
                             f"{', '.join(self.sc.modalities) or 'no file columns'}")
        self.max_gap = self.opt("max_gap_s", 1.0, float)

    def timeline(self) -> np.ndarray:
        """Release times (s): row timestamps with long gaps shortened to the median interval."""
        t = self.sc.time_s
        if len(t) < 2:
            return t.copy()
        dt = np.diff(t)
        dt = np.where(dt < 0, dt + 86400.0, dt)  # midnight roll-over of the HH-MM-SS clock
        step = float(np.median(dt[dt <= self.max_gap])) if np.any(dt <= self.max_gap) else 0.111
        dt = np.where(dt > self.max_gap, step, dt)
        return t[0] + np.concatenate([[0.0], np.cumsum(dt)])

    def frames(self) -> Iterator[Frame | BadFrame]:
        from beamc.data import deepsense as ds

        sc, timeline = self.sc, self.timeline()
        summary = sc.summary
        skipped = list(zip(summary.skipped_lines, summary.skipped_index or [None] * len(summary.skipped_lines)))
        s = 0  # next skipped row to deliver: each goes out before the first kept row after it in the CSV

        def bad_rows(before_line: float, t: float) -> Iterator[BadFrame]:
            nonlocal s
            while s < len(skipped) and skipped[s][0][0] < before_line:
                (_, message), index = skipped[s]
                yield BadFrame(id=-1 if index is None else int(index), reason="bad CSV row", message=message, t=t)
                s += 1

        has_power = "power" in sc.paths
        for i in range(sc.n):
            yield from bad_rows(int(sc.line[i]), float(timeline[max(i - 1, 0)]))
            frame = Frame(id=int(sc.index[i]), t=float(timeline[i]), key=int(sc.segment[i]),
                          label=int(sc.beam[i]) if sc.beam[i] >= 0 else None)

            def load(frame: Frame = frame, i: int = i) -> None:
                data = {}
                for modality, name in zip(self.ctx.modalities, self.names):
                    try:
                        data[modality] = ds.read(sc, name, i)
                    except BeamcError as e:
                        raise FrameError(REASON.get(name, UNREADABLE_FILE), str(e)) from None
                frame.data = data
                if has_power:
                    try:
                        frame.power = ds.read_power(sc, i)
                    except BeamcError:
                        frame.power = None  # the prediction still counts; only the power loss skips it

            frame.load = load
            yield frame
        yield from bad_rows(float("inf"), float(timeline[-1]) if len(timeline) else 0.0)

    def info(self) -> dict[str, Any]:
        return {"folder": str(self.sc.root), "csv": self.sc.csv_path.name, "rows": int(self.sc.n),
                "sequences": int(len(self.sc.sequences())), "modalities_read": list(self.ctx.modalities),
                "csv_rows_skipped": dict(self.sc.summary.skipped), "alignment": {"tolerance_ms": 0.0,
                "note": "one CSV row per instant: its files share the row's timestamp"}, "max_gap_s": self.max_gap}


@SOURCES.register("synth:deepsense")
class DeepSenseSimulator(Source):
    """The V2I street simulator rendering frames on demand (no files): the sensors the task
    needs plus the 64 beam powers of each frame. Finite: `sequences` vehicle passes."""

    kind = "synth:deepsense"
    options_known = ("seed", "sequences", "min_frames", "max_frames")

    def __init__(self, target: str, options: dict[str, str], ctx: SourceContext) -> None:
        super().__init__(target, options, ctx)
        from dataclasses import replace

        from beamc.data.synth.v2i import DeepSenseSynthConfig

        names = _deepsense_names(ctx.modalities, "synth:deepsense")
        cfg = DeepSenseSynthConfig()
        cfg = replace(cfg, seed=self.opt("seed", ctx.seed, int), sequences=self.opt("sequences", 4, int),
                      min_frames=self.opt("min_frames", cfg.min_frames, int),
                      max_frames=self.opt("max_frames", cfg.max_frames, int),
                      camera="rgb" in names, lidar="lidar" in names, radar="radar" in names, gps="gps" in names)
        cfg.check()
        self.cfg = cfg

    def frames(self) -> Iterator[Frame]:
        from beamc.data.synth import v2i

        t0, last, shift = None, None, 0.0
        for f in v2i.frames(self.cfg):
            t0 = f.t if t0 is None else t0
            if last is not None and f.t - last > 1.0:  # the pause between passes, as deepsense:DIR replays it
                shift += f.t - last - self.cfg.frame_interval_s
            last = f.t
            data = {}
            for modality, attr in (("camera", "image"), ("lidar", "lidar"), ("radar", "radar"), ("gps", "gps")):
                if modality in self.ctx.modalities:
                    data[modality] = getattr(f, attr)
            # the 1-based CSV beam is argmax(power) + 1; labels here are 0-based like Scenario.beam
            yield Frame(id=f.g, t=f.t - t0 - shift, data=data, label=int(np.argmax(f.power)), power=f.power, key=f.seq)

    def info(self) -> dict[str, Any]:
        return {"seed": self.cfg.seed, "sequences": self.cfg.sequences, "modalities": list(self.ctx.modalities)}
