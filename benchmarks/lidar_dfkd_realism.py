"""How real do a DF-KD run's generated scans look, and does a data-free score find the real-like ones?

    python benchmarks/lidar_dfkd_realism.py RUN_DIR [--metadata FILE] [--samples 4000] [--weights generator.pt]

For the run's final generator (generator_final.pt, else generator.pt) against the test split:

* AUROC of each data-free score for telling a real window from a generated one (1 = every real
  window scores above every generated one, 0.5 = no better than chance): the teacher's prediction
  entropy (keep_by = "confidence"), the distance to the saved overall statistics of the last hidden
  state (keep_by = "metadata") and to the predicted beam's statistics (keep_by = "class_metadata",
  needs the per-beam statistics: `--metadata` names a metadata file that has them when the run's own
  copy predates them);
* for the half of the samples each score keeps, the mean distance from a generated sample to its
  nearest real window in input space (the 8 scans) and in the teacher's GRU outputs, next to the
  same distance between real windows (nearest other real window) and for a random half;
* what the scans look like, real against generated: the fraction of bins that return, the runs
  of returning bins per scan, their width, the spread of range inside a run (a surface has one
  range), the mean range returned and the mean frame-to-frame change of a bin.

A diagnostic: it opens the data set (the test split), which the data-free stage never does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from beamc.compress.datafree import (atypicality, build_generator, class_atypicality, class_metadata_stats,
                                     frozen_teacher_forward, metadata_stats, prediction_entropy, read_metadata,
                                     teacher_classes)
from beamc.compress.modeling import load_model
from beamc.compress.pipeline import load_run_recipe
from beamc.registry import TASKS


def auroc(real: np.ndarray, fake: np.ndarray) -> float:
    """P(score of a real window > score of a generated one), ties counted half (Mann-Whitney)."""
    s = np.concatenate([real, fake])
    # average ranks: tied scores share the mean of the ranks they span, so a tie counts half
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)                     # the highest 1-based rank of each distinct score
    ranks = (upper - (counts - 1) / 2)[inverse]
    return float((ranks[:len(real)].sum() - len(real) * (len(real) + 1) / 2) / (len(real) * len(fake)))


def nearest(a: torch.Tensor, b: torch.Tensor, same: bool = False, chunk: int = 500) -> torch.Tensor:
    """Per row of a: distance to the nearest row of b (itself excluded when a is b)."""
    out = []
    for i in range(0, len(a), chunk):
        d = torch.cdist(a[i:i + chunk], b)
        if same:
            d[torch.arange(len(d)), torch.arange(i, i + len(d))] = float("inf")
        out.append(d.min(dim=1).values)
    return torch.cat(out)


def scan_statistics(x: np.ndarray) -> dict[str, float]:
    """Shape statistics of scans x [N, F, D] (processed LiDAR: zero except where something returns)."""
    scans = x.reshape(-1, x.shape[-1])
    on = scans > 0
    # one zero bin after every scan, so that no run crosses from one scan into the next
    flat_on = np.concatenate([on, np.zeros((len(on), 1), bool)], axis=1).ravel()
    flat_x = np.concatenate([scans, np.zeros((len(on), 1))], axis=1).ravel()
    starts = flat_on & ~np.concatenate([[False], flat_on[:-1]])
    run_id = np.cumsum(starts) - 1
    ids, vals = run_id[flat_on], flat_x[flat_on]
    width = np.bincount(ids)
    mean = np.bincount(ids, vals) / width
    std = np.sqrt(np.maximum(np.bincount(ids, vals ** 2) / width - mean ** 2, 0.0))
    runs = starts.reshape(len(on), -1).sum(axis=1)
    seen = runs > 0
    return {"returning bins": float(on.mean()), "scans with no return": float((~seen).mean()),
            "1 run": float((runs[seen] == 1).mean()), "2 runs": float((runs[seen] == 2).mean()),
            "3+ runs": float((runs[seen] >= 3).mean()), "run width, median bins": float(np.median(width)),
            "range std in a run, median": float(np.median(std[width > 1])),
            "mean range returned": float(vals.mean()),
            "mean abs frame-to-frame change": float(np.abs(np.diff(x, axis=1)).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--metadata", type=Path, help="teacher metadata file (default: the run's own)")
    ap.add_argument("--samples", type=int, default=4000, help="generated samples, and at most this many test windows")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--weights", help="generator file in RUN_DIR (default: generator_final.pt, the generator after "
                                      "the student stage's adversarial steps, else generator.pt, the one before)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    _, recipe = load_run_recipe(args.run)
    teacher, _ = load_model(args.run / "teacher.pt")
    teacher.eval()
    meta = read_metadata(args.metadata or args.run / "teacher_metadata.json")
    layer = meta["layer"]
    mean, var = metadata_stats(meta, (layer,), torch.device("cpu"))[layer]
    class_layer, cmean, cvar = class_metadata_stats(meta, torch.device("cpu"))
    forward, taps = frozen_teacher_forward(teacher, (layer, class_layer))
    data = TASKS.get(recipe.task.name).prepare(recipe.task, recipe.data, progress=False)
    (x_real,), _ = data.arrays("test")
    x_real = torch.from_numpy(x_real[:args.samples])
    gen = build_generator(recipe.distill, meta, teacher_classes(teacher, meta))
    weights = args.run / (args.weights or "generator_final.pt")
    weights = weights if args.weights or weights.exists() else args.run / "generator.pt"
    gen.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    frames = gen.frames
    with torch.no_grad():
        x_gen = gen.eval().sample(args.samples, torch.Generator().manual_seed(args.seed))
        scored = {}
        for name, x in (("real", x_real), ("gen", x_gen)):
            feats, logits = forward(x)
            scored[name] = ({"confidence": -prediction_entropy(logits),
                             "metadata": -atypicality(feats[layer], mean, var),
                             "class_metadata": -class_atypicality(feats[class_layer], logits, cmean, cvar)},
                            feats[class_layer].reshape(len(x), -1))
    taps.close()
    print(f"{args.run.name}: {weights.name}, {len(x_gen)} generated samples, {len(x_real)} test windows")
    print("| keep_by score | AUROC real vs generated | kept half: input 1-NN | kept half: GRU 1-NN |")
    print("|---|---|---|---|")
    flat = lambda x: x[:, :frames].reshape(len(x), -1)   # noqa: E731 - the 8 scans, not the zero frames
    d_in, d_gru = nearest(flat(x_gen), flat(x_real)), nearest(scored["gen"][1], scored["real"][1])
    half = len(x_gen) // 2
    halves = {k: v.argsort(descending=True)[:half] for k, v in scored["gen"][0].items()}
    for key, idx in halves.items():
        a = auroc(scored["real"][0][key].numpy(), scored["gen"][0][key].numpy())
        print(f"| {key} | {a:.3f} | {float(d_in[idx].mean()):.2f} | {float(d_gru[idx].mean()):.2f} |")
    rand = torch.randperm(len(x_gen), generator=torch.Generator().manual_seed(0))[:half]
    print(f"| (random half) | | {float(d_in[rand].mean()):.2f} | {float(d_gru[rand].mean()):.2f} |")
    print(f"| (real window to the nearest other real one) | | {float(nearest(flat(x_real), flat(x_real), True).mean()):.2f} "
          f"| {float(nearest(scored['real'][1], scored['real'][1], True).mean()):.2f} |")
    # diversity: a generator that collapses onto a few modes draws samples close to each other
    print(f"| (generated sample to the nearest other generated one) | | {float(nearest(flat(x_gen), flat(x_gen), True).mean()):.2f} "
          f"| {float(nearest(scored['gen'][1], scored['gen'][1], True).mean()):.2f} |")
    real_stats, gen_stats = scan_statistics(x_real[:, :frames].numpy()), scan_statistics(x_gen[:, :frames].numpy())
    print("\n| scan statistic | real test windows | generated |\n|---|---|---|")
    for key in real_stats:
        print(f"| {key} | {real_stats[key]:.3f} | {gen_stats[key]:.3f} |")


if __name__ == "__main__":
    main()
