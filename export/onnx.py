"""Step 1, OnnxFromTorch: a PyTorch student -> one self-contained ONNX file, verified.

Traps this step guards against (measured with torch 2.13):
* `torch.onnx.export` uses the dynamo exporter by default (opsets 18-23, default 20). Given a
  batch-1 example with a dynamic batch dimension it silently writes a model fixed at batch 1,
  so we export with a batch of 2 and then run ONNX Runtime at batch 1 and batch 7.
* It writes the weights to a separate `.onnx.data` file unless told otherwise; we keep the
  weights inside the model and never let the exporter touch the disk (the bytes are written
  atomically by us).
* Opsets below 18 come out of a version converter that may silently keep opset 18; the
  resulting opset is checked, and the TorchScript exporter (which writes opset 17 natively)
  is the fallback. Models the dynamo exporter cannot trace fall back the same way.

The exported graph is simplified with onnxslim; the simplified model must match PyTorch
as well as the raw export did, otherwise the raw export is kept (and the manifest says so).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from beamc.errors import BeamcError
from beamc.runs import atomic_write_bytes
from beamc.tasks.base import TensorSpec
from beamc.export.verify import (GateFailure, Golden, check_gates, compare_on_golden, gate_line, ort_predictor,
                                 ort_session)

BATCH = "batch"
EXAMPLE_BATCH = 2          # >= 2: a batch-1 example makes the exporter specialise the batch to 1
CHECK_BATCHES = (1, 7)     # batch sizes ONNX Runtime must accept after export


@dataclass
class OnnxArtifact:
    """What a step produced: the file and how it was made and checked."""

    path: Path
    opset: int
    exporter: str
    simplified: bool
    dtype: str                      # compute precision of the graph: "float32" or "float16"
    parity: dict[str, Any]          # vs the previous step on the golden set
    dynamic_batch_checked: tuple[int, ...] = ()
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"file": self.path.name, "opset": self.opset, "exporter": self.exporter, "simplified": self.simplified,
                "dtype": self.dtype, "batch_axis": 0, "batch_dim": BATCH,
                "dynamic_batch_checked": list(self.dynamic_batch_checked), "notes": self.notes}


class _HalfCompute:
    """fp16 weights and compute with float32 inputs/outputs, so the runtime feeds the same
    tensors at every precision (what a strongly typed TensorRT network builds fp16 from)."""

    def __new__(cls, model: Any) -> Any:
        import torch

        class HalfCompute(torch.nn.Module):
            def __init__(self, inner: torch.nn.Module):
                super().__init__()
                self.inner = inner.half()

            def forward(self, *xs: torch.Tensor) -> torch.Tensor:
                out = self.inner(*(x.half() if x.is_floating_point() else x for x in xs))
                return out.float()

        return HalfCompute(model)


@contextlib.contextmanager
def _quiet() -> Any:
    """The exporters print progress, deprecation warnings and torchvision notices; none of
    it helps a user whose export succeeded, and failures raise."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _batch_is_dynamic(proto: Any) -> bool:
    graph = proto.graph
    init = {t.name for t in graph.initializer}
    tensors = [i for i in graph.input if i.name not in init] + list(graph.output)
    return all(t.type.tensor_type.shape.dim[0].dim_param for t in tensors)


def _opset(proto: Any) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


