"""Does a bundle keep up with a sensor stream in real time? Runs `beamc run` on a source at
its own pace (recordings at their timestamps, or --rate N) and prints the deadline misses
against the task's slot, the end-to-end latency percentiles, drops and throughput.

    python benchmarks/runtime_deadline.py --bundle bundles/vision-cpu-fp32 --source deepsense:/tmp/v2i --rate 10
    python benchmarks/runtime_deadline.py --bundle bundles/sub6-cpu --source synth:sub6 --rate 50 --max-frames 1000

Target (issue 8): a 10 Hz multi-sensor stream with no deadline miss on this 2-core machine for
the vision student. The numbers are measured, not asserted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--rate", type=float, default=None, help="frames per second (default: the recording's timestamps)")
    ap.add_argument("--max-frames", type=int, default=0)
    ap.add_argument("--slot-ms", type=float, default=None)
    ap.add_argument("--engine", default="ort")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    from beamc.runtime.pipeline import RunOptions, run_stream

    out = Path(tempfile.mkdtemp(prefix="beamc-deadline-")) / "report.json"
    rep = run_stream(RunOptions(bundle=args.bundle, source=args.source, engine=args.engine,
                                pace="rate" if args.rate else "timestamps", rate=args.rate, slot_ms=args.slot_ms,
                                max_frames=args.max_frames, threads=args.threads, report=out, plots=False))
    f, d, lat = rep["frames"], rep["deadline"], rep["latency_ms"]
    print(f"{rep['task']} / {args.engine} on {args.source} ({rep['status']}), load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"  frames: {f['predicted']} predicted, {f['warmup']} filling history, {f['dropped']} dropped, {f['bad']} bad")
    print(f"  deadline misses: {d['misses']} of {f['predicted']} (slot {d['slot_ms']:g} ms, {d['slot_from']})")
    for stage in ("read", "preprocess", "engine", "e2e"):
        s = lat[stage]
        if s.get("count"):
            print(f"  {stage:<10} p50 {s['p50']:8.3f}  p90 {s['p90']:8.3f}  p99 {s['p99']:8.3f}  max {s['max']:8.3f} ms")
    print(f"  throughput {rep['throughput_fps']:.2f} frames/s   report: {out}")


if __name__ == "__main__":
    main()
