"""Batch-1 latency, measured side by side in one run: teacher in PyTorch, student in PyTorch,
student in ONNX Runtime fp32 and int8 (CPU), plus the int8 vs fp32 Top-1 on the test split.

    python benchmarks/export_latency.py --run runs/sub6_ikd-... [--run runs/vision_...] [--threads 1]

Each run directory is exported for the `cpu` target at int8 (which writes both model.onnx and
model_int8.onnx and measures their Top-1 on the test split), then every engine is timed in
interleaved rounds so that load from other processes hits all of them alike. Any task works:
inputs are the task's own test samples (the teacher gets its own view, e.g. longer sequences).
Numbers are reported as measured; ONNX Runtime int8 is often not faster than fp32 on a CPU for
models this small (quantize/dequantize overhead dominates), which is why export gates int8 on
accuracy and its speed belongs to the TensorRT device (build_engine.py prints it there).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def timer(fn: Callable[[], Any], iters: int) -> list[float]:
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def engines_for(run_dir: Path, bundles: Path, threads: int, calibration_samples: int | None) -> tuple[dict[str, Callable[[], Any]], dict[str, Any]]:
    import torch

    from beamc.compress.modeling import load_model
    from beamc.compress.pipeline import load_run_recipe
    from beamc.export.bundle import export_run
    from beamc.export.verify import ort_session
    from beamc.registry import TASKS

    result = export_run(run_dir, "cpu", precision="int8", out=bundles / run_dir.name, calibration_samples=calibration_samples,
                        max_top1_drop=100.0, log=lambda s: None)  # the benchmark reports the drop; it does not gate it
    path, recipe = load_run_recipe(run_dir)
    data = TASKS.get(recipe.task.name).prepare(recipe.task, recipe.data, progress=False)
    student_x = tuple(np.ascontiguousarray(x[:1]) for x in data.arrays("test", "student")[0])
    teacher_x = tuple(np.ascontiguousarray(x[:1]) for x in data.arrays("test", "teacher")[0])
    teacher, _ = load_model(path / "teacher.pt")
    student, _ = load_model(path / "student.pt")
    names = [i["name"] for i in result.manifest["inputs"]]
    fp32 = ort_session(result.path / "model.onnx", threads)
    int8 = ort_session(result.path / "model_int8.onnx", threads)
    feeds = dict(zip(names, student_x))
    t_in = tuple(torch.from_numpy(x) for x in teacher_x)
    s_in = tuple(torch.from_numpy(x) for x in student_x)

    def torch_call(model, xs):
        def call():
            with torch.inference_mode():
                model(*xs)
        return call

    engines = {"teacher torch": torch_call(teacher, t_in), "student torch": torch_call(student, s_in),
               "student ORT fp32": lambda: fp32.run(None, feeds), "student ORT int8": lambda: int8.run(None, feeds)}
    test = result.parity["int8"]["test"]
    info = {"task": recipe.task.name, "bundle": str(result.path), "test_samples": test["samples"],
            "top1_fp32": test["fp32"]["top1"], "top1_int8": test["int8"]["top1"], "top1_drop_points": test["top1_drop_points"],
            "teacher_params": int(sum(p.numel() for p in teacher.parameters())),
            "student_params": int(sum(p.numel() for p in student.parameters()))}
    return engines, info


def measure(engines: dict[str, Callable[[], Any]], rounds: int, per_round: int, warmup: int) -> dict[str, dict[str, float]]:
    for fn in engines.values():
        timer(fn, warmup)
    samples: dict[str, list[float]] = {k: [] for k in engines}
    for _ in range(rounds):  # interleaved: background load affects every engine alike
        for name, fn in engines.items():
            samples[name] += timer(fn, per_round)
    return {k: {"p50_ms": float(np.percentile(v, 50)), "p90_ms": float(np.percentile(v, 90)), "calls": len(v)}
            for k, v in samples.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, action="append", required=True, help="run directory (repeatable: sub6, vision, ...)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads for torch and ONNX Runtime (1 = one stream per core)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per-round", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--calibration-samples", type=int, default=None)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    import onnxruntime
    import torch

    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"threads": args.threads, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                              "runs": {}}
    with tempfile.TemporaryDirectory(prefix="beamc-bench-") as tmp:
        for run_dir in args.run:
            engines, info = engines_for(run_dir.resolve(), Path(tmp), args.threads, args.calibration_samples)
            lat = measure(engines, args.rounds, args.per_round, args.warmup)
            p50 = {k: v["p50_ms"] for k, v in lat.items()}
            info["latency"] = lat
            info["ratios"] = {
                "teacher torch / student ORT fp32": p50["teacher torch"] / p50["student ORT fp32"],
                "teacher torch / student ORT int8": p50["teacher torch"] / p50["student ORT int8"],
                "student torch / student ORT fp32": p50["student torch"] / p50["student ORT fp32"],
                "ORT fp32 / ORT int8 (>1: int8 faster)": p50["student ORT fp32"] / p50["student ORT int8"],
            }
            report["runs"][run_dir.name] = info
            print(f"\n{run_dir.name} ({info['task']}; teacher {info['teacher_params']:,} params, student "
                  f"{info['student_params']:,}), batch 1, {args.threads} thread(s), {args.rounds}x{args.per_round} calls each")
            for name, v in lat.items():
                print(f"  {name:<18} p50 {v['p50_ms'] * 1e3:9.1f} us   p90 {v['p90_ms'] * 1e3:9.1f} us")
            for name, r in info["ratios"].items():
                print(f"  {name:<40} {r:6.2f}x")
            print(f"  Top-1 on {info['test_samples']} test samples: fp32 {info['top1_fp32']:.2f} %, int8 {info['top1_int8']:.2f} % "
                  f"(drop {info['top1_drop_points']:+.2f} points)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
