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


END = object()  # queue sentinel: the stream is over
