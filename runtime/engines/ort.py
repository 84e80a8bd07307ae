"""ONNX Runtime engine: the bundle's model at its precision (manifest model_file).

Execution providers: TensorRT and CUDA when this onnxruntime build has them (in that order),
always CPU as the fallback; `providers=` picks explicitly. Intra-op threads default to 1:
a batch-1 beam predictor gains little from more, and the pipeline's source and preprocessing
threads need the other cores.

Batch 1 on the CPU provider goes through an IOBinding bound once to preallocated input and
output buffers: `InferenceSession.run` validates its feed dict in Python on every call, which
for a 25k-parameter student is a third of the call (measured on the sub-6 student, 2-core CPU:
run() 6.5 us, run_with_iobinding on bound buffers 4.1 us). Other batches and the GPU providers
(whose device copies dominate anyway) take `session.run`. `iobinding=False` turns it off.
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
        self._bound: tuple[Any, list[np.ndarray], np.ndarray] | None = None
        warm_up(self, self.manifest)
        if self.options.get("iobinding", True) and self.session.get_providers()[0] == "CPUExecutionProvider":
            self._bind_batch1()
        return self

    def _bind_batch1(self) -> None:
        specs = self.manifest.get("inputs") or []
        if len(specs) != len(self.input_names):
            return  # no shapes to preallocate from: every call takes session.run
        buffers = [np.zeros((1, *s["shape"]), dtype=np.dtype(s.get("dtype", "float32"))) for s in specs]
        # the output's batch-1 shape and dtype, from a run on the zero inputs
        out = np.empty_like(self.session.run(self.outputs, dict(zip(self.input_names, buffers)))[0])
        binding = self.session.io_binding()
        for name, buf in zip(self.input_names, buffers):
            binding.bind_cpu_input(name, buf)
        binding.bind_output(self.output_name, "cpu", 0, out.dtype, list(out.shape), out.ctypes.data)
        self._bound = (binding, buffers, out)

    def run(self, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        bound = self._bound
        if bound is not None and len(inputs) == len(bound[1]):
            binding, buffers, out = bound
            # one input is the common case: compared directly, without a per-call generator
            fits = inputs[0].shape == buffers[0].shape if len(buffers) == 1 else \
                all(x.shape == b.shape for x, b in zip(inputs, buffers))
            if fits:
                for x, b in zip(inputs, buffers):
                    np.copyto(b, x, casting="same_kind")
                self.session.run_with_iobinding(binding)
                return out.copy()  # the bound buffer is overwritten by the next frame
        if len(inputs) == 1:
            return self.session.run(self.outputs, {self.input_names[0]: inputs[0]})[0]
        return self.session.run(self.outputs, dict(zip(self.input_names, inputs)))[0]

    def close(self) -> None:
        self._bound = None
        self.session = None

    def describe(self) -> dict[str, Any]:
        return {"engine": "ort", "model": self.model, "providers": self.session.get_providers() if self.session else None,
                "threads": int(self.options.get("threads", 1)), "batch1_iobinding": self._bound is not None}
