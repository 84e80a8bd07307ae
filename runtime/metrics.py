"""What a run measures, computed from arrays collected per frame (numpy only).

* accuracy vs labels: Top-K (label among the K best logits) and DBA (the DeepSense
  distance-based accuracy on the top-3 beams, delta = 5 beams: vision paper eqs. 21-22); for
  multi-step outputs [S, C] step s of the prediction at frame t is scored against the label of
  frame t+s of the same sequence, when the stream delivers it;
* power: received-power loss when the base station sweeps only the top-K predicted beams and
  keeps the best of them, 10 log10(max_b p_b / max_{b in top-K} p_b) dB, and the sweep
  overhead saved vs an exhaustive sweep, 1 - K / B;
* agreement with the baseline on the same preprocessed inputs: top-1 match, top-K overlap
  (|top-K_a and top-K_b| / K), max and mean |logit difference|;
* latency percentiles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from beamc.tasks.base import topk_indices

DBA_DELTA = 5.0
DBA_TOP = 3


def latency_summary(ms: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        return {"count": 0}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"count": int(a.size), "mean": float(a.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99),
            "max": float(a.max())}


def ks_for(topk: int, num_classes: int) -> list[int]:
    """The K values reported: 1, 3, 5 and the CLI's K (those <= K and <= the codebook)."""
    return sorted({k for k in (1, 3, 5, topk) if k <= max(topk, 1) and k <= num_classes})


def dba(top3: np.ndarray, labels: np.ndarray, delta: float = DBA_DELTA) -> float:
    """Eq. (21)-(22): mean over k = 1..3 of 1 - mean_m min_{i<=k} min(|y_hat_i - y| / delta, 1)."""
    penalty = np.minimum(np.abs(top3 - labels[:, None]) / delta, 1.0)
    return float((1.0 - np.minimum.accumulate(penalty, axis=1).mean(axis=0)).mean())


def step_targets(keys: Sequence[Any], labels: np.ndarray, steps: int) -> np.ndarray:
    """[N, S] label of frame t+s of the same sequence (-1 when unknown or past its end), with
    frames in stream order and consecutive frames of a sequence adjacent."""
    n = len(labels)
    out = np.full((n, steps), -1, dtype=np.int64)
    keys = list(keys)
    for s in range(steps):
        for i in range(n - s):
            if keys[i + s] == keys[i]:
                out[i, s] = labels[i + s]
    return out


def label_metrics(logits: np.ndarray, labels: np.ndarray, keys: Sequence[Any], topk: int) -> dict[str, Any]:
    """Top-K and DBA vs labels. logits [N, C] or [N, S, C]; labels [N] (-1 = unknown)."""
    if logits.ndim == 2:
        logits = logits[:, None, :]
    n, steps, classes = logits.shape
    targets = step_targets(keys, labels, steps)
    ks = ks_for(topk, classes)
    top = topk_indices(logits, max(max(ks), DBA_TOP))                     # [N, S, kmax]
    per_step = []
    for s in range(steps):
        sel = targets[:, s] >= 0
        row: dict[str, Any] = {"step": s, "frames": int(sel.sum())}
        if sel.any():
            y = targets[sel, s]
            for k in ks:
                row[f"top{k}"] = float((top[sel, s, :k] == y[:, None]).any(axis=1).mean())
            row["dba"] = dba(top[sel, s, :DBA_TOP], y)
        per_step.append(row)
    out = {"labelled_frames": per_step[0]["frames"], **{k: v for k, v in per_step[0].items() if k not in ("step", "frames")},
           "dba_delta": DBA_DELTA, "dba_top": DBA_TOP}
    if steps > 1:
        out["per_step"] = per_step
        scored = [r for r in per_step if r["frames"]]
        if scored:
            out["mean_over_steps"] = {k: float(np.mean([r[k] for r in scored])) for k in scored[0]
                                      if k not in ("step", "frames")}
    return out


def power_metrics(logits: np.ndarray, power: np.ndarray, topk: int) -> dict[str, Any]:
    """Power loss of sweeping the top-K beams vs the best beam. logits [N, C] (current step),
    power [N, B] linear with B == C."""
    classes = logits.shape[-1]
    ks = ks_for(topk, classes)
    top = topk_indices(logits, max(ks))
    p = np.maximum(power.astype(np.float64), 1e-30)  # powers of zero would make the dB ratio infinite
    best = p.max(axis=1)
    out: dict[str, Any] = {"frames": int(len(p)), "beams": int(classes), "loss_db": {}, "sweep_overhead_saved": {}}
    for k in ks:
        got = np.take_along_axis(p, top[:, :k], axis=1).max(axis=1)
        loss = 10.0 * np.log10(best / got)
        out["loss_db"][f"top{k}"] = {"mean": float(loss.mean()), "p50": float(np.median(loss)),
                                     "p90": float(np.percentile(loss, 90)), "max": float(loss.max()),
                                     "within_1db": float(np.mean(loss <= 1.0))}
        out["sweep_overhead_saved"][f"top{k}"] = 1.0 - k / classes
    return out


def agreement(logits: np.ndarray, reference: np.ndarray, topk: int) -> dict[str, Any]:
    """Engine vs baseline on the same inputs; every step of multi-step outputs counts."""
    a = logits.reshape(-1, logits.shape[-1])
    b = reference.reshape(-1, reference.shape[-1])
    k = min(topk, a.shape[-1])
    ta, tb = topk_indices(a, k), topk_indices(b, k)
    overlap = np.mean([len(set(x) & set(y)) / k for x, y in zip(ta.tolist(), tb.tolist())]) if len(a) else float("nan")
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return {"frames": int(len(logits)), "top1_agreement": float(np.mean(ta[:, 0] == tb[:, 0])) if len(a) else float("nan"),
            f"top{k}_overlap": float(overlap), "max_abs_logit_error": float(diff.max()) if diff.size else float("nan"),
            "mean_abs_logit_error": float(diff.mean()) if diff.size else float("nan")}


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)
