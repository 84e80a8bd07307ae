"""Camera+radar multimodal KD (paper: multimodal-camera-radar-kd-abstract.md) in shape: the
fused teacher against the camera-only and radar-only teachers, and the compact student with
and without KD, side by side from one invocation on the same data.

    python benchmarks/camera_radar.py --seeds 0 1 --teacher-seeds 0 1      # recipes as they are
    python benchmarks/camera_radar.py --seeds 0 --set data.synth.sequences=12 --set train.epochs=2 \\
        --set teacher.train.epochs=2                                       # quick look

`--seeds` vary the students; `--teacher-seeds` train every teacher once per seed
(`teacher.train.seed=N`); the students distil from the seed-0 teachers (the seed pinned by
the students' [teacher.train]). Prints, as Markdown, Top-1/3/5 per predicted step (t, t+1,
...) and their mean over steps for every model (mean over seeds, and per seed), how often
the KD student beats the no-KD student of the same seed, the teacher/student parameter and
FLOP ratios (the abstract's targets: >= 27x, >= 4x) and, when the scenario is simulated
with night sequences, the accuracy on the day and the night test windows separately.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

from beamc.compress.modeling import load_model, torch_predictor
from beamc.compress.pipeline import distill, load_run_recipe, read_metrics, student_names
from beamc.data.synth.v2i import TRUTH_FILE
from beamc.registry import TASKS
from beamc.recipe import load_recipe
from beamc.tasks.camera_radar import step_metrics

REPO = Path(__file__).resolve().parents[1]
TEACHERS = {"fused teacher": "camera_radar_teacher", "camera-only teacher": "camera_only_teacher",
            "radar-only teacher": "radar_only_teacher"}
STUDENTS = {"KD student": "camera_radar_student_kd", "no-KD student": "camera_radar_student_scratch"}


def run_recipe(name: str, overrides: list[str], out: Path) -> dict:
    recipe = load_recipe(REPO / "recipes" / f"{name}.toml", overrides)
    run = distill(recipe, out=out, progress=False, log=lambda s: None)
    return read_metrics(run.path) | {"run_name": run.path.name, "run_path": str(run.path)}


def row(label: str, metrics_list: list[dict], topk: list[int]) -> str:
    """One Markdown row: per-step Top-K and mean over steps, averaged over the given runs."""
    cells = []
    for k in topk:
        per_step = [statistics.mean(m[f"top{k}"][s] for m in metrics_list) * 100 for s in range(len(metrics_list[0]["steps"]))]
        cells.append(" / ".join(f"{v:.1f}" for v in per_step))
        cells.append(f"**{statistics.mean(m[f'atop{k}'] for m in metrics_list) * 100:.2f}**")
    return f"| {label} | " + " | ".join(cells) + " |"


def by_condition(run_path: str, role: str) -> dict[str, dict] | None:
    """Test metrics of one run's model on the day and on the night windows (by the condition
    of the window's last frame in the simulator's truth file); None for real data or a
    scenario without night sequences."""
    path, recipe = load_run_recipe(run_path)
    data = TASKS.get(recipe.task.name).prepare(recipe.task, recipe.data, progress=False)
    truth_file = Path(data.info["folder"]) / TRUTH_FILE
    if not truth_file.exists():
        return None
    truth = np.load(truth_file)
    if "night" not in truth or len(truth["night"]) != data.info["rows"]:
        return None
    idx = data.splits["test"]
    night = truth["night"][data.past[idx, -1]] > 0
    if not night.any() or night.all():
        return None
    name = "teacher" if role == "teacher" else student_names(recipe)[-1]
    predict = torch_predictor(load_model(path / f"{name}.pt")[0])
    logits = np.concatenate([predict(data.inputs(idx[i:i + 256])) for i in range(0, len(idx), 256)])
    labels = data.labels[idx]
    topk = list(recipe.task.topk)
    return {cond: step_metrics(logits[mask], labels[mask], topk) | {"windows": int(mask.sum())}
            for cond, mask in (("day", ~night), ("night", night))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="student seeds")
    ap.add_argument("--teacher-seeds", type=int, nargs="+", default=[0], help="teacher seeds (teacher.train.seed)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override for every run")
    ap.add_argument("--out", type=Path, default=Path("runs/camera_radar_bench"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    say = lambda s: print(s, flush=True)  # noqa: E731 - progress lines interleave with long runs
    results: dict[str, list[dict]] = {}
    runs: dict[str, list[str]] = {}
    info: dict[str, dict] = {}
    seeds_of = {label: args.teacher_seeds for label in TEACHERS} | {label: args.seeds for label in STUDENTS}
    def teacher(label: str, seed: int) -> None:
        extra = [] if seed == 0 else [f"teacher.train.seed={seed}"]  # seed 0: the cached teacher the students use
        m = run_recipe(TEACHERS[label], [*args.overrides, *extra], args.out)
        results[label][args.teacher_seeds.index(seed)] = m["models"]["teacher"]["metrics"]
        runs[label][args.teacher_seeds.index(seed)] = m["run_path"]
        info[label] = {"params": m["models"]["teacher"]["params"], "flops": m["models"]["teacher"]["flops"]}
        say(f"- {label} seed {seed}: {m['models']['teacher']['headline']} ({m['run_name']})")

    # first teacher seed, students, then the other teacher seeds: a second process may train
    # those (`beamc train RECIPE --set teacher.train.seed=N --out SAME_OUT`) meanwhile, into the cache
    for label in TEACHERS:
        results[label], runs[label] = [{}] * len(args.teacher_seeds), [""] * len(args.teacher_seeds)
        teacher(label, args.teacher_seeds[0])
    compression = None
    for label, recipe in STUDENTS.items():
        results[label], runs[label] = [], []
        for seed in args.seeds:
            m = run_recipe(recipe, [*args.overrides, f"train.seed={seed}"], args.out)
            results[label].append(m["models"]["student"]["metrics"])
            runs[label].append(m["run_path"])
            info[label] = {"params": m["models"]["student"]["params"], "flops": m["models"]["student"]["flops"]}
            compression = m.get("compression", compression)
            say(f"- {label} seed {seed}: {m['models']['student']['headline']} ({m['run_name']})")
        data_info = m["data"]
    for label in TEACHERS:
        for seed in args.teacher_seeds[1:]:
            teacher(label, seed)

    topk = sorted(int(k[3:]) for k in results["fused teacher"][0] if k.startswith("top") and k[3:].isdigit())
    steps = results["fused teacher"][0]["steps"]
    say("")
    say(f"Test split: {data_info['split_windows']['test']} windows of {data_info['split_sequences']['test']} sequences "
        f"(train {data_info['split_windows']['train']} windows); teacher seeds {args.teacher_seeds}; "
        f"student seeds {args.seeds} (students distil from the seed-0 teachers); overrides {args.overrides or 'none'}.")
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
        say(row(label + (f" (mean of {len(ms)} seeds)" if len(ms) > 1 else ""), ms, topk))
    for label, ms in results.items():
        if len(ms) > 1:
            for seed, m in zip(seeds_of[label], ms):
                say(row(f"{label}, seed {seed}", [m], topk))
    say("")
    mean = {label: {f"atop{k}": statistics.mean(m[f"atop{k}"] for m in ms) for k in topk} for label, ms in results.items()}
    singles = ("camera-only teacher", "radar-only teacher")
    for k in topk:
        fused = mean["fused teacher"][f"atop{k}"]
        per_seed = [all(f[f"atop{k}"] > results[s][i][f"atop{k}"] for s in singles)
                    for i, f in enumerate(results["fused teacher"])]
        say(f"Fused teacher ATop-{k} {fused * 100:.2f} % vs "
            + ", ".join(f"{s} {mean[s][f'atop{k}'] * 100:.2f} %" for s in singles)
            + f" (means over teacher seeds): fused beats both = {all(fused > mean[s][f'atop{k}'] for s in singles)}"
            + f"; per teacher seed {sum(per_seed)}/{len(per_seed)}")
    kd, nokd = results["KD student"], results["no-KD student"]
    wins = sum(a["atop1"] > b["atop1"] for a, b in zip(kd, nokd))
    say(f"KD student beats the no-KD student (ATop-1, same seed) in {wins}/{len(kd)} seeds")
    if compression:
        say(f"Teacher/student: {compression['params_ratio']:.1f}x fewer parameters (target >= 27x), "
            f"{compression['flops_ratio']:.1f}x fewer FLOPs (target >= 4x)")

    conditions = {label: [by_condition(p, "teacher" if label in TEACHERS else "student") for p in paths]
                  for label, paths in runs.items()}
    if all(c is not None for cs in conditions.values() for c in cs):
        first = conditions["fused teacher"][0]
        say("")
        say(f"Day / night test windows ({first['day']['windows']} / {first['night']['windows']}; the condition of the "
            "window's last frame), means over the seeds:")
        say("")
        say("| model | " + " | ".join(f"ATop-{k} day | ATop-{k} night" for k in topk) + " |")
        say("|---|" + "---:|" * (2 * len(topk)))
        for label, cs in conditions.items():
            cells = [f"{statistics.mean(c[cond][f'atop{k}'] for c in cs) * 100:.2f}" for k in topk for cond in ("day", "night")]
            say(f"| {label} | " + " | ".join(cells) + " |")
    else:
        conditions = {}
    if args.json:
        args.json.write_text(json.dumps({"results": results, "runs": runs, "info": info, "compression": compression,
                                         "conditions": conditions, "teacher_seeds": args.teacher_seeds,
                                         "seeds": args.seeds}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
