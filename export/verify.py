"""Parity metrics and ONNX Runtime predictors (numpy only; no torch).

Every exporter step compares its artifact with the previous one on the golden inputs using
`compare`; accuracy on labelled data uses `accuracy`. Definitions (stated once, used by
parity.json and build_engine.py alike):

* max_abs_error  max |candidate - reference| over all output elements;
* max_rel_error  max_abs_error / max |reference|: relative to the output scale, so logits
                 near zero do not blow the number up;
* top1_agreement fraction of samples (x steps) whose arg-max class is the same;
* topK           fraction of samples (x steps) whose label is among the K largest logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from beamc.errors import BeamcError
from beamc.tasks.base import predict_in_batches, topk_hits
# One definition of the parity numbers for beamc and for the bundle's build_engine.py (which
# must run without beamc), so parity.json and the device's engine.json mean the same thing.
from beamc.export.trt_build import compare


@dataclass
class Golden:
    """Real preprocessed test samples, their labels and the PyTorch student's outputs."""

    inputs: tuple[np.ndarray, ...]
    labels: np.ndarray
    outputs: np.ndarray
    topk: tuple[int, ...] = (1, 3, 5)

    def __len__(self) -> int:
        return len(self.labels)


class GateFailure(BeamcError):
    """An artifact missed an accuracy gate; the message has the measured numbers."""

    def __init__(self, step: str, failed: list[dict[str, Any]], parity: dict[str, Any] | None = None):
        self.step, self.failed, self.parity = step, failed, parity or {}
        super().__init__(f"{step} gate failed: " + "; ".join(format_gate(g) for g in failed))


def format_gate(g: dict[str, Any]) -> str:
    bad = {"<=": ">", ">=": "<"}[g["op"]] if not g["passed"] else g["op"]
    unit = f" {g['unit']}" if g.get("unit") else ""
    text = f"{g['gate']} {g['value']:.4g}{unit} {bad} {g['limit']:.4g}{unit}"
    return text + (f" ({g['context']})" if g.get("context") else "")


def accuracy(logits: np.ndarray, labels: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Top-K accuracy in percent for each K (logits [N, C] or [N, steps, C], labels [N] or [N, steps])."""
    return {f"top{k}": float(topk_hits(logits, labels, k).mean() * 100.0) for k in ks}


def compare_on_golden(predict: Any, golden: Golden) -> dict[str, Any]:
    """A candidate predictor against the PyTorch outputs and the labels of the golden set."""
    out = run_all(predict, golden.inputs)
    return {"samples": len(golden), **compare(out, golden.outputs),
            "accuracy": accuracy(out, golden.labels, golden.topk),
            "reference_accuracy": accuracy(golden.outputs, golden.labels, golden.topk)}


def check_gates(parity: dict[str, Any], *, max_abs_error: float | None = None,
                min_top1_agreement: float | None = None) -> list[dict[str, Any]]:
    context = f"vs PyTorch on {parity.get('samples', '?')} golden samples"
    lines = []
    if max_abs_error is not None:
        lines.append({**gate_line("max_abs_error", parity["max_abs_error"], max_abs_error, "<="), "context": context})
    if min_top1_agreement is not None:
        lines.append({**gate_line("top1_agreement", parity["top1_agreement"], min_top1_agreement, ">="), "context": context})
    return lines


# ------------------------------------------------------------------------- ONNX Runtime
def ort_session(model: str | Path | bytes, threads: int = 0) -> Any:
    """A CPU ONNX Runtime session from a path or serialized bytes; `threads` > 0 pins the
    intra-op thread count."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # warnings about unused initializers etc. are noise here
    if threads > 0:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), sess_options=opts, providers=["CPUExecutionProvider"])


def ort_predictor(path_or_session: Any, threads: int = 0):
    """numpy inputs (in the model's input order) -> the first output, as Task.evaluate expects."""
    session = path_or_session if hasattr(path_or_session, "run") else ort_session(path_or_session, threads)
    names = [i.name for i in session.get_inputs()]

    def predict(inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        if len(inputs) != len(names):
            raise BeamcError(f"model takes {len(names)} input(s) ({', '.join(names)}), got {len(inputs)}")
        feeds = {n: np.ascontiguousarray(x, dtype=np.float32) if x.dtype == np.float64 else np.ascontiguousarray(x)
                 for n, x in zip(names, inputs)}
        return session.run(None, feeds)[0]

    return predict


def run_all(predict: Any, inputs: tuple[np.ndarray, ...], batch_size: int = 256) -> np.ndarray:
    """Outputs for every sample, in batches so big golden/test sets stay in memory bounds."""
    return predict_in_batches(predict, inputs, batch_size)


def gate_line(name: str, value: float, limit: float, op: str, unit: str = "") -> dict[str, Any]:
    """One gate result: the measured value, its limit and whether it passed."""
    passed = value <= limit if op == "<=" else value >= limit
    return {"gate": name, "value": value, "limit": limit, "op": op, "unit": unit, "passed": bool(passed)}


__all__ = ["Golden", "GateFailure", "format_gate", "compare_on_golden", "check_gates", "compare", "accuracy", "ort_session", "ort_predictor", "run_all", "gate_line"]
