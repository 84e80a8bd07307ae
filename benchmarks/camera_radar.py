"""Camera+radar multimodal KD (paper: multimodal-camera-radar-kd-abstract.md) in shape: the
fused teacher against the camera-only and radar-only teachers, and the compact student with
and without KD, side by side from one invocation on the same data.

    python benchmarks/camera_radar.py --seeds 0 1 2                       # recipes as they are
    python benchmarks/camera_radar.py --seeds 0 --set data.synth.sequences=12 --set train.epochs=2   # quick look

The teachers' seed is pinned by [teacher.train] (one cached teacher per modality set), so
the seeds vary the students only. Prints, as Markdown, Top-1/3/5 per predicted step (t,
t+1, ...) and their mean over steps for every model (students: mean over seeds, and per
seed), how often the KD student beats the no-KD student of the same seed, and the
teacher/student parameter and FLOP ratios (the abstract's targets: >= 27x, >= 4x).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from beamc.compress.pipeline import distill, read_metrics
from beamc.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
TEACHERS = {"fused teacher": "camera_radar_teacher", "camera-only teacher": "camera_only_teacher",
            "radar-only teacher": "radar_only_teacher"}
STUDENTS = {"KD student": "camera_radar_student_kd", "no-KD student": "camera_radar_student_scratch"}


def run_recipe(name: str, overrides: list[str], out: Path) -> dict:
    recipe = load_recipe(REPO / "recipes" / f"{name}.toml", overrides)
    run = distill(recipe, out=out, progress=False, log=lambda s: None)
    return read_metrics(run.path) | {"run_name": run.path.name}


def row(label: str, metrics_list: list[dict], topk: list[int]) -> str:
    """One Markdown row: per-step Top-K and mean over steps, averaged over the given runs."""
    cells = []
    for k in topk:
        per_step = [statistics.mean(m[f"top{k}"][s] for m in metrics_list) * 100 for s in range(len(metrics_list[0]["steps"]))]
        cells.append(" / ".join(f"{v:.1f}" for v in per_step))
        cells.append(f"**{statistics.mean(m[f'atop{k}'] for m in metrics_list) * 100:.2f}**")
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="student seeds")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override for every run")
    ap.add_argument("--out", type=Path, default=Path("runs/camera_radar_bench"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    say = lambda s: print(s, flush=True)  # noqa: E731 - progress lines interleave with long runs
    results: dict[str, list[dict]] = {}
    info: dict[str, dict] = {}
    for label, recipe in TEACHERS.items():
        m = run_recipe(recipe, args.overrides, args.out)
        results[label] = [m["models"]["teacher"]["metrics"]]
        info[label] = {"params": m["models"]["teacher"]["params"], "flops": m["models"]["teacher"]["flops"]}
        say(f"- {label}: {m['models']['teacher']['headline']} ({m['run_name']})")
    compression = None
    for label, recipe in STUDENTS.items():
        results[label] = []
        for seed in args.seeds:
            m = run_recipe(recipe, [*args.overrides, f"train.seed={seed}"], args.out)
            results[label].append(m["models"]["student"]["metrics"])
            info[label] = {"params": m["models"]["student"]["params"], "flops": m["models"]["student"]["flops"]}
            compression = m.get("compression", compression)
            say(f"- {label} seed {seed}: {m['models']['student']['headline']} ({m['run_name']})")
        data_info = m["data"]

    topk = sorted(int(k[3:]) for k in results["fused teacher"][0] if k.startswith("top") and k[3:].isdigit())
    steps = results["fused teacher"][0]["steps"]
    say("")
    say(f"Test split: {data_info['split_windows']['test']} windows of {data_info['split_sequences']['test']} sequences "
        f"(train {data_info['split_windows']['train']} windows); student seeds {args.seeds}; "
        f"teachers seed 0 (pinned); overrides {args.overrides or 'none'}.")
    say("")
    say("| model | params | FLOPs | runs |")
    say("|---|---:|---:|---:|")
    for label in results:
        say(f"| {label} | {info[label]['params']:,} | {info[label]['flops']:,} | {len(results[label])} |")
    say("")
    head = " | ".join(f"Top-{k} per step ({', '.join(steps)}) | ATop-{k}" for k in topk)
    say(f"| model | {head} |")
    say("|---|" + "---:|" * (2 * len(topk)))
    for label, ms in results.items():
        say(row(label + (f" (mean of {len(ms)} seeds)" if label in STUDENTS and len(ms) > 1 else ""), ms, topk))
    for label in STUDENTS:
        if len(results[label]) > 1:
            for seed, ms in zip(args.seeds, results[label]):
                say(row(f"{label}, seed {seed}", [ms], topk))
    say("")
    fused = results["fused teacher"][0]["atop1"]
    singles = {k: results[k][0]["atop1"] for k in ("camera-only teacher", "radar-only teacher")}
    say(f"Fused teacher ATop-1 {fused * 100:.2f} % vs " + ", ".join(f"{k} {v * 100:.2f} %" for k, v in singles.items())
        + f": fused beats both = {all(fused > v for v in singles.values())}")
    kd, nokd = results["KD student"], results["no-KD student"]
    wins = sum(a["atop1"] > b["atop1"] for a, b in zip(kd, nokd))
    say(f"KD student beats the no-KD student (ATop-1, same seed) in {wins}/{len(kd)} seeds")
    if compression:
        say(f"Teacher/student: {compression['params_ratio']:.1f}x fewer parameters (target >= 27x), "
            f"{compression['flops_ratio']:.1f}x fewer FLOPs (target >= 4x)")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "info": info, "compression": compression}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
