"""Step 2, QuantizedOnnx: fp32 ONNX -> int8 ONNX with explicit Q/DQ nodes, verified.

* Calibration uses a stratified sample of the task's training split: every beam class
  present gets at least one sample (when the sample is at least as large as the number of
  classes), the rest is shared in proportion to class frequency. Multi-step labels
  ([N, steps]) are stratified by their first (current) step.
* ONNX Runtime static quantization in QDQ format: int8 weights (per channel by default) and
  symmetric int8 activations, the form TensorRT's explicit quantization consumes; CPU
  targets may choose asymmetric uint8 activations instead.
* The calibration result (per-tensor ranges, ONNX Runtime's JSON cache) is stored under
  $BEAMC_CACHE/calibration/<key>.json where key = sha256(model bytes, calibration arrays,
  quantization settings, onnxruntime version): a cache is reused only when all of them match,
  so a retrained student or different data can never pick up stale ranges.
* Verification: agreement with the fp32 ONNX model on the golden set, and the gate: Top-1
  accuracy drop vs fp32 on the test split <= max_top1_drop points.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from beamc.errors import BeamcError
from beamc.runs import atomic_write_bytes, cache_root
from beamc.export.profiles import Int8Section
from beamc.export.verify import (GateFailure, Golden, accuracy, compare, gate_line, ort_predictor, ort_session,
                                 run_all)

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# Q/DQ go on the inputs of weighted layers, their outputs stay float (TensorRT's recommended
# placement). Quantizing the final logits too cost 22 points of top-1 agreement with fp32 on
# the sub-6 student's golden set (69 % vs 91 %), because its top-2 logit margins are small.
FLOAT_OUTPUT_OPS = ("Gemm", "MatMul", "Conv", "ConvTranspose")


# ------------------------------------------------------------------------ stratification
def stratified_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of `n` samples covering every class present (when n allows), the rest
    in proportion to class frequency (largest remainder)."""
    labels = np.asarray(labels).reshape(len(labels), -1)[:, 0]
    n = min(int(n), len(labels))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    if n < len(classes):  # cannot cover all: one sample from each of the n most frequent classes
        alloc = np.zeros(len(classes), dtype=np.int64)
        alloc[np.argsort(-counts, kind="stable")[:n]] = 1
    else:
        alloc = np.ones(len(classes), dtype=np.int64)
        spare = counts - 1
        remaining = n - len(classes)
        if remaining > 0 and spare.sum() > 0:
            share = remaining * spare / spare.sum()
            extra = np.minimum(np.floor(share).astype(np.int64), spare)
            left = remaining - int(extra.sum())
            order = np.argsort(-(share - np.floor(share)), kind="stable")
            for i in order:
                if left == 0:
                    break
                if extra[i] < spare[i]:
                    extra[i] += 1
                    left -= 1
            alloc += extra
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c, k in zip(classes, alloc) if k > 0]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def class_coverage(labels: np.ndarray, indices: np.ndarray) -> dict[str, int]:
    first = np.asarray(labels).reshape(len(labels), -1)[:, 0]
    return {"samples": int(len(indices)), "classes_in_split": int(len(np.unique(first))),
            "classes_sampled": int(len(np.unique(first[indices]))) if len(indices) else 0}


