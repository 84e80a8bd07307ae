"""PyTorch engine: the run's student checkpoint (student.pt), the baseline the exported
engines are compared with. torch and beamc.compress are imported only when it is opened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from beamc.errors import BeamcError
from beamc.registry import ENGINES
from beamc.runtime.engines import Engine, warm_up


@ENGINES.register("torch")
class TorchEngine(Engine):
    """options: run_dir (default: the bundle manifest's run.path), device ("cpu"), threads."""

    name = "torch"

    def __enter__(self) -> TorchEngine:
        try:
            import torch
        except ImportError:
            raise BeamcError("the torch engine (and --baseline) needs PyTorch: pip install 'beamc[train]'") from None
        from beamc.compress.modeling import load_model

        run_dir = Path(self.options.get("run_dir") or self.manifest.get("run", {}).get("path", ""))
        ckpt = run_dir / "student.pt"
        if not ckpt.is_file():
            raise BeamcError(f"baseline run {run_dir}: no student.pt (give the run directory the bundle was exported from)")
        task = self.manifest.get("task", {}).get("name")
        self.model, info = load_model(ckpt, expect_task=task)
        expected = self.manifest.get("run", {}).get("checkpoint_sha256")
        if expected:
            from beamc.export.bundle import sha256_file

            self.same_checkpoint = sha256_file(ckpt) == expected
        else:
            self.same_checkpoint = None
        self.torch = torch
        if self.options.get("threads"):
            torch.set_num_threads(int(self.options["threads"]))
        self.device = torch.device(self.options.get("device", "cpu"))
        self.model.to(self.device).eval()
        self.run_dir = run_dir
        warm_up(self, self.manifest)
        return self

    def run(self, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            out = self.model(*(torch.from_numpy(np.ascontiguousarray(x)).to(self.device) for x in inputs))
        return out.float().cpu().numpy()

    def close(self) -> None:
        self.model = None

    def describe(self) -> dict[str, Any]:
        return {"engine": "torch", "run": str(self.run_dir), "device": str(self.device),
                "checkpoint_matches_bundle": self.same_checkpoint}
