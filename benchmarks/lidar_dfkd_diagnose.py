"""Why a data-free LiDAR student falls short: compares a DF-KD run's generator samples with
the real test windows through the run's own teacher and student.

    python benchmarks/lidar_dfkd_diagnose.py RUN_DIR [RUN_DIR ...]

Per run and input source (synthetic = 2,000 samples of the run's generator, the one after
step 1 and, for adversarial runs, also the final one; real = the test split) it prints the
metadata loss (eq. 5) per teacher layer against the saved statistics, the teacher-student
top-1 agreement over the 4 predicted beams, the teacher's prediction entropy, the share of
exact zeros in the 8 scans, their mean, and the mean |x[t+1] - x[t]| between consecutive
scans. A diagnostic: it opens the data set (the test split), which the data-free stage never does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from beamc.compress.datafree import (build_generator, entropy_loss, frozen_teacher_forward, layered_metadata_loss, metadata_stats,
                                     read_metadata, teacher_classes, temporal_variation)
from beamc.compress.modeling import load_model
from beamc.compress.pipeline import load_run_recipe
from beamc.registry import TASKS


def describe(name: str, x: torch.Tensor, forward, student, stats, frames: int) -> str:
    with torch.no_grad():
        feats, lt = forward(x)
        ls = student(x)
    meta = " ".join(f"{k} {float(layered_metadata_loss({k: feats[k]}, {k: stats[k]})):.4f}" for k in stats)
    agree = 100 * float((lt.argmax(-1) == ls.argmax(-1)).float().mean())
    ent = float(entropy_loss(lt))
    scans = x[:, :frames]
    return (f"  {name:18s} meta [{meta}]  T/S agree {agree:4.1f} %  teacher entropy {ent:.2f}  "
            f"zeros {100 * float((scans == 0).float().mean()):3.0f} %  mean {float(scans.mean()):.3f}  "
            f"|dx| {float(temporal_variation(scans)):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--samples", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for run in args.runs:
        _, recipe = load_run_recipe(run)
        teacher, _ = load_model(run / "teacher.pt")
        student, _ = load_model(run / "student.pt")
        teacher.eval(), student.eval()
        meta = read_metadata(run / "teacher_metadata.json")
        layers = (meta["layer"], *meta.get("layers", {}))
        stats = metadata_stats(meta, layers, torch.device("cpu"))
        forward, taps = frozen_teacher_forward(teacher, layers)
        frames = int(meta["layout"]["frames"])
        data = TASKS.get(recipe.task.name).prepare(recipe.task, recipe.data, progress=False)
        (xt,), _ = data.arrays("test")
        print(run.name)
        for file in ("generator.pt", "generator_final.pt"):
            if (run / file).exists():
                gen = build_generator(recipe.distill, meta, teacher_classes(teacher, meta))
                gen.load_state_dict(torch.load(run / file, map_location="cpu", weights_only=True))
                with torch.no_grad():
                    x = gen.eval().sample(args.samples, torch.Generator().manual_seed(123))
                print(describe(f"synthetic ({file})", x, forward, student, stats, frames))
        print(describe("real test", torch.from_numpy(xt), forward, student, stats, frames))
        taps.close()


if __name__ == "__main__":
    main()
