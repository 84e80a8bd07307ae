"""How much of the simulated vision task can a motion mask answer at all? A hand-made baseline
that needs no training: the column centroid of a frame's motion mask, mapped to the best beam
by a cubic fit, scored separately on frames whose sequence holds only the target and on
frames whose sequence also holds other vehicles or pedestrians.

    python benchmarks/vision_target_ambiguity.py                                  # vision_teacher's scenario
    python benchmarks/vision_target_ambiguity.py --set data.synth.sequences=120 --set task.image_size=128
    python benchmarks/vision_target_ambiguity.py --set data.synth.other_vehicles=0.1 --set data.synth.pedestrians=0.1

The camera and the array are co-located, so the target's image column fixes its bearing and
with it the beam; the masks keep only what moves (paper Sec. III: "the motion masks highlight
the moving UE"). Where the target moves alone, the centroid should land within a beam or two of
the best beam; where other road users move too, the mask no longer says which blob carries the
transmitter. Reads the simulator's `beamc_truth.npz` (noiseless best beam, other road users
per sequence), so it runs on the embedded scenarios only. Prints one line per group and, with
--json, the numbers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from beamc.data.synth.v2i import TRUTH_FILE
from beamc.recipe import load_recipe
from beamc.registry import TASKS
from beamc.runs import atomic_write_json

REPO = Path(__file__).resolve().parents[1]


def centroid_columns(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(column centroid [n], mask pixel count [n]) of masks [n, S, S]."""
    profile = masks.reshape(len(masks), masks.shape[1], -1).sum(1, dtype=np.float64)
    total = profile.sum(1)
    centroid = (profile * np.arange(profile.shape[1])).sum(1) / np.maximum(total, 1e-9)
    return centroid, total


def fit_scores(centroid: np.ndarray, beam: np.ndarray, fit_rows: np.ndarray, score_rows: np.ndarray) -> dict[str, float]:
    """Cubic centroid -> beam fit on `fit_rows`, |beam error| shares on `score_rows`."""
    coef = np.polyfit(centroid[fit_rows], beam[fit_rows], 3)
    err = np.abs(np.rint(np.polyval(coef, centroid[score_rows])) - beam[score_rows])
    return {"frames": int(score_rows.sum()), "exact": float((err == 0).mean()), "within_1": float((err <= 1).mean()),
            "within_2": float((err <= 2).mean()), "within_5": float((err <= 5).mean()), "median_error": float(np.median(err))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="vision_teacher")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override, e.g. data.synth.sequences=120")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    recipe = load_recipe(REPO / "recipes" / f"{args.recipe}.toml", args.overrides)
    data = TASKS.get("vision").prepare(recipe.task, recipe.data, progress=False)
    truth_path = Path(data.info["folder"]) / TRUTH_FILE
    if not truth_path.exists():
        raise SystemExit(f"{truth_path}: not found; this diagnostic needs an embedded (simulated) scenario")
    truth = np.load(truth_path)
    best = truth["best_beam"].astype(int)
    alone = truth["others"] == 0
    centroid, total = centroid_columns(data.masks)
    moving = total > 0
    # fit on the training sequences' frames where the target is alone: the best a column map can do
    train_seq = np.unique(truth["seq_index"][data.past[data.splits["train"]][:, -1]])
    in_train = np.isin(truth["seq_index"], train_seq)
    fit = moving & alone & in_train
    current_rows = data.past[:, -1]  # each window's slot t is its newest frame
    out = {"frames": int(len(best)), "share_with_others": float((~alone).mean()),
           "label_equals_noiseless_best": float((data.labels[:, 0] == best[current_rows]).mean()),
           "alone": fit_scores(centroid, best, fit, moving & alone & ~in_train),
           "with_others": fit_scores(centroid, best, fit, moving & ~alone & ~in_train)}
    print(f"{out['frames']} frames, {out['share_with_others']:.1%} in sequences with other road users; "
          f"CSV beam = noiseless best beam in {out['label_equals_noiseless_best']:.1%} of windows")
    for group in ("alone", "with_others"):
        s = out[group]
        print(f"{group:12s} {s['frames']:5d} held-out frames: mask-centroid beam exact {s['exact']:.1%}, "
              f"within 1 {s['within_1']:.1%}, within 2 {s['within_2']:.1%}, within 5 {s['within_5']:.1%}")
    if args.json:
        atomic_write_json(args.json, out)


if __name__ == "__main__":
    main()
