"""Collect per-frame results, show them live, and write report.json, predictions.jsonl and
the PNG plots (latency histogram, accuracy over time).

report.json ("format": "beamc-run-report/1"): status (completed | max_frames | interrupted |
source_failed | engine_failed) and message; bundle, task, engine, baseline, source (spec, kind,
its own facts such as alignment counts); frames {received (every item the source delivered:
received = predicted + warmup + dropped + bad), predicted, warmup (history still filling),
dropped + dropped_ids, bad + bad_by_reason {reason: {count, frame_ids, example}}, unscored +
unscored_by_reason (predicted, but left out of accuracy: "bad label", a label outside
0..beams-1 or not one integer)};
latency_ms {read, queue, preprocess, engine, e2e: {count, mean, p50, p90, p99, max}};
throughput_fps; deadline {slot_ms, slot_from, misses, miss_rate}; queue_depth; topk (the
predictions' K); accuracy (vs labels), power (top-K sweep loss), agreement (vs --baseline);
plots; engine_batch {mean, max} (micro-batching); started, ended, duration_s. Strict JSON
(no NaN tokens): a value that came out non-finite is null and its path is listed in
non_finite_values. predictions.jsonl: one line per predicted frame (label null when unknown)
or per bad frame ({"id", "bad": reason, "message"}).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from beamc.runs import atomic_write_json
from beamc.runtime import metrics
from beamc.runtime.frames import BadFrame, Unscored

FORMAT = "beamc-run-report/1"


class Collector:
    """Per-frame bookkeeping kept light (one tuple per prediction); everything derived from it
    (latencies, accuracy, deadline misses) is computed when the live view or the report asks."""

    def __init__(self, pipeline: Any, opts: Any):
        self.p, self.opts = pipeline, opts
        # (frame, logits, t_pre0, t_pre1, t_eng0, t_eng1, input queue depth, engine batch size)
        self.rows: list[tuple] = []
        self.base: list[np.ndarray] = []
        self.warmup = 0
        self.bad: dict[str, dict[str, Any]] = {}
        self.unscored: dict[str, dict[str, Any]] = {}  # predicted frames left out of scoring, per reason
        self.t_start: float | None = None
        self.wall_start = ""
        self.engine_info: dict[str, Any] = {}
        self.baseline_info: dict[str, Any] | None = None
        self.jsonl = None
        self.plots: list[str] = []
        self._live = {"seen": 0, "misses": 0, "labelled": 0, "correct": 0, "agree": 0, "e2e": deque(maxlen=2000)}

    def started(self) -> None:
        from beamc.runtime.pipeline import now_iso

        self.t_start, self.wall_start = time.perf_counter(), now_iso()
        if self.opts.out:
            Path(self.opts.out).parent.mkdir(parents=True, exist_ok=True)
            self.jsonl = open(self.opts.out, "w", buffering=1)  # line-buffered: a killed run keeps what it predicted

    # -- per chunk of frames -------------------------------------------------------------
    def add(self, items: list[Any], others: int, baseline: Any) -> None:
        """Take a hand-over from the worker: prediction rows (with the inputs appended when a
        baseline reruns them), bad frames and warm-up frames; `others` counts the latter two."""
        rows = self.rows
        if not others and baseline is None and self.jsonl is None:
            rows.extend(items)  # the common case: one list operation for the whole hand-over
            return
        for item in items:
            if type(item) is tuple:
                frame, logits = item[0], item[1]
                rows.append(item[:8])
                if baseline is not None or self.jsonl is not None:
                    self._per_frame(frame, item[8] if len(item) > 8 else None, logits, item[5], baseline)
            elif isinstance(item, BadFrame):
                self._bad(item)
            elif isinstance(item, Unscored):
                _count(self.unscored, item)
            else:  # _Warmup: the window is still filling
                self.warmup += 1

    def _bad(self, item: BadFrame) -> None:
        _count(self.bad, item)
        if self.jsonl:
            self.jsonl.write(json.dumps({"id": int(item.id), "bad": item.reason, "message": item.message},
                                        allow_nan=False) + "\n")

    def _per_frame(self, f: Any, inputs: tuple, logits: np.ndarray, t_done: float, baseline: Any) -> None:
        first = logits if logits.ndim == 1 else logits[0]
        base_top1 = None
        if baseline is not None:
            ref = np.asarray(baseline.run(inputs))[0].astype(np.float32)
            self.base.append(ref)
            base_top1 = int((ref if ref.ndim == 1 else ref[0]).argmax())
        if self.jsonl:
            k = min(self.opts.topk, first.shape[-1])
            top = np.argsort(-first, kind="stable")[:k]
            probs = metrics.softmax(first.astype(np.float64))[top]
            key = f.key if f.key is None or isinstance(f.key, (int, str)) else str(f.key)
            row = {"id": int(f.id), "t": round(float(f.t), 6) if math.isfinite(f.t) else None, "key": key, "topk": top.tolist(),
                   "scores": [round(float(v), 6) for v in probs], "label": f.label,
                   "e2e_ms": round((t_done - f.t_arrival) * 1e3, 4)}
            if logits.ndim == 2:
                row["topk_per_step"] = np.argsort(-logits, axis=-1, kind="stable")[:, :k].tolist()
            if base_top1 is not None:
                row["baseline_top1"] = base_top1
            # allow_nan=False: a NaN must fail loudly here, never reach a reader as a bare NaN token
            # (inputs and logits are checked finite in the worker, unknown labels are null)
            self.jsonl.write(json.dumps(row, allow_nan=False) + "\n")

    # -- derived arrays ------------------------------------------------------------------
    def arrays(self) -> dict[str, Any]:
        rows = self.rows
        frames = [r[0] for r in rows]
        t = np.asarray([(f.t_arrival, f.t_read, r[2], r[3], r[4], r[5]) for f, r in zip(frames, rows)], dtype=np.float64)
        t = t.reshape(-1, 6)
        ms = {"read": (t[:, 1] - t[:, 0]) * 1e3, "queue": (t[:, 2] - t[:, 1]) * 1e3, "preprocess": (t[:, 3] - t[:, 2]) * 1e3,
              "engine": (t[:, 5] - t[:, 4]) * 1e3, "e2e": (t[:, 5] - t[:, 0]) * 1e3}
        labels = np.asarray([-1 if f.label is None else int(f.label) for f in frames], dtype=np.int64)
        logits = np.stack([np.asarray(r[1], dtype=np.float32) for r in rows]) if rows else np.zeros((0, 1), np.float32)
        power_idx = [i for i, f in enumerate(frames) if f.power is not None]
        return {"frames": frames, "t": t, "ms": ms, "labels": labels, "logits": logits, "power_idx": power_idx,
                "keys": [f.key for f in frames], "ids": [int(f.id) for f in frames],
                "depth": np.asarray([r[6] for r in rows]), "batch": np.asarray([r[7] for r in rows])}

    # -- live numbers --------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        live, slot = self._live, self.p.slot_ms
        for i in range(live["seen"], len(self.rows)):
            f, logits = self.rows[i][0], self.rows[i][1]
            e2e = (self.rows[i][5] - f.t_arrival) * 1e3
            live["e2e"].append(e2e)
            live["misses"] += e2e > slot
            if f.label is not None:
                live["labelled"] += 1
                live["correct"] += int((logits if logits.ndim == 1 else logits[0]).argmax()) == f.label
            if i < len(self.base):
                live["agree"] += int((self.base[i] if self.base[i].ndim == 1 else self.base[i][0]).argmax()) == \
                    int((logits if logits.ndim == 1 else logits[0]).argmax())
        live["seen"] = len(self.rows)
        n = len(self.rows)
        elapsed = time.perf_counter() - self.t_start if self.t_start else 0.0
        return {"predicted": n, "fps": n / elapsed if elapsed > 0 else 0.0,
                "e2e": metrics.latency_summary(list(live["e2e"])), "misses": live["misses"], "dropped": len(self.p.dropped),
                "bad": sum(b["count"] for b in self.bad.values()),
                "top1": live["correct"] / live["labelled"] if live["labelled"] else None,
                "agreement": live["agree"] / len(self.base) if self.base else None,
                "queue": self.rows[-1][6] if self.rows else 0, "slot_ms": slot}

    def finished(self) -> None:
        from beamc.runtime.pipeline import now_iso

        self.t_end, self.wall_end = time.perf_counter(), now_iso()
        if self.jsonl:
            self.jsonl.close()
            self.jsonl = None

    # -- the report ----------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        p, opts = self.p, self.opts
        status, message = p.status()
        a = self.arrays()
        self._arrays = a
        n, logits, labels, ms = len(a["ids"]), a["logits"], a["labels"], a["ms"]
        span = float(a["t"][:, 5].max() - a["t"][:, 0].min()) if n else 0.0
        misses = int((ms["e2e"] > p.slot_ms).sum())
        rep: dict[str, Any] = {
            "format": FORMAT, "status": status, "message": message,
            "bundle": str(opts.bundle), "task": p.task_name,
            "model": {"file": p.manifest.get("model_file"), "precision": p.manifest.get("precision"),
                      "bundle_status": p.manifest.get("status"),
                      "target": p.manifest.get("target"), "run": p.manifest.get("run", {}).get("name")},
            "engine": self.engine_info, "baseline": self.baseline_info,
            "source": {"spec": opts.source, "kind": p.source.kind, "live": p.source.live,
                       "pace": "live" if p.source.live else opts.pace, "rate": opts.rate,
                       "read_by": "worker (inline replay)" if getattr(p, "inline", False) else "source thread",
                       **_safe_info(p.source)},
            "frames": {"received": int(p.received), "predicted": n, "warmup": self.warmup,
                       "dropped": len(p.dropped), "dropped_ids": p.dropped[:100],
                       "bad": int(sum(b["count"] for b in self.bad.values())), "bad_by_reason": self.bad,
                       "unscored": int(sum(b["count"] for b in self.unscored.values())),
                       "unscored_by_reason": self.unscored},
            "latency_ms": {s: metrics.latency_summary(v) for s, v in ms.items()},
            "throughput_fps": float(n / span) if span > 0 else None,
            "deadline": {"slot_ms": p.slot_ms, "slot_from": p.slot_source, "misses": misses,
                         "miss_rate": float(misses / n) if n else None,
                         "measured_on": "e2e latency (frame arrival -> engine output)"},
            "queue_depth": {"input_chunks": _depth(a["depth"], p.q_in.maxsize)},
            "topk": int(opts.topk), "micro_batch": int(opts.micro_batch),
            "engine_batch": {"mean": float(a["batch"].mean()), "max": int(a["batch"].max())} if n else None,
            "started": self.wall_start, "ended": getattr(self, "wall_end", None),
            "duration_s": float(self.t_end - self.t_start) if self.t_start and hasattr(self, "t_end") else None,
        }
        if p.source_traceback:
            rep["source_traceback"] = p.source_traceback
        if getattr(p, "worker_traceback", None):
            rep["engine_traceback"] = p.worker_traceback
        if n and (labels >= 0).any():
            rep["accuracy"] = metrics.label_metrics(logits, labels, a["keys"], opts.topk)
        if a["power_idx"]:
            rep["power"] = _power(a, logits, opts.topk)
        if self.base:
            rep["agreement"] = metrics.agreement(logits[:len(self.base)], np.stack(self.base), opts.topk)
        return rep

    def write(self, rep: dict[str, Any]) -> None:
        path = Path(self.opts.report)
        if self.opts.plots and self.rows:
            try:
                self.plots = write_plots(self, path)
            except Exception as e:  # noqa: BLE001 - a plotting problem must not lose the report
                rep["plots_error"] = f"{type(e).__name__}: {e}"
        rep["plots"] = self.plots
        # strict JSON: a value that came out NaN/inf (a metric of an empty set, a baseline that
        # overflowed) is written as null and named, rather than as a bare NaN token
        fixed = _nulls_for_non_finite(rep, "")
        if fixed:
            rep["non_finite_values"] = fixed
        atomic_write_json(path, rep, allow_nan=False)


def _count(table: dict[str, dict[str, Any]], item: Any) -> None:
    entry = table.setdefault(item.reason, {"count": 0, "frame_ids": [], "example": item.message})
    entry["count"] += 1
    if len(entry["frame_ids"]) < 100:
        entry["frame_ids"].append(int(item.id))


def _power(a: dict[str, Any], logits: np.ndarray, topk: int) -> dict[str, Any]:
    """Power loss on the frames whose beam powers are usable: one finite value per beam the
    model predicts. The others are left out and counted, so one bad vector cannot make the
    mean NaN nor a stream with another codebook size crash the report."""
    first = logits if logits.ndim == 2 else logits[:, 0]
    beams = first.shape[-1]
    use, rows, left_out, lengths = [], [], Counter(), Counter()
    for i in a["power_idx"]:
        p = np.asarray(a["frames"][i].power, dtype=np.float64)
        if p.ndim != 1 or len(p) != beams:
            left_out[f"not {beams} values"] += 1
            lengths[int(p.size)] += 1
        elif not np.isfinite(p).all():
            left_out["non-finite"] += 1
        else:
            use.append(i)
            rows.append(p)
    if not use:
        if lengths and not left_out.get("non-finite"):
            found = " or ".join(str(n) for n in sorted(lengths))
            return {"skipped": f"the stream has {found} beam powers, the model predicts {beams} beams"}
        return {"skipped": f"no frame has {beams} finite beam powers ({', '.join(f'{k}: {v}' for k, v in left_out.items())})"}
    out = metrics.power_metrics(first[use], np.stack(rows), topk)
    if left_out:
        out["left_out"] = dict(left_out)
    return out


def _nulls_for_non_finite(obj: Any, path: str) -> list[str]:
    """Replace NaN/inf floats in a JSON-like tree by None, in place; returns their paths."""
    fixed: list[str] = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        where = f"{path}.{k}" if path else str(k)
        if isinstance(v, (np.ndarray, tuple)):
            v = obj[k] = v.tolist() if isinstance(v, np.ndarray) else list(v)
        if isinstance(v, (float, np.floating)) and not math.isfinite(v):
            obj[k] = None
            fixed.append(where)
        elif isinstance(v, (dict, list)):
            fixed += _nulls_for_non_finite(v, where)
    return fixed


def _safe_info(source: Any) -> dict[str, Any]:
    try:
        return source.info()
    except Exception as e:  # noqa: BLE001
        return {"info_error": f"{type(e).__name__}: {e}"}


def _depth(values: Any, capacity: int) -> dict[str, Any]:
    if len(values) == 0:
        return {"capacity": capacity}
    a = np.asarray(values)
    return {"capacity": capacity, "mean": float(a.mean()), "max": int(a.max())}


def write_plots(c: Collector, report_path: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stem = report_path.with_suffix("")
    out = []
    fig, ax = plt.subplots(figsize=(7, 4))
    a = c._arrays
    for stage, colour in (("e2e", "C0"), ("engine", "C1"), ("preprocess", "C2")):
        v = np.asarray(a["ms"][stage])
        if v.size:
            ax.hist(v, bins=60, alpha=0.6, color=colour, label=f"{stage} (p99 {np.percentile(v, 99):.3g} ms)")
    ax.axvline(c.p.slot_ms, color="red", linestyle="--", label=f"slot {c.p.slot_ms:g} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("frames")
    ax.set_title(f"{c.p.task_name}: latency per frame ({len(a['ids'])} frames, {c.opts.engine})")
    ax.legend()
    fig.tight_layout()
    path = Path(f"{stem}_latency.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    out.append(str(path))

    labels = a["labels"]
    if (labels >= 0).any() or c.base:
        fig, ax = plt.subplots(figsize=(7, 4))
        lg = a["logits"]
        first = (lg if lg.ndim == 2 else lg[:, 0]).argmax(axis=1)
        window = max(10, min(200, len(first) // 10))
        kernel = np.ones(window) / window
        x = np.arange(len(first))
        if (labels >= 0).any():
            sel = labels >= 0
            hits = (first[sel] == labels[sel]).astype(float)
            if len(hits) >= window:
                ax.plot(x[sel][window - 1:], np.convolve(hits, kernel, mode="valid") * 100, label=f"top-1 vs labels (rolling {window})")
        if c.base:
            base = np.stack([b if b.ndim == 1 else b[0] for b in c.base]).argmax(axis=1)
            agree = (base == first[: len(base)]).astype(float)
            if len(agree) >= window:
                ax.plot(x[window - 1:len(agree)], np.convolve(agree, kernel, mode="valid") * 100,
                        label="top-1 agreement with baseline")
        ax.set_ylim(0, 101)
        ax.set_xlabel("predicted frame")
        ax.set_ylabel("%")
        ax.set_title(f"{c.p.task_name}: accuracy over time")
        ax.legend(loc="lower right")
        fig.tight_layout()
        path = Path(f"{stem}_accuracy.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(str(path))
    return out


class LiveView:
    """A rich table refreshed once a second while the stream runs."""

    def __init__(self, collector: Collector):
        from rich.console import Console
        from rich.live import Live

        self.c = collector
        self.live = Live(self._table(), console=Console(stderr=True), refresh_per_second=1, transient=False)
        self.live.__enter__()
        self.last = time.monotonic()

    def _table(self) -> Any:
        from rich.table import Table

        s = self.c.snapshot()
        t = Table(title=f"beamc run: {self.c.p.task_name} on {self.c.opts.source}", show_header=True)
        for col in ("frames", "fps", "e2e p50 / p99 ms", f"misses (> {s['slot_ms']:g} ms)", "dropped", "bad",
                    "queue", "top-1", "agreement"):
            t.add_column(col, justify="right")
        e = s["e2e"]
        t.add_row(str(s["predicted"]), f"{s['fps']:.1f}",
                  f"{e['p50']:.2f} / {e['p99']:.2f}" if e.get("count") else "-", str(s["misses"]), str(s["dropped"]),
                  str(s["bad"]), str(s["queue"]), "-" if s["top1"] is None else f"{s['top1'] * 100:.1f} %",
                  "-" if s["agreement"] is None else f"{s['agreement'] * 100:.1f} %")
        return t

    def tick(self) -> None:
        if time.monotonic() - self.last >= 1.0:
            self.last = time.monotonic()
            self.live.update(self._table())

    def close(self) -> None:
        self.live.update(self._table())
        self.live.__exit__(None, None, None)
