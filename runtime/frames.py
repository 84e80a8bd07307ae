"""What travels through the pipeline: sensor frames, bad frames and the per-frame clock.

A source yields `Frame`s (one instant of one or more sensors, plus the label and per-beam
power when the recording has them) or `BadFrame`s (an instant that could not be decoded).
Recorded sources may hand out frames whose arrays are not read yet (`load`), so that the
pipeline can release them at their timestamps and time the decoding as part of the base
station's work rather than the replay's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from beamc.errors import BeamcError

# Reasons a frame is counted as bad (report keys). Sources and the pipeline use these so the
# report groups the same problem under one name whichever source hit it.
UNDECODABLE_IMAGE = "undecodable image"
UNREADABLE_MAT = "unreadable .mat"
UNREADABLE_FILE = "unreadable file"
MALFORMED_NETWORK = "malformed network frame"
SHAPE_MISMATCH = "shape mismatch"
MISSING_MODALITY = "missing modality"
UNDECODABLE_VIDEO = "undecodable video frame"
NON_FINITE_INPUT = "non-finite input"      # NaN or inf in a sensor array: the model output would be garbage
NON_FINITE_OUTPUT = "non-finite output"    # the engine gave NaN/inf logits for finite inputs
BAD_TIMESTAMP = "bad timestamp"

# Reasons a predicted frame is left out of scoring (report frames.unscored_by_reason): the
# prediction stands, but its label or power cannot be trusted to measure it.
BAD_LABEL = "bad label"


class FrameError(BeamcError):
    """One frame cannot be used; the stream goes on. `reason` groups it in the report."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class SourceDied(BeamcError):
    """The source cannot deliver any more frames (device gone, connection lost mid-frame)."""


@dataclass(slots=True)  # one per sensor instant: slots make it cheaper to build and read
class Frame:
    id: int                                   # frame id as the source numbers it (row index, network id, ...)
    t: float                                  # source timestamp, seconds (recording clock)
    data: dict[str, np.ndarray] | None = field(default_factory=dict)  # modality -> raw array (None once preprocessed)
    label: Any = None                         # best beam (int, 0-based) when the stream knows it
    power: np.ndarray | None = None           # per-beam received power (linear) when known
    key: Any = None                           # sequence / user: a change resets the preprocessing history
    load: Callable[[], None] | None = None    # fills `data` (and label/power) lazily; raises FrameError
    t_arrival: float = 0.0                    # perf_counter: the frame reached the base station
    t_read: float = 0.0                       # perf_counter: its arrays are decoded


@dataclass(slots=True)
class BadFrame:
    id: int
    reason: str
    message: str
    t: float = 0.0


@dataclass(slots=True)
class Unscored:
    """A predicted frame left out of scoring (its label or power is unusable)."""

    id: int
    reason: str
    message: str


END = object()  # queue sentinel: the stream is over


def non_finite(frame: Frame) -> str | None:
    """Why the frame's sensor arrays cannot go into the model (NaN or inf in one), or None.

    Checked on the raw arrays, before preprocessing, so the frame becomes a hole in the
    history instead of poisoning every window it would be part of. Integer arrays (images)
    are always finite and are not scanned."""
    for name, x in frame.data.items():
        kind = x.dtype.kind if hasattr(x, "dtype") else np.asarray(x).dtype.kind
        if kind in "fc" and not np.isfinite(x).all():
            bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
            return (f"frame {frame.id}: {name} has {bad} non-finite value{'s' if bad != 1 else ''} (NaN or inf) of "
                    f"{np.size(x)}; expected finite numbers")
    return None


def check_label(label: Any, beams: int | None, frame_id: int) -> tuple[int | None, str | None]:
    """(label to score with, problem) for a frame's label: a single integer 0..beams-1, or
    None / -1 for unknown (the recording formats' "no label"). Anything else is a problem:
    the frame is still predicted but not scored, so a bad label cannot shift the metrics."""
    if label is None:
        return None, None
    if type(label) is int and 0 <= label and (beams is None or label < beams):  # the common case, no numpy
        return label, None
    a = np.asarray(label)
    value: Any = None
    if a.size == 1:
        v = a.ravel()[0]
        if a.dtype.kind in "iu":
            value = int(v)
        elif a.dtype.kind == "f" and np.isfinite(v) and float(v).is_integer():
            value = int(v)  # MATLAB saves numbers as double: 12.0 is beam 12
    if value == -1:
        return None, None
    if value is not None and value >= 0 and (beams is None or value < beams):
        return value, None
    found = (f"{a.dtype} array of shape {list(a.shape)}" + (f" {a.ravel()[:4].tolist()}" if a.size else "")
             if a.size != 1 else repr(a.ravel()[0].item()))
    expected = f"one integer beam index 0..{beams - 1}" if beams else "one non-negative integer beam index"
    return None, f"frame {frame_id}: label: expected {expected} (or -1: unknown), found {found}; predicted, not scored"
