"""ONNX Runtime engine: the bundle's model at its precision (manifest model_file).

Execution providers: TensorRT and CUDA when this onnxruntime build has them (in that order),
always CPU as the fallback; `providers=` picks explicitly. Intra-op threads default to 1:
a batch-1 beam predictor gains little from more, and the pipeline's source and preprocessing
threads need the other cores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from beamc.errors import BeamcError
from beamc.registry import ENGINES
from beamc.runtime.engines import Engine, warm_up

PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def import_ort() -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise BeamcError("the ort engine needs ONNX Runtime: pip install onnxruntime (onnxruntime-gpu for CUDA)") from None
    return ort


@ENGINES.register("ort")
class OrtEngine(Engine):
    name = "ort"

    def __enter__(self) -> OrtEngine:
        ort = import_ort()
        model = self.options.get("model_file") or self.manifest.get("model_file") or "model.onnx"
        path = self.bundle / model
        if not path.is_file():
            raise BeamcError(f"{self.bundle}: model file {model} not found (manifest model_file)")
        available = ort.get_available_providers()
        wanted = self.options.get("providers") or [p for p in PREFERRED if p in available]
        missing = [p for p in wanted if p not in available]
        if missing:
            raise BeamcError(f"ONNX Runtime provider {missing[0]} is not available here; available: {', '.join(available)}")
        opts = ort.SessionOptions()
        threads = int(self.options.get("threads", 1))
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=list(wanted))
        self.input_names = [i.name for i in self.session.get_inputs()]
        expected = [i["name"] for i in self.manifest.get("inputs", [])]
        if expected and expected != self.input_names:
            raise BeamcError(f"{path}: inputs {self.input_names} differ from the manifest's {expected}")
        self.output_name = self.session.get_outputs()[0].name
        self.outputs = [self.output_name]
        self.model = model
        warm_up(self, self.manifest)
        return self

    def run(self, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        if len(inputs) == 1:
            return self.session.run(self.outputs, {self.input_names[0]: inputs[0]})[0]
        return self.session.run(self.outputs, dict(zip(self.input_names, inputs)))[0]

    def close(self) -> None:
        self.session = None

    def describe(self) -> dict[str, Any]:
        return {"engine": "ort", "model": self.model, "providers": self.session.get_providers() if self.session else None,
                "threads": int(self.options.get("threads", 1))}
