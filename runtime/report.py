"""Collect per-frame results, show them live, and write report.json, predictions.jsonl and
the PNG plots (latency histogram, accuracy over time).

report.json ("format": "beamc-run-report/1"): status (completed | max_frames | interrupted |
source_failed | engine_failed) and message; bundle, task, engine, baseline, source (spec, kind,
its own facts such as alignment counts); frames {received, predicted, warmup (history still
filling), dropped + dropped_ids, bad + bad_by_reason {reason: {count, frame_ids, example}}};
latency_ms {read, queue, preprocess, engine, e2e: {count, mean, p50, p90, p99, max}};
throughput_fps; deadline {slot_ms, slot_from, misses, miss_rate}; queue_depth; topk (the
predictions' K); accuracy (vs labels), power (top-K sweep loss), agreement (vs --baseline);
plots; started, ended, duration_s.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from beamc.runs import atomic_write_json
from beamc.runtime import metrics
from beamc.runtime.frames import BadFrame

FORMAT = "beamc-run-report/1"


class Collector:
    def __init__(self, pipeline: Any, opts: Any):
        self.p, self.opts = pipeline, opts
        self.keys: list[Any] = []
        self.ids: list[int] = []
        self.labels: list[int] = []
        self.logits: list[np.ndarray] = []
        self.base: list[np.ndarray] = []
        self.power_rows: list[np.ndarray] = []
        self.power_idx: list[int] = []
        self.times: dict[str, list[float]] = {s: [] for s in ("read", "queue", "preprocess", "engine", "e2e")}
        self.t_arrival: list[float] = []
        self.t_done: list[float] = []
        self.warmup = 0
        self.bad: dict[str, dict[str, Any]] = {}
        self.depth_in: list[int] = []
        self.depth_out: list[int] = []
        self.misses = 0
        self.correct = 0
        self.agree = 0
        self.t_start: float | None = None
        self.wall_start = ""
        self.engine_info: dict[str, Any] = {}
        self.baseline_info: dict[str, Any] | None = None
        self.jsonl = None
        self.plots: list[str] = []

    def started(self) -> None:
        from beamc.runtime.pipeline import now_iso

        self.t_start, self.wall_start = time.perf_counter(), now_iso()
        if self.opts.out:
            Path(self.opts.out).parent.mkdir(parents=True, exist_ok=True)
            self.jsonl = open(self.opts.out, "w", buffering=1)  # line-buffered: a killed run keeps what it predicted

    # -- per frame ---------------------------------------------------------------------
    def add(self, item: Any, baseline: Any, depth_in: int, depth_out: int) -> None:
        if isinstance(item, BadFrame):
            entry = self.bad.setdefault(item.reason, {"count": 0, "frame_ids": [], "example": item.message})
            entry["count"] += 1
            if len(entry["frame_ids"]) < 100:
                entry["frame_ids"].append(int(item.id))
            if self.jsonl:
                self.jsonl.write(json.dumps({"id": int(item.id), "bad": item.reason, "message": item.message}) + "\n")
            return
        if not hasattr(item, "logits"):  # _Warmup: the window is still filling
            self.warmup += 1
            return
        f = item.frame
        i = len(self.ids)
        self.ids.append(int(f.id))
        self.keys.append(f.key)
        label = -1 if f.label is None else int(f.label)
        self.labels.append(label)
        logits = np.asarray(item.logits, dtype=np.float32)
        self.logits.append(logits)
        if f.power is not None:
            self.power_rows.append(np.asarray(f.power, dtype=np.float64))
            self.power_idx.append(i)
        t = self.times
        t["read"].append((f.t_read - f.t_arrival) * 1e3)
        t["queue"].append((item.t_pre0 - f.t_read) * 1e3)
        t["preprocess"].append((item.t_pre1 - item.t_pre0) * 1e3)
        t["engine"].append((item.t_eng1 - item.t_eng0) * 1e3)
        e2e = (item.t_eng1 - f.t_arrival) * 1e3
        t["e2e"].append(e2e)
        self.t_arrival.append(f.t_arrival)
        self.t_done.append(item.t_eng1)
        self.misses += e2e > self.p.slot_ms
        self.depth_in.append(depth_in)
        self.depth_out.append(depth_out)
        first = logits if logits.ndim == 1 else logits[0]
        top1 = int(first.argmax())
        if label >= 0:
            self.correct += top1 == label
        base_top1 = None
        if baseline is not None:
            ref = np.asarray(baseline.run(tuple(x for x in item.inputs)))[0]
            self.base.append(ref.astype(np.float32))
            base_top1 = int((ref if ref.ndim == 1 else ref[0]).argmax())
            self.agree += base_top1 == top1
        if self.jsonl:
            k = min(self.opts.topk, first.shape[-1])
            top = np.argsort(-first, kind="stable")[:k]
            probs = metrics.softmax(first)[top]
            row = {"id": int(f.id), "t": round(float(f.t), 6), "key": f.key if f.key is None or isinstance(f.key, (int, str)) else str(f.key),
                   "topk": top.tolist(), "scores": [round(float(v), 6) for v in probs],
                   "label": None if label < 0 else label, "e2e_ms": round(e2e, 4)}
            if logits.ndim == 2:
                row["topk_per_step"] = np.argsort(-logits, axis=-1, kind="stable")[:, :k].tolist()
            if base_top1 is not None:
                row["baseline_top1"] = base_top1
            self.jsonl.write(json.dumps(row) + "\n")

    # -- live numbers --------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        n = len(self.ids)
        e2e = self.times["e2e"][-2000:]
        labelled = sum(1 for y in self.labels if y >= 0)
        elapsed = time.perf_counter() - self.t_start if self.t_start else 0.0
        return {"predicted": n, "fps": n / elapsed if elapsed > 0 else 0.0,
                "e2e": metrics.latency_summary(e2e), "misses": self.misses, "dropped": len(self.p.dropped),
                "bad": sum(b["count"] for b in self.bad.values()), "top1": self.correct / labelled if labelled else None,
                "agreement": self.agree / len(self.base) if self.base else None,
                "queue": self.depth_in[-1] if self.depth_in else 0, "slot_ms": self.p.slot_ms}

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
        n = len(self.ids)
        logits = np.stack(self.logits) if n else np.zeros((0, 1), np.float32)
        labels = np.asarray(self.labels, dtype=np.int64)
        span = (max(self.t_done) - min(self.t_arrival)) if n else 0.0
        rep: dict[str, Any] = {
            "format": FORMAT, "status": status, "message": message,
            "bundle": str(opts.bundle), "task": p.task_name,
            "model": {"file": p.manifest.get("model_file"), "precision": p.manifest.get("precision"),
                      "target": p.manifest.get("target"), "run": p.manifest.get("run", {}).get("name")},
            "engine": self.engine_info, "baseline": self.baseline_info,
            "source": {"spec": opts.source, "kind": p.source.kind, "live": p.source.live,
                       "pace": "live" if p.source.live else opts.pace, "rate": opts.rate, **_safe_info(p.source)},
            "frames": {"received": int(p.received), "predicted": n, "warmup": self.warmup,
                       "dropped": len(p.dropped), "dropped_ids": p.dropped[:100],
                       "bad": int(sum(b["count"] for b in self.bad.values())), "bad_by_reason": self.bad},
            "latency_ms": {s: metrics.latency_summary(v) for s, v in self.times.items()},
            "throughput_fps": float(n / span) if span > 0 else None,
            "deadline": {"slot_ms": p.slot_ms, "slot_from": p.slot_source, "misses": int(self.misses),
                         "miss_rate": float(self.misses / n) if n else None,
                         "measured_on": "e2e latency (frame arrival -> engine output)"},
            "queue_depth": {"input": _depth(self.depth_in, p.q_in.maxsize), "output": _depth(self.depth_out, p.q_out.maxsize)},
            "topk": int(opts.topk), "micro_batch": int(opts.micro_batch),
            "started": self.wall_start, "ended": getattr(self, "wall_end", None),
            "duration_s": float(self.t_end - self.t_start) if self.t_start and hasattr(self, "t_end") else None,
        }
        if p.source_traceback:
            rep["source_traceback"] = p.source_traceback
        if getattr(p, "worker_traceback", None):
            rep["engine_traceback"] = p.worker_traceback
        if n and (labels >= 0).any():
            rep["accuracy"] = metrics.label_metrics(logits, labels, self.keys, opts.topk)
        if self.power_idx:
            first = logits if logits.ndim == 2 else logits[:, 0]
            power = np.stack(self.power_rows)
            if power.shape[1] == first.shape[-1]:
                rep["power"] = metrics.power_metrics(first[self.power_idx], power, opts.topk)
            else:
                rep["power"] = {"skipped": f"the stream has {power.shape[1]} beam powers, the model predicts "
                                           f"{first.shape[-1]} beams"}
        if self.base:
            rep["agreement"] = metrics.agreement(logits, np.stack(self.base), opts.topk)
        return rep

    def write(self, rep: dict[str, Any]) -> None:
        path = Path(self.opts.report)
        if self.opts.plots and self.ids:
            try:
                self.plots = write_plots(self, path)
            except Exception as e:  # noqa: BLE001 - a plotting problem must not lose the report
                rep["plots_error"] = f"{type(e).__name__}: {e}"
        rep["plots"] = self.plots
        atomic_write_json(path, rep)


def _safe_info(source: Any) -> dict[str, Any]:
    try:
        return source.info()
    except Exception as e:  # noqa: BLE001
        return {"info_error": f"{type(e).__name__}: {e}"}


def _depth(values: list[int], capacity: int) -> dict[str, Any]:
    if not values:
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
    for stage, colour in (("e2e", "C0"), ("engine", "C1"), ("preprocess", "C2")):
        v = np.asarray(c.times[stage])
        if v.size:
            ax.hist(v, bins=60, alpha=0.6, color=colour, label=f"{stage} (p99 {np.percentile(v, 99):.3g} ms)")
    ax.axvline(c.p.slot_ms, color="red", linestyle="--", label=f"slot {c.p.slot_ms:g} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("frames")
    ax.set_title(f"{c.p.task_name}: latency per frame ({len(c.ids)} frames, {c.opts.engine})")
    ax.legend()
    fig.tight_layout()
    path = Path(f"{stem}_latency.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    out.append(str(path))

    labels = np.asarray(c.labels)
    if (labels >= 0).any() or c.base:
        fig, ax = plt.subplots(figsize=(7, 4))
        first = np.stack([lg if lg.ndim == 1 else lg[0] for lg in c.logits]).argmax(axis=1)
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
            agree = (base == first).astype(float)
            if len(agree) >= window:
                ax.plot(x[window - 1:], np.convolve(agree, kernel, mode="valid") * 100, label="top-1 agreement with baseline")
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
