"""Sources: where frames come from, named by URI-like specs (`beamc run --source SPEC`).

    deepsense:DIR            a DeepSense 6G scenario folder (real or from `beamc data synth deepsense`),
                             replayed at its timestamps; camera, LiDAR, radar, beam labels, beam powers
    csi:FILE.npz             a sub-6 CSI recording (format in sources/csi.py; `beamc data record csi`)
    synth:sub6               the embedded street simulator as a live CSI generator
    synth:deepsense          the embedded V2I simulator as a live camera/LiDAR/radar generator
    video:FILE               a video file through OpenCV (camera frames)
    camera:N                 a camera by device index through OpenCV
    rtsp://HOST/PATH         an RTSP stream through OpenCV
    gst:PIPELINE             a GStreamer pipeline string through OpenCV (ends in appsink)
    tcp://HOST:PORT          framed numpy arrays from a baseband or driver process (framing in sources/tcp.py)

Options follow a '?' as key=value pairs joined by '&', e.g. `synth:deepsense?seed=3&sequences=2`
or `tcp://0.0.0.0:5555?tolerance_ms=30`. A source yields `Frame`s and `BadFrame`s; it is
torch-free and imports OpenCV, scipy or sockets only when chosen.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beamc.errors import BeamcError
from beamc.runtime.frames import BadFrame, Frame

EXAMPLES = (
    ("deepsense:DIR", "deepsense:/data/scenario9", "DeepSense scenario folder replayed at its timestamps"),
    ("csi:FILE", "csi:recordings/street.npz", "sub-6 CSI recording (beamc data record csi)"),
    ("synth:sub6", "synth:sub6?snr_db=10", "embedded sub-6 simulator, live"),
    ("synth:deepsense", "synth:deepsense?seed=3&sequences=2", "embedded V2I simulator, live"),
    ("video:FILE", "video:drive.mp4", "video file (OpenCV)"),
    ("camera:N", "camera:0", "camera device (OpenCV)"),
    ("rtsp://...", "rtsp://10.0.0.2:8554/cam", "RTSP stream (OpenCV)"),
    ("gst:PIPELINE", "gst:v4l2src ! videoconvert ! appsink", "GStreamer pipeline (OpenCV)"),
    ("tcp://HOST:PORT", "tcp://0.0.0.0:5555?tolerance_ms=50", "framed numpy arrays over TCP (CSI, LiDAR, ...)"),
)


@dataclass
class SourceContext:
    """What a source may know about the run: the modalities the task's preprocessing needs
    (so simulators and readers skip the rest), the bundle manifest, and the pacing."""

    modalities: tuple[str, ...]
    manifest: Mapping[str, Any] = field(default_factory=dict)
    bundle: Path | None = None
    seed: int = 0


class Source:
    kind: str = ""
    # Live sources deliver frames on their own clock (camera, network): the pipeline never
    # paces them and drops a frame when it falls behind. Recorded ones are released at their
    # timestamps, at --rate, or as fast as possible.
    live: bool = False
    options_known: tuple[str, ...] = ()

    def __init__(self, target: str, options: dict[str, str], ctx: SourceContext) -> None:
        unknown = sorted(set(options) - set(self.options_known))
        if unknown:
            from beamc.errors import did_you_mean

            raise BeamcError(f"source '{self.kind}': unknown option '{unknown[0]}'{did_you_mean(unknown[0], self.options_known)}; "
                             f"known: {', '.join(self.options_known) or '(none)'}")
        self.target, self.options, self.ctx = target, options, ctx
        self.stopping = threading.Event()  # set by the pipeline: live sources stop waiting for input

    def frames(self) -> Iterator[Frame | BadFrame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def info(self) -> dict[str, Any]:
        """Source facts for the report (counts, alignment, file names)."""
        return {}

    # -- option helpers ----------------------------------------------------------------
    def opt(self, key: str, default: Any, kind: type = str) -> Any:
        if key not in self.options:
            return default
        text = self.options[key]
        try:
            if kind is bool:
                if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError
                return text.lower() in ("1", "true", "yes")
            return kind(text)
        except ValueError:
            raise BeamcError(f"source '{self.kind}': option {key}: expected {kind.__name__}, found {text!r}") from None


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """'kind:target?k=v&k2=v2' -> (kind, target, options). rtsp/http URLs keep their own query."""
    spec = spec.strip()
    if not spec:
        raise BeamcError("--source: empty spec; " + examples_line())
    for scheme in ("rtsp://", "rtsps://", "http://", "https://"):
        if spec.startswith(scheme):
            return "rtsp", spec, {}
    if " ! " in spec and not spec.startswith("gst:"):
        return "gst", spec, {}
    if spec.startswith("gst:"):
        return "gst", spec[4:], {}
    body, _, query = spec.partition("?")
    options: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise BeamcError(f"--source {spec}: option {item!r} is not key=value")
        options[key] = value
    if body.startswith("tcp://"):
        return "tcp", body[len("tcp://"):], options
    kind, colon, target = body.partition(":")
    if not colon:
        raise BeamcError(f"--source {spec}: expected KIND:TARGET; {examples_line()}")
    if kind == "synth":
        return f"synth:{target}", "", options
    return kind, target, options


def examples_line() -> str:
    return "sources: " + ", ".join(e[0] for e in EXAMPLES)


def open_source(spec: str, ctx: SourceContext) -> Source:
    from beamc.registry import SOURCES

    kind, target, options = parse_spec(spec)
    if kind not in SOURCES:
        from beamc.errors import did_you_mean

        raise BeamcError(f"--source {spec}: unknown source kind '{kind}'{did_you_mean(kind, SOURCES.names())}; "
                         f"{examples_line()}")
    return SOURCES.get(kind)(target, options, ctx)


__all__ = ["Source", "SourceContext", "parse_spec", "open_source", "EXAMPLES"]
