"""Camera frames through OpenCV `VideoCapture`: video files (`video:FILE`), cameras by
device index (`camera:N`), RTSP URLs (`rtsp://...`) and GStreamer pipelines (`gst:...`).

Frames come out as uint8 RGB [H, W, 3] under the modality 'camera' (OpenCV decodes BGR).
A video file is a recording: it is paced by its frame timestamps (CAP_PROP_POS_MSEC) unless
the run says --rate or --as-fast-as-possible. Cameras and network streams are live: their
timestamps are the receive times. A frame OpenCV cannot decode in the middle of a file is
a bad frame and the file goes on; `max_failures` failed reads in a row (default 25) mean the
device or stream is gone and end the run with that message.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from beamc.errors import BeamcError
from beamc.registry import SOURCES
from beamc.runtime.frames import UNDECODABLE_VIDEO, BadFrame, Frame, SourceDied
from beamc.runtime.sources import Source, SourceContext


def import_cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise BeamcError("video/camera sources need OpenCV: pip install opencv-python-headless "
                         "(or the distribution's python3-opencv on a Jetson)") from None
    return cv2


class OpenCvSource(Source):
    options_known = ("max_failures",)
    what = "video"

    def _open(self) -> Any:
        raise NotImplementedError

    def __init__(self, target: str, options: dict[str, str], ctx: SourceContext) -> None:
        super().__init__(target, options, ctx)
        if "camera" not in ctx.modalities:
            raise BeamcError(f"source {self.kind}: delivers camera frames, the task needs {', '.join(ctx.modalities)}")
        self.cv2 = import_cv2()
        self.cap = self._open()
        if not self.cap.isOpened():
            raise BeamcError(f"source {self.kind}: OpenCV cannot open {self.what} {target!r}")
        self.max_failures = self.opt("max_failures", 25, int)
        self.fps = float(self.cap.get(self.cv2.CAP_PROP_FPS) or 0.0)
        self.count = int(self.cap.get(self.cv2.CAP_PROP_FRAME_COUNT) or 0)

    def frames(self) -> Iterator[Frame | BadFrame]:
        cv2 = self.cv2
        i, failures, start = 0, 0, time.monotonic()
        while True:
            ok, bgr = self.cap.read()
            if not ok or bgr is None:
                if not self.live and (self.count <= 0 or i >= self.count):
                    return  # end of the file
                failures += 1
                if failures >= self.max_failures:
                    raise SourceDied(f"source {self.kind}: {failures} reads in a row failed at frame {i} of {self.target!r}; "
                                     f"the {self.what} stopped delivering frames")
                yield BadFrame(id=i, reason=UNDECODABLE_VIDEO, message=f"{self.target}: frame {i}: OpenCV could not decode it")
                i += 1
                continue
            failures = 0
            if bgr.ndim != 3 or bgr.shape[2] != 3:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB) if bgr.ndim == 2 else bgr[..., :3][..., ::-1]
            else:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if self.live:
                t = time.monotonic() - start
            else:
                ms = self.cap.get(cv2.CAP_PROP_POS_MSEC)
                t = ms / 1e3 if ms and ms > 0 else (i / self.fps if self.fps > 0 else i * 0.1)
            yield Frame(id=i, t=t, data={"camera": np.ascontiguousarray(rgb)})
            i += 1

    def close(self) -> None:
        self.cap.release()

    def info(self) -> dict[str, Any]:
        return {"target": self.target, "fps": self.fps, "frame_count": self.count if not self.live else None}


@SOURCES.register("video")
class VideoFile(OpenCvSource):
    kind, what = "video", "video file"

    def _open(self) -> Any:
        if not Path(self.target).is_file():
            raise BeamcError(f"source video: file not found: {self.target}")
        return self.cv2.VideoCapture(self.target)


@SOURCES.register("camera")
class Camera(OpenCvSource):
    kind, what, live = "camera", "camera", True

    def _open(self) -> Any:
        try:
            index = int(self.target)
        except ValueError:
            raise BeamcError(f"source camera: expected a device index like camera:0, found {self.target!r}") from None
        return self.cv2.VideoCapture(index)


@SOURCES.register("rtsp")
class Rtsp(OpenCvSource):
    kind, what, live = "rtsp", "stream", True

    def _open(self) -> Any:
        return self.cv2.VideoCapture(self.target)


@SOURCES.register("gst")
class GStreamer(OpenCvSource):
    kind, what, live = "gst", "GStreamer pipeline", True

    def _open(self) -> Any:
        return self.cv2.VideoCapture(self.target, self.cv2.CAP_GSTREAMER)
