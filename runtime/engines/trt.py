"""TensorRT engine: the bundle's model.plan, built on first use on this device when absent.

Uses the build and buffer code that ships in every bundle (beamc.export.trt_build, copied as
build_engine.py): the engine is built from the manifest's ONNX with the target profile's
settings, verified on the golden set, then run with device buffers from cuda-python or
pycuda. Batches up to the profile's largest shape run in one call (micro-batching); larger
ones are split. tensorrt and the CUDA binding are imported only when the engine is opened.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from beamc.errors import BeamcError
from beamc.registry import ENGINES
from beamc.runtime.engines import Engine, warm_up


@ENGINES.register("trt")
class TrtEngine(Engine):
    name = "trt"

    def __enter__(self) -> TrtEngine:
        from beamc.export import trt_build

        try:
            trt_build.import_tensorrt()
            settings = trt_build.build_settings(self.manifest, self.options.get("precision"))
            plan = self.bundle / settings["plan"]
            self.built_now = not plan.exists()
            if self.built_now:
                log = self.options.get("log") or (lambda s: None)
                log(f"{plan} not found: building the TensorRT engine on this device (once)")
                report = trt_build.build_and_verify(self.bundle, self.manifest, plan_path=plan, log=log,
                                                    latency_iters=20)
                if not report.get("verification", {}).get("passed", True):
                    raise BeamcError(f"{plan}: the engine built here failed verification on the golden set "
                                     f"({report['verification']}); see {self.bundle / 'engine.json'}")
            self.runner = trt_build.EngineRunner(plan.read_bytes())
        except trt_build.MissingDependency as e:
            raise BeamcError(f"the trt engine needs TensorRT and a CUDA binding: {e}") from None
        except trt_build.BuildError as e:
            raise BeamcError(f"TensorRT: {e}") from None
        self.max_batch = self.runner.max_batch
        self.plan = plan
        warm_up(self, self.manifest)
        return self

    def run(self, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        if len(inputs[0]) <= self.max_batch:
            return self.runner._run_batch(inputs).astype(np.float32, copy=False)
        return self.runner.run(inputs)

    def close(self) -> None:
        runner = getattr(self, "runner", None)
        if runner is not None:
            runner.close()
            self.runner = None

    def describe(self) -> dict[str, Any]:
        return {"engine": "trt", "plan": self.plan.name, "built_on_first_use": self.built_now,
                "max_batch": self.max_batch, "device": self.runner.cuda.device() if self.runner else None}