class OnnxFromTorch:
    """PyTorch model -> ONNX file at `path`, checked against PyTorch on the golden set.

    `half=True` writes fp16 weights and compute with float32 I/O (for strongly typed fp16
    TensorRT builds); its parity is reported, not gated here (the fp16 accuracy gate runs on
    the test split). fp32 exports must meet `max_abs_error` and `min_top1_agreement`.
    """

    def __init__(self, model: Any, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], path: str | Path,
                 golden: Golden, *, opset: int, half: bool = False, simplify: bool = True,
                 max_abs_error: float | None = None, min_top1_agreement: float | None = None,
                 metadata: dict[str, str] | None = None):
        if len(outputs) != 1:
            raise BeamcError(f"export supports models with one output tensor (the logits); the task declares "
                             f"{len(outputs)}: {', '.join(o.name for o in outputs)}")
        self.model, self.inputs, self.outputs = model, list(inputs), list(outputs)
        self.path, self.golden, self.opset, self.half = Path(path), golden, opset, half
        self.simplify, self.metadata = simplify, dict(metadata or {})
        self.max_abs_error, self.min_top1_agreement = max_abs_error, min_top1_agreement

    # -- export ------------------------------------------------------------------------
    def _example(self) -> tuple[Any, ...]:
        import torch

        n = len(self.golden.inputs[0])
        if n >= EXAMPLE_BATCH:
            return tuple(torch.from_numpy(np.ascontiguousarray(x[:EXAMPLE_BATCH])) for x in self.golden.inputs)
        dtypes = {"float32": torch.float32, "float16": torch.float16, "int64": torch.int64}
        return tuple(torch.zeros((EXAMPLE_BATCH, *s.shape), dtype=dtypes[s.dtype]) for s in self.inputs)

    def _module(self) -> Any:
        import copy

        model = copy.deepcopy(self.model).cpu().eval()
        return _HalfCompute(model).eval() if self.half else model

    def _dynamo(self, module: Any, example: tuple[Any, ...]) -> Any:
        import torch

        batch = torch.export.Dim(BATCH)
        with _quiet():
            program = torch.onnx.export(
                module, example, dynamo=True, input_names=[s.name for s in self.inputs],
                output_names=[s.name for s in self.outputs], opset_version=self.opset,
                dynamic_shapes=tuple({0: batch} for _ in example), external_data=False, optimize=True, verbose=False)
        return program.model_proto

    def _torchscript(self, module: Any, example: tuple[Any, ...]) -> Any:
        import onnx
        import torch

        names = [s.name for s in self.inputs] + [s.name for s in self.outputs]
        buf = io.BytesIO()  # a file object: the exporter never writes next to our bundle
        with _quiet():
            torch.onnx.export(module, example, buf, dynamo=False, input_names=[s.name for s in self.inputs],
                              output_names=[s.name for s in self.outputs], opset_version=self.opset,
                              dynamic_axes={n: {0: BATCH} for n in names}, do_constant_folding=True)
        return onnx.load_from_string(buf.getvalue())

    def _export(self) -> tuple[Any, str, list[str]]:
        module, example = self._module(), self._example()
        notes: list[str] = []
        try:
            proto = self._dynamo(module, example)
            if _opset(proto) == self.opset and _batch_is_dynamic(proto):
                return proto, "dynamo", notes
            notes.append(f"dynamo exporter wrote opset {_opset(proto)}"
                         f"{'' if _batch_is_dynamic(proto) else ' with a fixed batch'}; used the TorchScript exporter")
        except Exception as e:  # noqa: BLE001 - any tracing failure: try the other exporter
            notes.append(f"dynamo exporter failed ({type(e).__name__}: {str(e).splitlines()[0][:160]}); "
                         "used the TorchScript exporter")
        try:
            proto = self._torchscript(module, example)
        except Exception as e:  # noqa: BLE001
            raise BeamcError(f"ONNX export failed with both exporters: {notes[-1]}; TorchScript: "
                             f"{type(e).__name__}: {str(e).splitlines()[0][:160]}") from None
        if _opset(proto) != self.opset:
            raise BeamcError(f"ONNX export wrote opset {_opset(proto)}, the target needs opset {self.opset}")
        if not _batch_is_dynamic(proto):
            raise BeamcError("ONNX export produced a fixed batch dimension; the exported model cannot batch streams")
        return proto, "torchscript", notes

    def _finish(self, proto: Any) -> bytes:
        import onnx

        proto.doc_string = self.metadata.get("doc", "beamc export")
        del proto.metadata_props[:]
        for k, v in sorted(self.metadata.items()):
            proto.metadata_props.add(key=f"beamc.{k}", value=str(v))
        onnx.checker.check_model(proto)
        return proto.SerializeToString()

    # -- verification --------------------------------------------------------------------
    def _verify(self, blob: bytes) -> tuple[dict[str, Any], tuple[int, ...]]:
        session = ort_session(blob)
        predict = ort_predictor(session)
        parity = compare_on_golden(predict, self.golden)
        # The batch dimension must really be dynamic: run sizes other than the example's.
        n = len(self.golden.inputs[0])
        errors = {}
        for b in CHECK_BATCHES:
            idx = np.arange(b) % n
            out = predict(tuple(x[idx] for x in self.golden.inputs))
            if out.shape != (b, *self.outputs[0].shape):
                raise BeamcError(f"ONNX model at batch {b} returned shape {out.shape}, expected {(b, *self.outputs[0].shape)}")
            errors[str(b)] = float(np.abs(out.astype(np.float64) - self.golden.outputs[idx]).max())
        parity["max_abs_error_by_batch"] = errors
        return parity, CHECK_BATCHES

    def _gates(self, parity: dict[str, Any]) -> list[dict[str, Any]]:
        if self.half:
            return []
        gates = check_gates(parity, max_abs_error=self.max_abs_error, min_top1_agreement=self.min_top1_agreement)
        if self.max_abs_error is not None:
            by_batch = parity["max_abs_error_by_batch"]
            gates.append({**gate_line("max_abs_error", max(by_batch.values()), self.max_abs_error, "<="),
                          "context": f"vs PyTorch at batch {' and '.join(by_batch)}"})
        return gates

    def __call__(self) -> OnnxArtifact:
        raw, exporter, notes = self._export()
        raw_blob = self._finish(raw)
        if self.half:
            try:
                parity, checked = self._verify(raw_blob)
            except Exception as e:  # noqa: BLE001 - ONNX Runtime's CPU EP lacks fp16 kernels for some ops
                reason = f"ONNX Runtime cannot run this fp16 model on the CPU ({type(e).__name__}: " \
                         f"{str(e).splitlines()[0][:160]}); build_engine.py verifies the fp16 engine on the device"
                atomic_write_bytes(self.path, raw_blob)
                return OnnxArtifact(self.path, self.opset, exporter, False, "float16",
                                    {"checked": False, "reason": reason, "gates": []}, (), notes)
        else:
            parity, checked = self._verify(raw_blob)
        gates = self._gates(parity)
        blob, simplified = raw_blob, False
        if self.simplify:
            import onnxslim

            try:
                with _quiet():
                    slim = onnxslim.slim(raw)
            except Exception as e:  # noqa: BLE001 - simplification is an optimisation, never a reason to fail
                slim = None
                notes.append(f"onnxslim failed ({type(e).__name__}); kept the unsimplified export")
            if slim is not None and _batch_is_dynamic(slim):
                slim_blob = self._finish(slim)
                slim_parity, slim_checked = self._verify(slim_blob)
                slim_gates = self._gates(slim_parity)
                raw_passed = all(g["passed"] for g in gates)
                if all(g["passed"] for g in slim_gates) or not raw_passed:
                    blob, simplified, parity, checked, gates = slim_blob, True, slim_parity, slim_checked, slim_gates
                else:
                    notes.append("onnxslim result missed the parity gate; kept the unsimplified export")
        parity["gates"] = gates
        label = "fp16 ONNX" if self.half else "fp32 ONNX"
        if not all(g["passed"] for g in gates):
            atomic_write_bytes(self.path, blob)  # kept for inspection
            raise GateFailure(label, [g for g in gates if not g["passed"]], parity)
        atomic_write_bytes(self.path, blob)
        return OnnxArtifact(self.path, self.opset, exporter, simplified, "float16" if self.half else "float32",
                            parity, checked, notes)


__all__ = ["OnnxFromTorch", "OnnxArtifact", "BATCH", "EXAMPLE_BATCH", "CHECK_BATCHES"]
