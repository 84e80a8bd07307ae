"""Engines: one interface over ONNX Runtime, TensorRT and the PyTorch baseline.

    with open_engine("ort", bundle_dir, manifest) as engine:
        logits = engine.run((x,))            # inputs batch first, as the manifest lists them

An engine is a context manager (Polygraphy-style runner): `__enter__` loads the model,
`run` maps a tuple of numpy inputs (any batch up to `max_batch`) to the first output as a
float32 numpy array, `__exit__` frees it. Backends import onnxruntime, tensorrt or torch
only when opened, so a device with only one of them runs bundles with that one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class Engine:
    name: str = ""
    max_batch: int | None = None  # None: any batch

    def __init__(self, bundle: Path, manifest: dict[str, Any], **options: Any) -> None:
        self.bundle, self.manifest, self.options = Path(bundle), manifest, options

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def run(self, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        """What ran, for the report (backend, providers, model file, device)."""
        return {"engine": self.name}


def warm_up(engine: Engine, manifest: dict[str, Any], runs: int = 3) -> None:
    """A few batch-1 runs on zeros: first calls allocate and pick kernels, and that cost
    belongs to start-up, not to the first frame's deadline."""
    specs = manifest.get("inputs") or []
    if not specs:
        return
    zeros = tuple(np.zeros((1, *s["shape"]), dtype=np.dtype(s.get("dtype", "float32"))) for s in specs)
    try:
        for _ in range(runs):
            engine.run(zeros)
    except Exception as e:  # noqa: BLE001 - backends raise their own types
        from beamc.errors import BeamcError

        raise BeamcError(f"{engine.bundle}: the {engine.name} engine rejects the manifest's inputs "
                         f"{[(s['name'], s['shape']) for s in specs]} ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def open_engine(name: str, bundle: str | Path, manifest: dict[str, Any], **options: Any) -> Engine:
    from beamc.registry import ENGINES

    return ENGINES.get(name)(Path(bundle), manifest, **options)


__all__ = ["Engine", "open_engine", "warm_up"]
