"""What a data-free LiDAR student could reach with a perfect generator: the student learns
the teacher's outputs alone (no labels, as in the data-free stage) but on REAL windows.

    python benchmarks/lidar_dfkd_bound.py --teacher DIR/teacher.pt --inputs test --loss kl --temperature 1
    python benchmarks/lidar_dfkd_bound.py --teacher DIR/teacher.pt --inputs train

A generator whose samples were indistinguishable from real scans would at best hand the
student windows like these. `--inputs test` is a transductive bound (the student imitates
the teacher on the very windows it is scored on; its validation score is what 1,364 real
windows teach about unseen ones); `--inputs train` is the same with the training windows. `--inputs fresh --fresh-sequences N`
simulates N sequences and keeps only those beyond the recipe's own (same street, new traffic, never
seen by the teacher nor scored): what an ideal generator gives, unlimited new scans of the real
distribution, up to N minus the recipe's sequences of them.
Prints validation and test mean Top-1 every 10 epochs.

    python benchmarks/lidar_dfkd_bound.py --teacher DIR/teacher.pt --inputs fresh --fresh-sequences 1920 --temperature 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from beamc.compress.losses import kd_kl
from beamc.compress.modeling import build_model, load_model, torch_predictor
from beamc.recipe import load_recipe
from beamc.registry import TASKS

REPO = Path(__file__).resolve().parents[1]


def fresh_windows(path: Path, recipe, data, sequences: int) -> np.ndarray:
    """Windows of the simulated sequences beyond the recipe's own. Sequence s of the simulator
    draws from its own random streams, so the first ones repeat the recipe's scenario (checked
    below) and the rest are new traffic on the same street."""
    base = recipe.data.synth.sequences
    if recipe.data.source != "synth" or sequences <= base:
        raise SystemExit(f"--inputs fresh: needs the synth source and --fresh-sequences above the recipe's {base}")
    bigger = load_recipe(path, [f"data.synth.sequences={sequences}"])
    big = TASKS.get(bigger.task.name).prepare(bigger.task, bigger.data, progress=True)
    last = data.windows.seq.max()                    # sequence ids as in the CSV, not 0-based
    same = np.flatnonzero(big.windows.seq <= last)
    if len(same) != len(data.windows.seq) or not np.array_equal(big.inputs(same[:256]), data.inputs(np.arange(256))):
        raise SystemExit("--inputs fresh: the larger scenario does not start with the recipe's sequences")
    return big.inputs(np.flatnonzero(big.windows.seq > last))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", type=Path, required=True, help="teacher.pt (e.g. the teacher cache entry)")
    ap.add_argument("--recipe", default="lidar_dfkd_mse", help="recipe whose [task] / [data] / [student] are used")
    ap.add_argument("--inputs", default="test", help="real splits the student learns the teacher on, e.g. train+val")
    ap.add_argument("--loss", choices=["mse", "kl"], default="kl")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh-sequences", type=int, default=0,
                    help="with --inputs fresh: simulate this many sequences, learn on those beyond the recipe's")
    args = ap.parse_args()
    torch.set_num_threads(1)

    path = REPO / "recipes" / f"{args.recipe}.toml"
    recipe = load_recipe(path, [])
    data = TASKS.get(recipe.task.name).prepare(recipe.task, recipe.data, progress=False)
    teacher, _ = load_model(args.teacher)
    teacher.eval()
    if args.inputs == "fresh":
        x = torch.from_numpy(fresh_windows(path, recipe, data, args.fresh_sequences))
    else:
        x = torch.cat([torch.from_numpy(data.arrays(s)[0][0]) for s in args.inputs.split("+")])
    with torch.no_grad():
        z_t = teacher(x)
    torch.manual_seed(args.seed)
    student = build_model(recipe.student.model, recipe.student.args)
    opt = torch.optim.Adam(student.parameters(), lr=recipe.train.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    order = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, args.epochs + 1):
        student.train()
        for idx in torch.randperm(len(x), generator=order).split(recipe.train.batch_size):
            z_s = student(x[idx])
            loss = F.mse_loss(z_s, z_t[idx]) if args.loss == "mse" else kd_kl(z_s, z_t[idx], args.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        if epoch % 10 == 0 or epoch == args.epochs:
            val = data.evaluate(torch_predictor(student), "val")
            test = data.evaluate(torch_predictor(student), "test")
            print(f"inputs {args.inputs} ({len(x)} windows) {args.loss} T {args.temperature:g} epoch {epoch}: "
                  f"val mean Top-1 {100 * val['mean_top1']:.1f}  test mean Top-1 {100 * test['mean_top1']:.1f}  "
                  f"test Top-1 t {100 * test['top1'][0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
