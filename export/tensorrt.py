"""Step 3, TrtEngineFromOnnx: build and verify the TensorRT engine here, when possible.

TensorRT and the CUDA bindings are imported lazily: TensorRT comes from JetPack on a Jetson
or from NVIDIA's package index elsewhere, pycuda builds only where the CUDA toolkit is
installed, and neither installs on a CPU machine. Without them `beamc export` still writes
the ONNX/int8 bundle and says that the engine will be built on the device by the bundle's
build_engine.py, which is this same code (beamc.export.trt_build) copied verbatim.

An engine is tied to the GPU and TensorRT version that built it, so an engine built here is
only useful when this machine is the target (or the same GPU and TensorRT version).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from beamc.errors import BeamcError
from beamc.export import trt_build
from beamc.export.verify import GateFailure


def tensorrt_status() -> dict[str, Any]:
    """Whether an engine can be built here: TensorRT importable, a CUDA binding and a GPU."""
    try:
        trt = trt_build.import_tensorrt()
    except trt_build.MissingDependency as e:
        return {"available": False, "tensorrt": None, "reason": str(e)}
    try:
        device = trt_build.cuda_binding().device()
    except trt_build.MissingDependency as e:
        return {"available": False, "tensorrt": trt.__version__, "reason": str(e)}
    except Exception as e:  # noqa: BLE001 - no GPU / driver: CUDA raises its own error types
        return {"available": False, "tensorrt": trt.__version__, "reason": f"no usable CUDA GPU ({e})"}
    return {"available": True, "tensorrt": trt.__version__, "device": device, "reason": ""}


def require_tensorrt() -> Any:
    """The tensorrt module, or a BeamcError that says what to install."""
    try:
        return trt_build.import_tensorrt()
    except trt_build.MissingDependency as e:
        raise BeamcError(str(e)) from None


@dataclass
class EngineArtifact:
    path: Path
    report: dict[str, Any]


class TrtEngineFromOnnx:
    """Build `model.plan` in `bundle` from the manifest's ONNX file for its precision and
    verify it on the golden set (tolerances from the profile's gates)."""

    def __init__(self, bundle: str | Path, manifest: dict[str, Any], *, force: bool = False,
                 log: Callable[[str], None] = print):
        self.bundle, self.manifest, self.force, self.log = Path(bundle), manifest, force, log

    def __call__(self) -> EngineArtifact:
        require_tensorrt()
        try:
            report = trt_build.build_and_verify(self.bundle, self.manifest, force=self.force, log=self.log)
        except trt_build.MissingDependency as e:
            raise BeamcError(str(e)) from None
        except trt_build.BuildError as e:
            raise BeamcError(f"TensorRT build failed: {e}") from None
        ver = report.get("verification", {})
        failed = [g for g in ver.get("gates", []) if not g["passed"]]
        if failed:
            raise GateFailure("TensorRT engine", [{**g, "context": f"vs {ver['reference']} on {ver['samples']} golden samples"}
                                                  for g in failed], ver)
        return EngineArtifact(self.bundle / report["plan"], report)


__all__ = ["TrtEngineFromOnnx", "EngineArtifact", "tensorrt_status", "require_tensorrt"]
