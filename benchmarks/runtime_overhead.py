"""Per-frame cost of the `beamc run` pipeline vs calling the bare ONNX Runtime session on the
same frames, measured side by side in one run (interleaved rounds, medians).

    python benchmarks/runtime_overhead.py --bundle bundles/sub6-cpu-fp32 --recording rec.npz [--frames 4000]
    python benchmarks/runtime_overhead.py --run runs/sub6_ikd-...     (exports + records into a temp folder)

bare      : session.run on each frame's preprocessed input, batch 1, one after the other
            (inputs preprocessed beforehand, not timed: the engine alone)
bare+pre  : the task's stream preprocessor then session.run, per frame, in one thread
bare-bound: the same through an IOBinding bound once to preallocated buffers, which is how
            the runtime's ORT engine runs batch 1 on the CPU (the fastest call ORT offers here)
pipeline  : run_stream on a CSI recording of the same frames as fast as possible (the worker
            reads the recording, preprocesses and runs the engine; the main thread measures),
            per frame = 1 / throughput
pipeline-thread: the same with the source in its own thread, as paced and live sources run
            (bounded input queue between them)
pipeline-mb8: --micro-batch 8 (frames already waiting run in one engine call; not batch 1,
            shown for reference)

Both use one ONNX Runtime intra-op thread. Target (issue 8): pipeline / bare <= 2 for the
sub-6 student at batch 1. The ratio is what this script reports; it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def bare_ms(session, name: str, xs: list[np.ndarray]) -> float:
    t0 = time.perf_counter()
    for x in xs:
        session.run(None, {name: x})
    return (time.perf_counter() - t0) * 1e3 / len(xs)


def bare_bound_ms(session, name: str, xs: list[np.ndarray]) -> float:
    buf = np.zeros_like(xs[0])
    out = np.empty_like(session.run(None, {name: buf})[0])
    binding = session.io_binding()
    binding.bind_cpu_input(name, buf)
    binding.bind_output(session.get_outputs()[0].name, "cpu", 0, out.dtype, list(out.shape), out.ctypes.data)
    t0 = time.perf_counter()
    for x in xs:
        np.copyto(buf, x)
        session.run_with_iobinding(binding)
        out.copy()
    return (time.perf_counter() - t0) * 1e3 / len(xs)


def bare_pre_ms(session, name: str, pre, frames: list[dict]) -> float:
    t0 = time.perf_counter()
    for f in frames:
        session.run(None, {name: pre.push(f)[0]})
    return (time.perf_counter() - t0) * 1e3 / len(frames)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path)
    ap.add_argument("--recording", type=Path)
    ap.add_argument("--run", type=Path, help="a sub-6 run: export it (cpu, fp32) and record its test users")
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import onnxruntime as ort

    from beamc.export.bundle import read_bundle
    from beamc.registry import TASKS
    from beamc.runtime.pipeline import RunOptions, run_stream
    from beamc.runtime.sources.csi import read_recording, record_csi, write_recording
    from beamc.schema import parse

    tmp = Path(tempfile.mkdtemp(prefix="beamc-overhead-"))
    bundle, recording = args.bundle, args.recording
    if args.run:
        from beamc.export.bundle import export_run

        bundle = export_run(args.run, "cpu", precision="fp32", out=tmp / "bundle", log=lambda s: None).path
        recording, _ = record_csi(tmp / "rec.npz", run_dir=args.run)
    if not (bundle and recording):
        ap.error("give --bundle and --recording, or --run")
    manifest = read_bundle(bundle)
    rec = read_recording(recording)
    reps = -(-args.frames // len(rec["csi"]))
    csi = np.concatenate([rec["csi"]] * reps)[: args.frames]
    tiled = write_recording(tmp / "tiled.npz", csi, np.arange(len(csi)) * 0.02)

    task = TASKS.get(manifest["task"]["name"])
    cfg = parse(task.TaskConfig, manifest["task"]["config"], "task")
    pre = task.stream_preprocessor(cfg, manifest["task"]["preprocess"])
    frames = [{"csi": c} for c in csi]
    xs = [pre.push(f)[0] for f in frames]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(str(bundle / manifest["model_file"]), sess_options=opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for x in xs[:200]:
        session.run(None, {name: x})  # warm-up

    results: dict[str, list[float]] = {"bare": [], "bare-bound": [], "bare+pre": [], "pipeline": [],
                                       "pipeline-thread": [], "pipeline-mb8": []}
    for _ in range(args.rounds):
        results["bare"].append(bare_ms(session, name, xs))
        results["bare-bound"].append(bare_bound_ms(session, name, xs))
        results["bare+pre"].append(bare_pre_ms(session, name, pre, frames))
        rep = run_stream(RunOptions(bundle=bundle, source=f"csi:{tiled}", pace="afap", report=tmp / "report.json",
                                    plots=False))
        assert rep["frames"]["predicted"] == len(frames), rep["frames"]
        results["pipeline"].append(1e3 / rep["throughput_fps"])
        th = run_stream(RunOptions(bundle=bundle, source=f"csi:{tiled}", pace="afap", report=tmp / "report_th.json",
                                   plots=False, inline_replay=False))
        results["pipeline-thread"].append(1e3 / th["throughput_fps"])
        mb = run_stream(RunOptions(bundle=bundle, source=f"csi:{tiled}", pace="afap", report=tmp / "report_mb.json",
                                   plots=False, micro_batch=8))
        results["pipeline-mb8"].append(1e3 / mb["throughput_fps"])
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"sub-6 student ({manifest['run']['student']['params'] if 'student' in manifest['run'] else '?'} params), "
          f"{len(frames)} frames, batch 1, {args.rounds} interleaved rounds (median per-frame time)")
    for k, v in med.items():
        print(f"  {k:<15} {v * 1e3:8.1f} us/frame   rounds: {', '.join(f'{x * 1e3:.1f}' for x in results[k])}")
    print(f"  pipeline / bare        = {med['pipeline'] / med['bare']:.2f}x   (target <= 2x)")
    print(f"  pipeline / bare-bound  = {med['pipeline'] / med['bare-bound']:.2f}x   (against ORT's fastest batch-1 call)")
    print(f"  pipeline / bare+pre    = {med['pipeline'] / med['bare+pre']:.2f}x   (bare+pre: the engine and the task's own preprocessing)")
    print(f"  pipeline-thread / bare = {med['pipeline-thread'] / med['bare']:.2f}x   (source in its own thread: paced and live sources)")
    print(f"  pipeline-mb8 / bare    = {med['pipeline-mb8'] / med['bare']:.2f}x")
    import os

    e = rep["latency_ms"]
    print(f"  load average while measuring: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"  last pipeline round: e2e p50 {e['e2e']['p50']:.3f} ms p99 {e['e2e']['p99']:.3f} ms, engine p50 "
          f"{e['engine']['p50'] * 1e3:.1f} us, preprocess p50 {e['preprocess']['p50'] * 1e3:.1f} us, "
          f"input queue max {rep['queue_depth']['input_chunks'].get('max')} chunks")


if __name__ == "__main__":
    main()
