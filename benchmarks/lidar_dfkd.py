"""LiDAR data-free KD paper, Figs. 3-5 in shape: Top-1 / Top-5 per predicted beam (t .. t+3)
of the teacher, the DF-KD students (KL, MSE), standard KD, KD-MSE, the student without KD
and the four generator-loss ablations, side by side from one invocation.

    python benchmarks/lidar_dfkd.py --seeds 0 1 2                 # the recipes as they are
    python benchmarks/lidar_dfkd.py --seeds 0 --set train.epochs=2  # quick look

All recipes share one cached teacher (and its metadata file); only the students (and the
DF-KD generators) change with the seed. Prints a markdown table: the mean over seeds per
method, Top-1 and Top-5 in % per step, their step means, and the share of the no-KD ->
teacher gap in mean Top-1 that each student recovers.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from beamc.compress.pipeline import distill, read_metrics
from beamc.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
# the DF-KD recipes of rounds 2-4: the generator's last layer gives the 8 x 216 bins (ReLU), eq. 5
# on the last hidden state only, 5,000 samples per student epoch in batches of 32 at lr 1e-3
FREE_BINS = ["distill.generator_output=relu", 'distill.metadata_layers=["hidden"]', "distill.samples=5000",
             "train.batch_size=32", "train.lr=1e-3"]
# the Fig. 3 ablation recipes of rounds 1-5 (the paper's plain pipeline): on top of FREE_BINS, the
# student runs 30 epochs over one pool of 5,000 samples and the generator stops after step 1
PAPER_POOL = [*FREE_BINS, "distill.student_samples=pool", "distill.adversarial=0", "train.epochs=30"]
# lidar_dfkd_kl_confident's renderer before round 10
BLEND = "distill.segment_render=blend"
# runs with data first: a teacher cache entry whose metadata lacks the per-layer statistics
# gets them re-measured there, before the data-free runs (which cannot open the data) need them
METHODS = {
    "no KD": "lidar_scratch", "KD": "lidar_kd", "KD-MSE": "lidar_kd_mse",
    "DF-KD KL": "lidar_dfkd_kl", "DF-KD MSE": "lidar_dfkd_mse",
    # rounds 8-9 drew the segments as a blend (the recipe's renderer until round 10)
    "DF-KD KL confident T=1": ("lidar_dfkd_kl_confident", [BLEND]),
    "DF-KD KL confident T=5": ("lidar_dfkd_kl_confident", [BLEND, "distill.temperature=5"]),
    # round 9: the same at 120 epochs; kept by their predicted beam's statistics instead of entropy;
    # with that distance also in the generator's loss; a sharper KL
    "DF-KD KL confident T=1 120 epochs": ("lidar_dfkd_kl_confident", [BLEND, "train.epochs=120"]),
    "DF-KD KL class-filtered T=1": ("lidar_dfkd_kl_confident", [BLEND, "distill.keep_by=class_metadata"]),
    "DF-KD KL confident T=1 class loss 0.3": ("lidar_dfkd_kl_confident", [BLEND, "distill.class_metadata_loss=0.3"]),
    "DF-KD KL confident T=0.5": ("lidar_dfkd_kl_confident", [BLEND, "distill.temperature=0.5"]),
    # round 10: segments drawn as the sensor measures them (nearest surface, hard edges) - the
    # recipe as committed since; and 6 of them
    "DF-KD KL confident occluded": "lidar_dfkd_kl_confident",
    "DF-KD KL confident occluded 6 segments": ("lidar_dfkd_kl_confident", ["distill.generator_segments=6"]),
    # round 11: the same with the temporal smoothness prior (frame-to-frame change back to the real
    # scans'), with tilted segments (two bounds), with weaker / stronger adversarial steps, with a
    # wider / narrower generator hidden layer than the paper's 64
    "DF-KD KL confident occluded smooth": ("lidar_dfkd_kl_confident", ["distill.smoothness=1.0"]),
    "DF-KD KL confident occluded tilted 0.025": ("lidar_dfkd_kl_confident", ["distill.segment_max_slope=0.025"]),
    "DF-KD KL confident occluded adversarial 0.003": ("lidar_dfkd_kl_confident", ["distill.adversarial=0.003"]),
    "DF-KD KL confident occluded adversarial 0.03": ("lidar_dfkd_kl_confident", ["distill.adversarial=0.03"]),
    "DF-KD KL confident occluded tilted 0.01": ("lidar_dfkd_kl_confident", ["distill.segment_max_slope=0.01"]),
    "DF-KD KL confident occluded generator 256": ("lidar_dfkd_kl_confident", ["distill.generator_hidden=256"]),
    "DF-KD KL confident occluded generator 32": ("lidar_dfkd_kl_confident", ["distill.generator_hidden=32"]),
    # the T = 5 against a sharper teacher (round 6: +1 point at seed 0)
    "DF-KD KL T=1": ("lidar_dfkd_kl", ["distill.temperature=1"]),
    "DF-KD KL adversarial cosine": ("lidar_dfkd_kl", ["distill.adversarial_schedule=student"]),
    # round 7: the same generator and student stage for a student of the teacher's architecture
    "DF-KD KL teacher-sized student": ("lidar_dfkd_kl", ["student.model=lidar_teacher"]),
    "DF-KD MSE 3 layers": "lidar_dfkd_mse_layers",
    "DF-KD MSE v1": "lidar_dfkd_mse_v1",
    # the round-2 MSE recipe (30 student epochs) against the committed 60 (free-bin generator)
    "DF-KD MSE 30 epochs": ("lidar_dfkd_mse", [*FREE_BINS, "train.epochs=30"]),
    "DF-KD KL free bins": ("lidar_dfkd_kl", [*FREE_BINS, "train.epochs=30"]),
    "DF-KD MSE free bins": ("lidar_dfkd_mse", FREE_BINS),
    "ablation: weighted": "lidar_dfkd_ablation_weighted", "ablation: metadata": "lidar_dfkd_ablation_metadata",
    "ablation: activation": "lidar_dfkd_ablation_activation", "ablation: entropy": "lidar_dfkd_ablation_entropy",
    **{f"ablation: {part} free bins": (f"lidar_dfkd_ablation_{part}", PAPER_POOL)
       for part in ("weighted", "metadata", "activation", "entropy")},
}


def row(name: str, runs: list[dict], gap: tuple[float, float] | None) -> str:
    def mean(key: str, i: int | None = None) -> float:
        vals = [m[key] if i is None else m[key][i] for m in runs]
        return 100 * statistics.mean(vals)

    steps = len(runs[0]["top1"])
    cells = [f"{mean('top1', i):.1f}" for i in range(steps)] + [f"{mean('mean_top1'):.1f}"]
    cells += [f"{mean('top5', i):.1f}" for i in range(steps)] + [f"{mean('mean_top5'):.1f}"]
    rec = ""
    if gap is not None and gap[1] != gap[0]:
        rec = f"{100 * (mean('mean_top1') - gap[0]) / (gap[1] - gap[0]):.0f} %"
    spread = ""
    if len(runs) > 1:
        spread = f" ±{100 * statistics.pstdev(m['mean_top1'] for m in runs):.1f}"
    return f"| {name} | " + " | ".join(cells) + f" | {rec} | {len(runs)}{spread} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS), metavar="METHOD")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override for every run")
    ap.add_argument("--out", type=Path, default=Path("runs/lidar_dfkd"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--merge", type=Path, nargs="+", default=None,
                    help="print the table of several --json files (e.g. one per seed run side by side) instead of running")
    args = ap.parse_args()

    results: dict[str, list[dict]] = {"teacher": []}
    if args.merge:
        args.seeds = []
        for path in args.merge:
            part = json.loads(path.read_text())
            args.seeds += part.pop("seeds", [])
            for name, runs in part.items():
                results.setdefault(name, []).extend(runs)
        # every run shares one cached teacher: one row per seed, not one per merged file
        results["teacher"] = results["teacher"][:len(set(args.seeds))]
    for seed in ([] if args.merge else args.seeds):
        for method in args.methods:
            name, extra = METHODS[method] if isinstance(METHODS[method], tuple) else (METHODS[method], [])
            recipe = load_recipe(REPO / "recipes" / f"{name}.toml", [*extra, *args.overrides, f"train.seed={seed}"])
            run = distill(recipe, out=args.out, progress=False, log=lambda s: None)
            models = read_metrics(run.path)["models"]
            results.setdefault(method, []).append(models["student"]["metrics"])
            if len(results["teacher"]) < args.seeds.index(seed) + 1:
                results["teacher"].append(models["teacher"]["metrics"])
            print(f"seed {seed} {method:22s} {models['student']['headline']}  ({run.path.name})", flush=True)

    steps = results["teacher"][0]["steps"]
    gap = None
    if results.get("no KD"):
        gap = (100 * statistics.mean(m["mean_top1"] for m in results["no KD"]),
               100 * statistics.mean(m["mean_top1"] for m in results["teacher"]))
    head = [f"Top-1 {s}" for s in steps] + ["Top-1 mean"] + [f"Top-5 {s}" for s in steps] + ["Top-5 mean"]
    print()
    print(f"LiDAR beam tracking, test split ({results['teacher'][0]['num_samples']} windows), % (mean over seeds "
          f"{sorted(set(args.seeds))})")
    print()
    print("| model | " + " | ".join(head) + " | gap recovered | seeds (±sd Top-1 mean) |")
    print("|---" * (len(head) + 3) + "|")
    order = ["teacher", *METHODS]   # the table in METHODS order, whatever order the --merge files came in
    for name, runs in sorted(results.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)):
        if runs:
            print(row(name, runs, gap if name not in ("teacher", "no KD") else None))
    print()
    print("gap recovered = (student - no KD) / (teacher - no KD) in mean Top-1 over the 4 predicted beams")
    if args.json:
        args.json.write_text(json.dumps({"seeds": args.seeds, **results}, indent=2))


if __name__ == "__main__":
    main()
