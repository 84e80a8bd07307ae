"""Parameters and FLOPs of a model, counted the way the papers count them.

Multiply-accumulates (MACs) of the layers that carry weights (Linear, Conv, GRU/LSTM,
attention projections and products) are measured by forward hooks on one batch-1 example,
so the count follows the real input shapes (sequence lengths, feature maps). Papers turn
them into "FLOPs" in two ways, chosen per task (`Task.flop_convention`):

* "2mac" (default): FLOPs = 2 x MACs; bias adds, activations and normalisation are not
  counted. Reproduces the sub-6 paper's Table 1 (student 49,152 = 2 x (256*64 + 64*64 + 64*64)).
* "thop": what ``thop.profile`` returns and the vision paper's Table VII prints as FLOPs:
  MACs x 1, plus 2 ops per element of a BatchNorm/LayerNorm (4 when affine), (kernel + 1)
  per output of an adaptive average pool, and thop's bias/gate terms of a GRU (13 x hidden
  per layer and step). thop has no rule for nn.MultiheadAttention and counts it as 0; we
  count its MACs (a few hundred thousand in the vision models, +0.2..1 % of their total).

Rules per module type live in `FLOP_RULES` (MACs) and `EXTRA_OPS` (the "thop" extras); a
task with exotic layers registers its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

FlopRule = Callable[[nn.Module, tuple[Any, ...], Any], int]  # returns MACs (or extra ops)
FLOP_RULES: dict[type, FlopRule] = {}
EXTRA_OPS: dict[type, FlopRule] = {}   # counted by the "thop" convention only
CONVENTIONS = ("2mac", "thop")


def flop_rule(*types: type, table: dict[type, FlopRule] = FLOP_RULES) -> Callable[[FlopRule], FlopRule]:
    def deco(fn: FlopRule) -> FlopRule:
        for t in types:
            table[t] = fn
        return fn

    return deco


def _first_tensor(x: Any) -> torch.Tensor:
    while isinstance(x, (tuple, list)):
        x = x[0]
    return x


@flop_rule(nn.Linear)
def _linear(m: nn.Linear, inputs: tuple[Any, ...], out: Any) -> int:
    x = _first_tensor(inputs)
    return int(x.numel() // x.shape[-1]) * m.in_features * m.out_features


@flop_rule(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def _conv(m: nn.Module, inputs: tuple[Any, ...], out: Any) -> int:
    o = _first_tensor(out)
    kernel = int(torch.tensor(m.kernel_size).prod())
    return int(o.numel()) * (m.in_channels // m.groups) * kernel


@flop_rule(nn.GRU, nn.LSTM, nn.RNN)
def _rnn(m: nn.Module, inputs: tuple[Any, ...], out: Any) -> int:
    x = _first_tensor(inputs)
    gates = {nn.GRU: 3, nn.LSTM: 4, nn.RNN: 1}[type(m)]
    steps = x.shape[1] if m.batch_first else x.shape[0]
    batch = x.shape[0] if m.batch_first else x.shape[1]
    dirs = 2 if m.bidirectional else 1
    macs = 0
    for layer in range(m.num_layers):
        d_in = m.input_size if layer == 0 else m.hidden_size * dirs
        macs += dirs * gates * (d_in * m.hidden_size + m.hidden_size * m.hidden_size)
    return int(macs * steps * batch)


@flop_rule(nn.MultiheadAttention)
def _mha(m: nn.MultiheadAttention, inputs: tuple[Any, ...], out: Any) -> int:
    q, k = inputs[0], inputs[1]
    if m.batch_first:
        b, lq, e = q.shape
        lk = k.shape[1]
    else:
        lq, b, e = q.shape
        lk = k.shape[0]
    proj = (lq + 2 * lk) * e * e + lq * e * e          # q, k, v in-projections and out-projection
    attn = 2 * lq * lk * e                               # QK^T and attention x V
    return int(b * (proj + attn))


@flop_rule(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm, table=EXTRA_OPS)
def _norm_ops(m: nn.Module, inputs: tuple[Any, ...], out: Any) -> int:
    affine = getattr(m, "affine", False) or getattr(m, "elementwise_affine", False)
    return int(_first_tensor(inputs).numel()) * (4 if affine else 2)


@flop_rule(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, table=EXTRA_OPS)
def _adaptive_avg_ops(m: nn.Module, inputs: tuple[Any, ...], out: Any) -> int:
    x, o = _first_tensor(inputs), _first_tensor(out)
    dims = o.dim() - 2
    kernel = int(torch.tensor(x.shape[-dims:]).div(torch.tensor(o.shape[-dims:]), rounding_mode="floor").prod())
    return (kernel + 1) * int(o.numel())


@flop_rule(nn.GRU, table=EXTRA_OPS)
def _gru_ops(m: nn.GRU, inputs: tuple[Any, ...], out: Any) -> int:
    x = _first_tensor(inputs)
    steps = x.shape[1] if m.batch_first else x.shape[0]
    batch = x.shape[0] if m.batch_first else x.shape[1]
    per_step = (13 if m.bias else 7) * m.hidden_size   # thop's _count_gru_cell beyond the MACs
    return int(per_step * m.num_layers * (2 if m.bidirectional else 1) * steps * batch)


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def count_flops(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], convention: str = "2mac") -> int:
    """FLOPs of one forward pass on `example_inputs` (batch 1): 2 x MACs, or the "thop" count."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown FLOP convention '{convention}' (known: {', '.join(CONVENTIONS)})")
    macs, extra = 0, 0
    handles = []

    def hook(module: nn.Module, inputs: tuple[Any, ...], out: Any) -> None:
        nonlocal macs, extra
        if type(module) in FLOP_RULES:
            macs += FLOP_RULES[type(module)](module, inputs, out)
        if convention == "thop" and type(module) in EXTRA_OPS:
            extra += EXTRA_OPS[type(module)](module, inputs, out)

    for module in model.modules():
        if type(module) in FLOP_RULES or type(module) in EXTRA_OPS:
            handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*example_inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return macs + extra if convention == "thop" else 2 * macs


def example_inputs(specs: list[Any], batch: int = 1) -> tuple[torch.Tensor, ...]:
    dtypes = {"float32": torch.float32, "float16": torch.float16, "int64": torch.int64}
    return tuple(torch.zeros((batch, *s.shape), dtype=dtypes[s.dtype]) for s in specs)


def measure_latency(model: nn.Module, inputs: tuple[torch.Tensor, ...], device: Any = "cpu",
                    warmup: int = 10, iters: int = 50) -> dict[str, float]:
    """Batch latency in ms: warm-up, then timed iterations (CUDA events on GPU, perf_counter
    on CPU). Reported, never asserted: wall-clock numbers belong to benchmarks."""
    import time

    import numpy as np

    device = torch.device(device)
    model = model.to(device).eval()
    inputs = tuple(x.to(device) for x in inputs)
    times = []
    with torch.no_grad():
        for _ in range(warmup):
            model(*inputs)
        for _ in range(iters):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                model(*inputs)
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                model(*inputs)
                times.append((time.perf_counter() - t0) * 1e3)
    arr = np.asarray(times)
    return {"device": device.type, "batch": int(inputs[0].shape[0]), "mean": float(arr.mean()), "std": float(arr.std()),
            "p50": float(np.percentile(arr, 50)), "p90": float(np.percentile(arr, 90)), "warmup": warmup, "iters": iters}
