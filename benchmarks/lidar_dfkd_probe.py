"""Learning curve of one data-free LiDAR student on the real validation split, and the
beam coverage of its generator: a diagnostic around the pipeline's own data-free stage.

    python benchmarks/lidar_dfkd_probe.py lidar_dfkd_mse --every 5 --set train.epochs=60 \
        --teachers /tmp/lidar_bench3/s0          # a runs folder whose teachers/ holds the cached teacher

It runs `compress.pipeline.train_students_data_free` exactly as `beamc distill` does (that
stage never receives the data set). Only this script, after each `--every`-th epoch, loads
the student's checkpoint that `fit` has just written and scores it on the real validation
split (mean Top-1 over the 4 predicted beams): is the student still improving, and where
does it saturate? At the end it prints the test-split figures and the teacher's argmax
histogram (beam at t) on the generator's samples against the real validation labels, as
the number of beams used and the effective number exp(entropy) of the histogram: a
generator that collapses onto a few beams teaches the student nothing about the others.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from beamc.compress.datafree import METADATA_FILE, build_generator, read_metadata, teacher_classes
from beamc.compress.modeling import build_model, load_model, torch_predictor
from beamc.compress.pipeline import obtain_teacher, open_run, train_students_data_free
from beamc.recipe import load_recipe
from beamc.registry import TASKS

REPO = Path(__file__).resolve().parents[1]


def coverage(beams: np.ndarray, num_beams: int) -> tuple[int, float, float]:
    """(beams used, effective number exp(H) of the histogram, share of the most frequent beam)."""
    counts = np.bincount(beams, minlength=num_beams).astype(float)
    p = counts / counts.sum()
    nz = p[p > 0]
    return int((counts > 0).sum()), float(math.exp(-(nz * np.log(nz)).sum())), float(p.max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe", help="recipe name under recipes/ (a data-free one)")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--teachers", type=Path, required=True, help="runs folder holding teachers/ (the teacher cache)")
    ap.add_argument("--every", type=int, default=5, help="score the student on the validation split every N epochs")
    ap.add_argument("--samples", type=int, default=2000, help="generator samples for the beam histogram")
    args = ap.parse_args()
    torch.set_num_threads(1)

    recipe = load_recipe(REPO / "recipes" / f"{args.recipe}.toml", args.overrides)
    task = TASKS.get(recipe.task.name)
    data = task.prepare(recipe.task, recipe.data, progress=False)   # for scoring only, never passed to the stage
    device = torch.device("cpu")
    run = open_run(recipe, args.teachers, resume=False)
    teacher = obtain_teacher(recipe, None, run, device, None, None)
    print(f"{run.path}  overrides {args.overrides}", flush=True)

    t0 = time.perf_counter()
    curve: list[tuple[int, float]] = []

    def score(label: str, epoch: int, row: dict) -> None:
        if epoch % args.every and epoch != recipe.train.epochs:
            return
        state = torch.load(run.file("student.state.pt"), map_location="cpu", weights_only=True)
        model = build_model(recipe.student.model, recipe.student.args)
        model.load_state_dict(state["model"])
        m = data.evaluate(torch_predictor(model), "val")
        curve.append((epoch, 100 * m["mean_top1"]))
        print(f"  epoch {epoch:4d}  train loss {row.get('train_loss', float('nan')):.4f}  val mean Top-1 "
              f"{100 * m['mean_top1']:5.1f}  Top-1 t {100 * m['top1'][0]:5.1f}  lr {row['lr']:.2e}  "
              f"{time.perf_counter() - t0:6.0f} s", flush=True)

    train_students_data_free(recipe, run, teacher, device, None, score)
    student, _ = load_model(run.file("student.pt"))
    test = data.evaluate(torch_predictor(student), "test")
    print(f"test: mean Top-1 {100 * test['mean_top1']:.1f}  Top-1 t {100 * test['top1'][0]:.1f}  "
          f"mean Top-5 {100 * test['mean_top5']:.1f}")

    meta = read_metadata(run.file(METADATA_FILE))
    nb = recipe.task.num_beams
    (_,), yv = data.arrays("val")
    print(f"beams at t, real val labels: used / effective / top share {coverage(yv[:, 0], nb)}")
    for file in ("generator.pt", "generator_final.pt"):
        if not run.file(file).exists():
            continue
        gen = build_generator(recipe.distill, meta, teacher_classes(teacher, meta))
        gen.load_state_dict(torch.load(run.file(file), map_location="cpu", weights_only=True))
        with torch.no_grad():
            x = gen.eval().sample(args.samples, torch.Generator().manual_seed(123))
            t_beam = teacher(x)[:, 0].argmax(-1).numpy()
            s_beam = student.eval()(x)[:, 0].argmax(-1).numpy()
        print(f"beams at t, teacher on {file}: used / effective / top share {coverage(t_beam, nb)}  "
              f"T/S agree {100 * float((t_beam == s_beam).mean()):.1f} %")


if __name__ == "__main__":
    main()
