"""Timestamp alignment of multi-sensor messages into frames.

Sensors deliver on their own clocks (a camera driver and a LiDAR driver send separately), so
a frame is assembled from messages whose timestamps lie within `tolerance_s` of the first
message of the frame. A frame is emitted as soon as every modality the task needs is present
(lowest latency); auxiliary fields (label, power, key) that arrive after that are late.

Counted for the report, per modality:
* late:    a message for an instant whose frame was already emitted without it -- dropped
           (a message of a modality the emitted frame already has starts a new frame: sensors
           may run faster than the tolerance);
* missing: a frame superseded by a newer complete one, or still open at the end of the
           stream, without this modality -- the frame becomes a bad frame "missing modality".
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from beamc.runtime.frames import MISSING_MODALITY, BadFrame, Frame

AUXILIARY = ("label", "power", "key")


@dataclass
class _Group:
    t: float
    id: int
    data: dict[str, np.ndarray] = field(default_factory=dict)


def _nearest(groups: list[_Group], t: float, tolerance: float) -> _Group | None:
    best = min(groups, key=lambda g: abs(g.t - t), default=None)
    return best if best is not None and abs(best.t - t) <= tolerance else None


class Aligner:
    def __init__(self, required: tuple[str, ...], tolerance_s: float = 0.05, max_pending: int = 32):
        self.required, self.tolerance, self.max_pending = tuple(required), float(tolerance_s), max_pending
        self.pending: list[_Group] = []
        self.emitted: deque[_Group] = deque(maxlen=64)
        self.late: Counter = Counter()
        self.missing: Counter = Counter()
        self.unused: Counter = Counter()

    def push(self, modality: str, array: np.ndarray, frame_id: int, t: float) -> list[Frame | BadFrame]:
        """One message in; the frames (and bad frames) it completes or expires out. `t` must be
        finite (callers turn other messages into bad frames): ordering and matching rely on it."""
        if modality not in self.required and modality not in AUXILIARY:
            self.unused[modality] += 1
            return []
        group = _nearest([g for g in self.pending if modality not in g.data], t, self.tolerance)
        if group is None:
            # an instant already emitted without this modality: the message came too late
            if _nearest([e for e in self.emitted if modality not in e.data], t, self.tolerance) is not None:
                self.late[modality] += 1
                return []
            group = _Group(t=t, id=frame_id)
            self.pending.append(group)
            self.pending.sort(key=lambda g: g.t)
        group.data[modality] = array
        out: list[Frame | BadFrame] = []
        if all(m in group.data for m in self.required):
            # older incomplete frames will not be completed in time: report them missing
            for old in [g for g in self.pending if g.t < group.t]:
                out.append(self._expire(old))
            self.pending.remove(group)
            self.emitted.append(_Group(group.t, group.id, {m: None for m in group.data}))  # names only
            out.append(self._frame(group))
        while len(self.pending) > self.max_pending:
            out.append(self._expire(self.pending[0]))
        return out

    def flush(self) -> list[BadFrame]:
        """End of stream: every open frame is incomplete."""
        return [self._expire(g) for g in list(self.pending)]

    def _expire(self, g: _Group) -> BadFrame:
        self.pending.remove(g)
        lacking = [m for m in self.required if m not in g.data]
        for m in lacking:
            self.missing[m] += 1
        return BadFrame(id=g.id, reason=MISSING_MODALITY, t=g.t,
                        message=f"frame {g.id} (t={g.t:.3f} s): no {', '.join(lacking)} within "
                                f"{self.tolerance * 1e3:g} ms (has {', '.join(sorted(g.data)) or 'nothing'})")

    def _frame(self, g: _Group) -> Frame:
        data = {m: g.data[m] for m in self.required}
        label = g.data.get("label")
        if label is not None:
            a = np.asarray(label)
            # one integer: a plain int; anything else ([1, 2, 3], 2.5) goes on as sent, for the
            # pipeline's check_label to count as a bad label instead of silently taking a value
            label = int(a.ravel()[0]) if a.size == 1 and a.dtype.kind in "iu" else a
        key = g.data.get("key")
        return Frame(id=g.id, t=g.t, data=data, label=label,
                     power=np.asarray(g.data["power"]).ravel() if "power" in g.data else None,
                     key=None if key is None else np.asarray(key).ravel()[0].item())

    def info(self) -> dict[str, Any]:
        return {"tolerance_ms": self.tolerance * 1e3, "required": list(self.required), "late": dict(self.late),
                "missing": dict(self.missing), "unused": dict(self.unused)}