# -------------------------------------------------------------------------- cache key
def calibration_key(model_bytes: bytes, arrays: tuple[np.ndarray, ...], settings: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(hashlib.sha256(model_bytes).digest())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()


def quant_settings(cfg: Int8Section) -> dict[str, Any]:
    import onnxruntime

    return {"method": cfg.method, "per_channel": cfg.per_channel, "symmetric_activations": cfg.symmetric_activations,
            "format": "QDQ", "weights": "int8", "float_outputs": list(FLOAT_OUTPUT_OPS), "quantize_bias": cfg.quantize_bias, "activations": "int8" if cfg.symmetric_activations else "uint8",
            "onnxruntime": onnxruntime.__version__}


class _Reader:
    """ONNX Runtime CalibrationDataReader over in-memory arrays, in batches."""

    def __init__(self, names: list[str], arrays: tuple[np.ndarray, ...], batch: int = 64):
        self.names, self.arrays, self.batch, self.pos = names, arrays, batch, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.pos >= len(self.arrays[0]):
            return None
        sl = slice(self.pos, self.pos + self.batch)
        self.pos += self.batch
        return {n: np.ascontiguousarray(a[sl]) for n, a in zip(self.names, self.arrays)}

    def rewind(self) -> None:
        self.pos = 0


@contextlib.contextmanager
def _no_ort_chatter() -> Any:
    # quantize_static logs "please run pre-processing" through the root logger at WARNING.
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


@dataclass
class QuantArtifact:
    path: Path
    parity: dict[str, Any]
    calibration: dict[str, Any]
    qdq_nodes: int
    test: dict[str, Any] = field(default_factory=dict)


class QuantizedOnnx:
    """fp32 ONNX at `source` -> int8 QDQ ONNX at `path`, checked against the fp32 model.

    `calibration` holds the stratified training inputs; `test` = (inputs, labels) of the test
    split for the accuracy gate (skipped when None).
    """

    def __init__(self, source: str | Path, path: str | Path, golden: Golden, calibration: tuple[np.ndarray, ...],
                 cfg: Int8Section, *, test: tuple[tuple[np.ndarray, ...], np.ndarray] | None = None,
                 max_top1_drop: float | None = None, cache_dir: str | Path | None = None,
                 calibration_info: dict[str, Any] | None = None):
        self.source, self.path, self.golden, self.calibration, self.cfg = Path(source), Path(path), golden, calibration, cfg
        self.test, self.max_top1_drop = test, max_top1_drop
        self.cache_dir = Path(cache_dir) if cache_dir is not None else cache_root() / "calibration"
        self.calibration_info = dict(calibration_info or {})

    def _quantize(self, cache_file: Path | None, out: Path) -> None:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        names = [i.name for i in ort_session(self.source).get_inputs()]
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[self.cfg.method]
        sym = self.cfg.symmetric_activations
        with _no_ort_chatter():
            quantize_static(str(self.source), str(out), _Reader(names, self.calibration), quant_format=QuantFormat.QDQ,
                            per_channel=self.cfg.per_channel, activation_type=QuantType.QInt8 if sym else QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=method,
                            extra_options={"ActivationSymmetric": sym, "WeightSymmetric": True,
                                           "QuantizeBias": self.cfg.quantize_bias,
                                           "OpTypesToExcludeOutputQuantization": list(FLOAT_OUTPUT_OPS)},
                            **({} if cache_file is None else {"calibration_cache_path": str(cache_file)}))

    def _calibrate_and_quantize(self, key: str, out: Path) -> bool | None:
        """Quantize into `out`; True when the cached ranges were used, None when this
        onnxruntime cannot cache them (quantize_static got calibration_cache_path in 2026)."""
        import inspect

        from onnxruntime.quantization import quantize_static

        if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
            self._quantize(None, out)
            return None
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        final = self.cache_dir / f"{key}.json"
        if final.exists():
            try:
                self._quantize(final, out)
                return True
            except (ValueError, KeyError, json.JSONDecodeError):
                final.unlink(missing_ok=True)  # unreadable cache entry: calibrate again
        tmp = self.cache_dir / f".{key}.{os.getpid()}.tmp.json"
        tmp.unlink(missing_ok=True)
        try:
            self._quantize(tmp, out)
            os.replace(tmp, final)  # ONNX Runtime wrote the ranges; publish them atomically
        finally:
            tmp.unlink(missing_ok=True)
        return False

    def __call__(self) -> QuantArtifact:
        import onnx

        if len(self.calibration[0]) == 0:
            raise BeamcError("int8 calibration needs at least one training sample")
        source_bytes = self.source.read_bytes()
        settings = quant_settings(self.cfg)
        key = calibration_key(source_bytes, self.calibration, settings)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            hit = self._calibrate_and_quantize(key, tmp_out)
            proto = onnx.load(str(tmp_out))
        finally:
            tmp_out.unlink(missing_ok=True)
        qdq = sum(1 for n in proto.graph.node if n.op_type in QDQ_OPS)
        if qdq == 0:
            raise BeamcError(f"int8 quantization of {self.source.name} inserted no Q/DQ nodes (no quantizable operators)")
        blob = proto.SerializeToString()
        atomic_write_bytes(self.path, blob)
        cache_file = self.cache_dir / f"{key}.json"
        if hit is not None:
            atomic_write_bytes(self.path.parent / "calibration.json", cache_file.read_bytes())  # ranges used, for audit

        int8 = ort_predictor(ort_session(blob))
        fp32 = ort_predictor(ort_session(self.source))
        fp32_golden = run_all(fp32, self.golden.inputs)
        int8_golden = run_all(int8, self.golden.inputs)
        parity = {"samples": len(self.golden), "vs_fp32_onnx": compare(int8_golden, fp32_golden),
                  "vs_pytorch": compare(int8_golden, self.golden.outputs),
                  "accuracy": accuracy(int8_golden, self.golden.labels, self.golden.topk),
                  "reference_accuracy": accuracy(self.golden.outputs, self.golden.labels, self.golden.topk)}
        calibration = {"cache_key": key, "cache_hit": hit, "cache_file": None if hit is None else str(cache_file),
                       "bundle_file": None if hit is None else "calibration.json", "settings": settings,
                       **self.calibration_info}
        artifact = QuantArtifact(self.path, parity, calibration, qdq)
        if self.test is not None:
            artifact.test = accuracy_drop(int8, fp32, self.test, "int8", self.max_top1_drop, self.golden.topk)
            failed = [g for g in artifact.test["gates"] if not g["passed"]]
            if failed:
                raise GateFailure("int8", failed, {"golden": parity, "test": artifact.test, "qdq_nodes": qdq,
                                                   "calibration": calibration})
        return artifact


def accuracy_drop(candidate: Any, reference: Any, test: tuple[tuple[np.ndarray, ...], np.ndarray], label: str,
                  max_drop: float | None, ks: tuple[int, ...]) -> dict[str, Any]:
    """Top-K accuracy of a reduced-precision predictor and of the fp32 one on the test split,
    and the gate on the Top-1 drop (points)."""
    inputs, labels = test
    ref = accuracy(run_all(reference, inputs), labels, ks)
    cand = accuracy(run_all(candidate, inputs), labels, ks)
    drop = ref["top1"] - cand["top1"]
    out: dict[str, Any] = {"samples": int(len(labels)), "fp32": ref, label: cand, "top1_drop_points": drop, "gates": []}
    if max_drop is not None:
        context = f"fp32 {ref['top1']:.2f} %, {label} {cand['top1']:.2f} % on {len(labels)} test samples"
        out["gates"].append({**gate_line(f"{label} top-1 drop", drop, max_drop, "<=", "points"), "context": context})
    return out


__all__ = ["QuantizedOnnx", "QuantArtifact", "stratified_indices", "class_coverage", "calibration_key",
           "quant_settings", "accuracy_drop", "QDQ_OPS"]
