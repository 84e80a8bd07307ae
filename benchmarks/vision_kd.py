"""Vision beam-tracking paper, Tables IV-V and Figs. 7/9 in shape: teacher, self-KD teacher and
students with L = 8/5/3, with and without KD, over several seeds, from one invocation.

    python benchmarks/vision_kd.py                                  # 3 seeds, the CPU setting below
    python benchmarks/vision_kd.py --seeds 0 --epochs 2             # quick look
    python benchmarks/vision_kd.py --image-size 224 --sequences 40  # the recipes' paper setting

The chain is the paper's (Sec. IV-B): the teacher (beta = 0) is trained once and cached, the
self-KD run refines it (beta 0.3, Gamma 2), and its network teaches every KD student
(--set teacher.checkpoint=<self-KD run>/student.pt); the no-KD students share data, schedule,
lr and seeds with their KD twins and differ only in beta = 0. Every run is an ordinary
`beamc distill` of a built-in recipe with the overrides printed at the start.

Default setting: the paper's architectures and hyper-parameters at 64 x 64 masks instead of
224 x 224 (the teacher's first MLP layer then has 256 inputs, 1,788,280 -> 313,720 parameters;
the student is unchanged), 120 simulated sequences, 40 epochs, blocks of 8 consecutive windows
per batch (--window-block; the CNN then runs once per distinct mask). The committed table
(benchmarks/results/vision_kd.md, which gives every command) used 128 x 128 masks (teacher 706,936
parameters), 120 sequences, a 30-epoch teacher at lr 1e-3, 30-epoch self-KD and students, one
process per seed side by side (--skip-selfkd --teacher-checkpoint ... --json sN.json, then --merge
of the JSON files and run folders). Earlier tables: 10 student epochs
(benchmarks/results/vision_kd_128px_10ep.md) and 32 x 32 / 40 sequences (vision_kd_32px_40seq.md).

Prints ATop-1/3/5 and ADBA (eq. 21 and the tables' Y3) per model, mean +- std over seeds,
and for each L how many seeds the KD student beats its no-KD twin; writes a per-slot plot
like Figs. 7/9 (seed means) and, with --json, every number.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from beamc.compress.pipeline import distill, read_metrics
from beamc.errors import BeamcError
from beamc.recipe import load_recipe, read_toml

REPO = Path(__file__).resolve().parents[1]
LENGTHS = (8, 5, 3)
KEYS = ("atop1", "atop3", "atop5", "adba", "adba_y3")
LABELS = {"atop1": "ATop-1", "atop3": "ATop-3", "atop5": "ATop-5", "adba": "ADBA (21)", "adba_y3": "ADBA-Y3"}


def run_recipe(name: str, overrides: list[str], out: Path, console: Console) -> dict:
    t0 = time.perf_counter()
    run = distill(load_recipe(REPO / "recipes" / f"{name}.toml", overrides), out=out, progress=False, log=lambda s: None)
    metrics = read_metrics(run.path)
    console.print(f"{name:24s} {' '.join(o for o in overrides if 'checkpoint' not in o)}  "
                  f"{time.perf_counter() - t0:6.0f} s  {run.path}")
    return metrics


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.2f}"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def run_part(run_dir: Path) -> dict:
    """The rows of one finished vision run folder, in the form a --json file has: the teacher and
    self-KD rows of a `vision_teacher_selfkd` run, or the teacher and the student row (seed from
    its train.seed) of a student run."""
    m = read_metrics(run_dir)
    if m.get("task") != "vision":
        raise SystemExit(f"{run_dir}: not a vision run (task {m.get('task')!r})")
    recipe = read_toml(run_dir / "recipe.toml", "the run's recipe.toml")
    seed = str(recipe["train"]["seed"])
    if m.get("method") == "self":
        labels = {"teacher": "teacher", "teacher (self-KD)": "student"}
        seed = "0"
    else:
        kd = "no KD" if m.get("method") == "none" else "KD"
        labels = {"teacher": "teacher", f"student L={recipe['task']['student_seq_len']} {kd}": "student"}
    rows = {label: {"0" if label == "teacher" else seed: m["models"][role]["metrics"]} for label, role in labels.items()}
    costs = {label: {k: m["models"][role][k] for k in ("params", "flops", "latency_ms")} for label, role in labels.items()}
    return {"overrides": [], "rows": rows, "costs": costs}


def combine(parts: list[dict]) -> tuple[dict, dict, list[str]]:
    """Rows, costs and overrides of several parts (the form of a --json file; seed keys may be
    strings, as JSON gives them back). The first part's teacher row stands: students taught by the
    self-KD network evaluate that network as their "teacher"."""
    rows: dict[str, dict[int, dict]] = {}
    costs: dict[str, dict] = {}
    common: list[str] = []
    for part in parts:
        common = common or part["overrides"]
        for label, by_seed in part["rows"].items():
            if label == "teacher" and label in rows:
                continue
            rows.setdefault(label, {}).update({int(k): v for k, v in by_seed.items()})
            costs[label] = part["costs"][label]
    return rows, costs, common


def merge(paths: list[Path]) -> tuple[dict, dict, list[str], list[str]]:
    """--merge: --json files of earlier invocations and finished run folders."""
    rows, costs, common = combine([run_part(p) if p.is_dir() else json.loads(p.read_text()) for p in paths])
    return rows, costs, common, []


def train_all(args: argparse.Namespace, console: Console) -> tuple[dict, dict, list[str], list[str]]:
    common = [f"task.image_size={args.image_size}", f"teacher.args.image_size={args.image_size}",
              f"data.synth.sequences={args.sequences}", f"train.epochs={args.epochs}",
              f"task.window_block={args.window_block}", *args.overrides]
    # the teachers learn slower than the 17x smaller students: a CPU budget may give them more epochs
    teacher_runs = [] if args.teacher_epochs is None else [f"teacher.train.epochs={args.teacher_epochs}"]
    common += teacher_runs
    selfkd_epochs = args.selfkd_epochs or args.teacher_epochs
    selfkd_epochs = [] if selfkd_epochs is None else [f"train.epochs={selfkd_epochs}"]
    console.print(f"overrides for every run: {' '.join('--set ' + o for o in common)}")
    parts = []   # one per run, in order: the self-KD run (teacher and self-KD rows) first
    given = [] if args.teacher_checkpoint is None else [f"teacher.checkpoint={json.dumps(str(args.teacher_checkpoint))}"]
    if args.skip_selfkd:
        if args.kd_teacher == "selfkd":
            raise SystemExit("--skip-selfkd needs --kd-teacher teacher")
        teacher_ckpt = args.teacher_checkpoint
    else:
        selfkd = run_recipe("vision_teacher_selfkd", [*common, *selfkd_epochs, *given, "train.seed=0"], args.out, console)
        parts.append(run_part(Path(selfkd["run"])))
        teacher_ckpt = Path(selfkd["run"]) / "student.pt" if args.kd_teacher == "selfkd" else args.teacher_checkpoint
    for seed in args.seeds:
        for length in args.lengths:
            for kd in (m == "kd" for m in args.methods):
                extra = [f"train.seed={seed}"]
                if teacher_ckpt is not None:
                    extra.append(f"teacher.checkpoint={json.dumps(str(teacher_ckpt))}")
                name = f"vision_student_l{length}" + ("_kd" if kd else "")
                # with --skip-selfkd the first student run's teacher row is the teacher's
                parts.append(run_part(Path(run_recipe(name, [*common, *extra], args.out, console)["run"])))
    rows, costs, _ = combine(parts)
    return rows, costs, common, selfkd_epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS), choices=LENGTHS)
    ap.add_argument("--methods", nargs="+", choices=["none", "kd"], default=["none", "kd"],
                    help="which students per seed and L: no KD, KD or both (e.g. only KD again with another teacher; "
                         "--merge with the earlier --json files)")
    ap.add_argument("--image-size", type=int, default=64, help="task.image_size and teacher.args.image_size")
    ap.add_argument("--sequences", type=int, default=120, help="data.synth.sequences")
    ap.add_argument("--window-block", type=int, default=8,
                    help="task.window_block: training batches of blocks of consecutive windows sharing their masks' "
                         "CNN passes (1 = the paper's independent windows, ~4x more CNN work at L = 8)")
    ap.add_argument("--epochs", type=int, default=40, help="train.epochs of every run (teacher included)")
    ap.add_argument("--teacher-epochs", type=int, default=None,
                    help="epochs of the two teacher-sized trainings (teacher, self-KD); default --epochs")
    ap.add_argument("--selfkd-epochs", type=int, default=None, help="epochs of the self-KD run; default --teacher-epochs")
    ap.add_argument("--kd-teacher", choices=["selfkd", "teacher"], default="selfkd",
                    help="who teaches the KD students: the self-KD refined teacher (paper) or the plain one")
    ap.add_argument("--teacher-checkpoint", type=Path, default=None,
                    help="a trained vision_teacher (teacher.pt of an earlier run or cache entry) for every run instead of "
                         "training one; the self-KD run refines it")
    ap.add_argument("--skip-selfkd", action="store_true",
                    help="no self-KD run (its row is left out; the teacher row comes from the students' runs)")
    ap.add_argument("--merge", type=Path, nargs="+", default=None,
                    help="only combine the --json files of earlier invocations (e.g. one per seed, run side by side) "
                         "and finished run folders (a vision_teacher_selfkd run, or one student run)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra recipe override for every run")
    ap.add_argument("--out", type=Path, default=Path("runs/vision_kd"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--md", type=Path, default=None, help="also write the table as Markdown with the command")
    args = ap.parse_args()

    console = Console(width=200)   # a log file gets the whole table, not an 80-column cut
    started = time.perf_counter()
    if args.merge:
        rows, costs, common, selfkd_epochs = merge(args.merge)
    else:
        rows, costs, common, selfkd_epochs = train_all(args, console)
    title = (f"vision beam tracking, simulated test split, {args.image_size} x {args.image_size} masks, "
             f"{args.sequences} sequences, {args.epochs} epochs (mean ± std over seeds, %)")
    table = Table(title=title)
    columns = ("model", "seeds", *(LABELS[k] for k in KEYS), "params", "FLOPs", "KD > no KD (ATop-5)", "KD > no KD (ADBA)")
    for col in columns:
        table.add_column(col, justify="left" if col == "model" else "right")
    lines = []
    for label, by_seed in rows.items():
        wins = ["", ""]
        twin = rows.get(label.replace(" KD", " no KD"), {}) if label.endswith(" KD") and not label.endswith("no KD") else {}
        paired = [s for s in by_seed if s in twin]
        if paired:
            # a seed counts when the KD student of that seed beats the no-KD student of the same seed
            wins = [f"{sum(by_seed[s][k] > twin[s][k] for s in paired)}/{len(paired)}" for k in ("atop5", "adba")]
        row = [label, str(len(by_seed)), *(mean_std([v[k] for v in by_seed.values()]) for k in KEYS),
               f"{costs[label]['params']:,}", f"{costs[label]['flops'] / 1e6:.1f} M", *wins]
        table.add_row(*row)
        lines.append(row)
    console.print(table)
    total = time.perf_counter() - started
    console.print(f"total {total:.0f} s")
    if args.md:
        import sys

        per_seed = ["| model | " + " | ".join(f"seed {s} ATop-5 / ADBA" for s in args.seeds) + " |",
                    "|---|" + "---|" * len(args.seeds)]
        for label, by_seed in rows.items():
            per_seed.append(f"| {label} | " + " | ".join(
                f"{100 * by_seed[s]['atop5']:.2f} / {100 * by_seed[s]['adba']:.2f}" if s in by_seed else "-"
                for s in args.seeds) + " |")
        md = [f"# {title}", "", "Command:", "", "```", "python " + " ".join(sys.argv), "```", "",
              "Overrides of every run: " + " ".join(f"`{o}`" for o in common)
              + (f"; the self-KD run also `{selfkd_epochs[0]}`" if selfkd_epochs else ""), "",
              "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
              *("| " + " | ".join(r) + " |" for r in lines), "", "Per seed (test split, %):", "", *per_seed, "",
              f"Total wall time {total / 60:.1f} min on this machine.", ""]
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text("\n".join(md))
        console.print(f"markdown: {args.md}")

    from beamc.plots import slot_curves

    def seed_mean(by_seed: dict[int, dict]) -> dict:
        first = next(iter(by_seed.values()))
        out = {k: first[k] for k in ("slots", "dba_delta")}
        for key, value in first.items():
            if isinstance(value, list) and key != "slots":
                out[key] = [statistics.mean(v[key][i] for v in by_seed.values()) for i in range(len(value))]
        return out

    plot = slot_curves({label: seed_mean(by_seed) for label, by_seed in rows.items()}, args.out / "vision_kd_per_slot.png",
                       title="Per-slot accuracy and DBA (seed means), cf. Figs. 7 and 9")
    console.print(f"per-slot plot: {plot}")
    if args.json:
        args.json.write_text(json.dumps({"overrides": common, "seeds": args.seeds, "rows": rows,
                                         "costs": {k: {"params": v["params"], "flops": v["flops"],
                                                       "latency_ms": v["latency_ms"]} for k, v in costs.items()}},
                                        indent=2))


if __name__ == "__main__":
    try:
        main()
    except BeamcError as e:   # a bad --merge folder or recipe: one line, not a traceback
        raise SystemExit(str(e)) from None
