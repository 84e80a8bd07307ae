"""Does a teacher-sized data-free student make a better teacher for the 25,408-parameter one?

    beamc distill recipes/lidar_dfkd_kl.toml --set student.model=lidar_teacher --out runs   # the assistant
    python benchmarks/lidar_dfkd_assistant.py RUN_DIR --source teacher --epochs 40
    python benchmarks/lidar_dfkd_assistant.py RUN_DIR --source assistant --epochs 40

RUN_DIR is a data-free run whose student has the teacher's architecture. Both commands train the
recipe's student (GRU 32) on fresh samples of that run's final generator, frozen (no adversarial
steps, so the two differ only in who gives the targets), with KL at the recipe's temperature (or `--temperature`),
Adam at the recipe's lr, cosine, batch and samples per epoch as the recipe; `--source` picks the
targets: the teacher, or the run's own student (a teaching assistant, Mirzadeh et al. 2020).
`--keep F` draws batch / F samples and keeps the batch of lowest (`--keep-by confident`, as the
recipe option keep_by = "confidence") or highest (`uncertain`) teacher prediction entropy.
Prints the test split's mean Top-1 every 10 epochs. A diagnostic: it opens the test split.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from beamc.compress.datafree import build_generator, prediction_entropy, read_metadata, teacher_classes
from beamc.compress.losses import kd_kl
from beamc.compress.modeling import build_model, load_model, torch_predictor
from beamc.compress.pipeline import load_run_recipe
from beamc.registry import TASKS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--source", choices=["teacher", "assistant"], required=True)
    ap.add_argument("--student", default="lidar_student", help="model trained here (registry name)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=float, default=1.0, help="share of the drawn samples trained on")
    ap.add_argument("--keep-by", choices=["confident", "uncertain"], default="confident")
    ap.add_argument("--temperature", type=float, default=None, help="KL temperature (default: the recipe's)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    _, recipe = load_run_recipe(args.run)
    dcfg, cfg = recipe.distill, recipe.train
    temperature = dcfg.temperature if args.temperature is None else args.temperature
    teacher, _ = load_model(args.run / "teacher.pt")
    meta = read_metadata(args.run / "teacher_metadata.json")
    gen = build_generator(dcfg, meta, teacher_classes(teacher, meta))
    gen.load_state_dict(torch.load(args.run / "generator_final.pt", map_location="cpu", weights_only=True))
    source = teacher if args.source == "teacher" else load_model(args.run / "student.pt")[0]
    for m in (gen, teacher, source):
        m.eval()
    data = TASKS.get(recipe.task.name).prepare(recipe.task, recipe.data, progress=False)  # scoring only

    torch.manual_seed(args.seed)
    student = build_model(args.student, {})
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        noise = torch.Generator().manual_seed(args.seed * 100_003 + epoch)
        student.train()
        for _ in range(dcfg.samples // cfg.batch_size):
            with torch.no_grad():
                x = gen.sample(round(cfg.batch_size / args.keep), noise)
                if args.keep < 1:
                    ent = prediction_entropy(teacher(x))
                    x = x[(ent if args.keep_by == "confident" else -ent).argsort()[:cfg.batch_size]]
                z = source(x)
            loss = kd_kl(student(x), z, temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        if epoch % 10 == 0 or epoch == args.epochs:
            m = data.evaluate(torch_predictor(student), "test")
            print(f"{args.source} epoch {epoch}: loss {float(loss.detach()):.3f}  test mean Top-1 {100 * m['mean_top1']:.1f}  "
                  f"Top-1 t {100 * m['top1'][0]:.1f}  mean Top-5 {100 * m['mean_top5']:.1f}  "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
