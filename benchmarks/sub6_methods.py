"""Sub-6 paper, Fig. 3 in shape: teacher, self-distilled, IKD, RKD and scratch students over
several seeds, side by side from one invocation.

    python benchmarks/sub6_methods.py --seeds 0 1 2                # full-size default data
    python benchmarks/sub6_methods.py --seeds 0 --set train.epochs=2   # quick look

Every recipe shares one cached teacher (its seed is pinned by [teacher.train] in the
recipes), so only the students differ between seeds. Prints Top-1/Top-3/SE at the reference
SNR per method and seed, the mean, and how often each distilled student beats the scratch
student of the same seed; writes the table to --json if asked.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table

from beamc.compress.pipeline import distill, read_metrics
from beamc.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
METHODS = {"scratch": "sub6_scratch", "ikd": "sub6_ikd", "rkd": "sub6_rkd", "self": "sub6_self"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override for every run")
    ap.add_argument("--out", type=Path, default=Path("runs/sub6_methods"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    console = Console()
    results: dict[str, dict[int, dict[str, float]]] = {m: {} for m in ["teacher", *args.methods]}
    for seed in args.seeds:
        for method in args.methods:
            recipe = load_recipe(REPO / "recipes" / f"{METHODS[method]}.toml", [*args.overrides, f"train.seed={seed}"])
            run = distill(recipe, out=args.out, progress=False, log=lambda s: None)
            m = read_metrics(run.path)["models"]
            results[method][seed] = m["student"]["headline"]
            results["teacher"][seed] = m["teacher"]["headline"]
            console.print(f"seed {seed} {method:8s} {m['student']['headline']}  ({run.path.name})")

    keys = list(next(iter(results["teacher"].values())).keys())
    table = Table(title="sub-6 -> mmWave beam prediction, test split (mean over seeds)")
    table.add_column("model")
    for k in keys:
        table.add_column(k, justify="right")
    table.add_column("beats scratch (seeds)", justify="right")
    for name, by_seed in results.items():
        if not by_seed:
            continue
        row = [f"{statistics.mean(v[k] for v in by_seed.values()):.2f}" for k in keys]
        wins = ""
        if name not in ("teacher", "scratch") and "scratch" in results:
            top1 = keys[0]
            won = sum(by_seed[s][top1] > results["scratch"][s][top1] for s in by_seed if s in results["scratch"])
            wins = f"{won}/{len(by_seed)}"
        table.add_row(name, *row, wins)
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
