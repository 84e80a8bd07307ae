"""The `beamc` command line: parse, call one library function, print. No logic here.

User errors (BeamcError) print one line and exit 2; anything else is a bug and keeps its
traceback. Heavy modules (torch, onnx) are imported inside the commands that need them so
`beamc --help` and `beamc run` stay fast and torch-free.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from beamc.errors import BeamcError

app = typer.Typer(
    name="beamc",
    help="Compress beam-prediction networks by knowledge distillation, export them to ONNX/TensorRT "
         "for a named device, and run them on sensor streams.\n\n"
         "First steps:  beamc distill recipes/sub6_ikd.toml   then   beamc export --target jetson-orin",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
recipes_app = typer.Typer(help="List, validate and document recipes.", no_args_is_help=True)
data_app = typer.Typer(help="Generate and inspect data sets.", no_args_is_help=True)
synth_app = typer.Typer(help="Write the embedded simulators' data sets to disk in the real formats.", no_args_is_help=True)
profiles_app = typer.Typer(help="List and show hardware profiles (the targets of beamc export).", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")
app.add_typer(profiles_app, name="profiles")
app.add_typer(data_app, name="data")
data_app.add_typer(synth_app, name="synth")

console = Console()
err_console = Console(stderr=True)

SET_HELP = "Override one recipe value, e.g. --set train.epochs=1 (repeatable; recorded in the run)."


def _recipe_path(recipe: str) -> Path:
    """A recipe file, or the name of a built-in recipe ('sub6_ikd')."""
    p = Path(recipe)
    if p.exists() or p.suffix == ".toml" or "/" in recipe:
        return p
    from beamc.recipe import builtin_recipes_dir

    builtin = builtin_recipes_dir() / f"{recipe}.toml"
    return builtin if builtin.exists() else p


def _load(recipe: str, overrides: list[str] | None):
    from beamc.recipe import load_recipe

    return load_recipe(_recipe_path(recipe), overrides or [])


def _fmt_int(n: Any) -> str:
    return f"{int(n):,}"


def _summary(metrics: dict[str, Any]) -> None:
    models = metrics.get("models", {})
    if not models:
        return
    heads = list(next(iter(models.values())).get("headline", {}).keys())
    table = Table(title=f"{metrics['recipe']}  ({metrics['task']}, method: {metrics.get('method')})")
    table.add_column("model")
    table.add_column("params", justify="right")
    table.add_column("FLOPs", justify="right")
    for h in heads:
        table.add_column(h, justify="right")
    table.add_column("latency (ms, b=1)", justify="right")
    for name, m in models.items():
        vals = [f"{m['headline'][h]:.2f}" for h in heads]
        lat = m.get("latency_ms", {})
        table.add_row(name, _fmt_int(m["params"]), _fmt_int(m["flops"]), *vals,
                      f"{lat.get('p50', float('nan')):.3f} {lat.get('device', '')}")
    console.print(table)
    if "compression" in metrics:
        c = metrics["compression"]
        console.print(f"student vs teacher: {c['params_ratio']:.1f}x fewer parameters "
                      f"({c['params_reduction_pct']:.2f} %), {c['flops_ratio']:.1f}x fewer FLOPs "
                      f"({c['flops_reduction_pct']:.2f} %)")


# --------------------------------------------------------------------------- compress
@contextmanager
def _resume_hint(command: str, recipe: str, set_: Optional[list[str]], out: Optional[Path]) -> Iterator[None]:
    """On Ctrl-C, one line naming the run folder and the command that continues it, exit 130.
    Caught here, inside the command: typer turns a KeyboardInterrupt that leaves the command
    into exit 130 with nothing printed, before main() could say anything."""
    from beamc.runs import RunInterrupted

    try:
        yield
    except RunInterrupted as e:
        words = ["beamc", command, recipe, *(w for s in set_ or [] for w in ("--set", s)),
                 *(["--out", str(out)] if out is not None else []), "--resume"]
        err_console.print(f"interrupted: {e.path} keeps its checkpoints; continue with: {shlex.join(words)}",
                          highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(130) from None


@app.command(epilog="Examples:\n\n  beamc distill recipes/sub6_ikd.toml\n\n"
                    "  beamc distill recipes/sub6_rkd.toml --set train.epochs=1 --set train.seed=3\n\n"
                    "  beamc distill recipes/sub6_ikd.toml --resume   (continue the last unfinished run)")
def distill(
    recipe: str = typer.Argument(..., help="Recipe file (or the name of a built-in recipe, e.g. sub6_ikd)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for run directories (default: the recipe's output.dir, 'runs')."),
    resume: bool = typer.Option(False, "--resume", help="Continue the newest unfinished run of this recipe from its last checkpoint."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print metrics.json instead of the summary table."),
) -> None:
    """Train (or reuse) the teacher and distill the student as the recipe says."""
    from beamc.compress.pipeline import distill as run_distill, read_metrics

    r = _load(recipe, set_)
    with _resume_hint("distill", recipe, set_, out):
        run = run_distill(r, out=out, resume=resume, progress=not quiet and not as_json,
                          log=(lambda s: None) if as_json else console.print)
    metrics = read_metrics(run.path)
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        _summary(metrics)
        console.print(f"run: {run.path}   (metrics.json, plots, checkpoints)")


@app.command(epilog="Example:\n\n  beamc train recipes/sub6_teacher.toml --set train.epochs=5")
def train(
    recipe: str = typer.Argument(..., help="Recipe file or built-in recipe name."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for run directories."),
    resume: bool = typer.Option(False, "--resume", help="Continue the newest unfinished run of this recipe."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train only the teacher of a recipe (it is cached and reused by later distill runs)."""
    from beamc.compress.pipeline import distill as run_distill, read_metrics

    r = _load(recipe, set_)
    with _resume_hint("train", recipe, set_, out):
        run = run_distill(r, out=out, resume=resume, progress=not quiet, teacher_only=True, log=console.print)
    _summary(read_metrics(run.path))
    console.print(f"run: {run.path}")


@app.command(epilog="Examples:\n\n  beamc evaluate runs/latest\n\n  beamc evaluate runs/latest --snr -5 --snr 0 --snr 25 --json")
def evaluate(
    run_dir: Path = typer.Argument(Path("runs/latest"), help="Run directory (default runs/latest)."),
    snr: Optional[list[float]] = typer.Option(None, "--snr", help="SNR (dB) to evaluate at, repeatable (sub6 task)."),
    device: str = typer.Option("auto", help='"auto", "cpu" or "cuda".'),
    as_json: bool = typer.Option(False, "--json", help="Print the evaluation as JSON."),
) -> None:
    """Re-evaluate a run's models on its test split (writes evaluation.json in the run)."""
    from beamc.compress.pipeline import load_run_recipe, reevaluate

    if snr:
        _, recipe = load_run_recipe(run_dir)
        if recipe.task.name != "sub6":
            raise BeamcError(f"--snr applies to the sub6 task; this run's task is '{recipe.task.name}'")
    metrics = reevaluate(run_dir, snr_db=snr or None, device=device)
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        _summary(metrics)
        for name, m in metrics["models"].items():
            rows = m["metrics"].get("by_snr")
            if rows:
                t = Table(title=name)
                for col in rows[0]:
                    t.add_column(col, justify="right")
                for row in rows:
                    t.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()))
                console.print(t)


@app.command(epilog="Examples:\n\n  beamc inspect recipes/sub6_ikd.toml\n\n  beamc inspect recipes/sub6_ikd.toml --json")
def inspect(
    recipe: str = typer.Argument(..., help="Recipe file or built-in recipe name."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
    as_json: bool = typer.Option(False, "--json", help="JSON with teacher.params, teacher.flops, student.params, student.flops."),
) -> None:
    """Build teacher and student without training; print parameters and FLOPs (as the task's paper counts them)."""
    from beamc.inspect import inspect_recipe

    info = inspect_recipe(_load(recipe, set_))
    if as_json:
        print(json.dumps(info, indent=2))
        return
    table = Table(title=f"{info['recipe']} ({info['task']})")
    for col in ("role", "model", "params", "FLOPs", "inputs"):
        table.add_column(col, justify="right" if col in ("params", "FLOPs") else "left")
    for role in ("teacher", "student"):
        if role in info:
            m = info[role]
            table.add_row(role, m["model"], _fmt_int(m["params"]), _fmt_int(m["flops"]),
                          ", ".join(f"{s['name']}{tuple(s['shape'])}" for s in m["inputs"]))
    console.print(table)
    if "ratios" in info:
        console.print(f"teacher/student: {info['ratios']['params']:.1f}x parameters, {info['ratios']['flops']:.1f}x FLOPs")


# ----------------------------------------------------------------------------- export
PRECISIONS = ("fp32", "fp16", "int8")
FORMATS = ("bundle", "triton")


def _choice(flag: str, value: Optional[str], choices: tuple[str, ...]) -> Optional[str]:
    from beamc.errors import did_you_mean

    if value is not None and value not in choices:
        raise BeamcError(f"{flag}: expected one of {', '.join(choices)}, found '{value}'{did_you_mean(value, choices)}")
    return value


@app.command(epilog="Examples:\n\n  beamc export --target jetson-orin                (runs/latest, the target's default precision)\n\n"
                    "  beamc export runs/sub6_ikd-20260101-120000 --target jetson-orin --precision int8 --calibration-samples 1024\n\n"
                    "  beamc export --target l4 --format triton --out bundles/l4-serving\n\n"
                    "  beamc export --target cpu --precision int8 --max-top1-drop 0.5 --json")
def export(
    run_dir: Path = typer.Argument(Path("runs/latest"), help="Run directory (default runs/latest)."),
    target: str = typer.Option(..., "--target", "-t", help="Hardware profile name (beamc profiles list) or a profile .toml file."),
    precision: Optional[str] = typer.Option(None, "--precision", "-p", help="fp32, fp16 or int8 (default: the target's)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Bundle folder (default bundles/<run>-<target>-<precision>/)."),
    fmt: str = typer.Option("bundle", "--format", help="bundle, or triton: also a Triton model repository in <bundle>/triton/."),
    calibration_samples: Optional[int] = typer.Option(None, "--calibration-samples", help="int8: stratified training samples for calibration."),
    max_top1_drop: Optional[float] = typer.Option(None, "--max-top1-drop", help="Gate: largest int8/fp16 Top-1 drop vs fp32 (points)."),
    max_abs_error: Optional[float] = typer.Option(None, "--max-abs-error", help="Gate: largest fp32 |ONNX Runtime - PyTorch| on the golden set."),
    no_engine: bool = typer.Option(False, "--no-engine", help="Do not build the TensorRT engine here even if TensorRT and a GPU are present."),
    as_json: bool = typer.Option(False, "--json", help="Print manifest and parity as JSON instead of the summary."),
) -> None:
    """Export a run's student for a target device: verified ONNX (+ int8/fp16), golden I/O, parity, manifest and the engine build."""
    from beamc.export.bundle import export_run
    from beamc.export.summary import COLUMNS, bundle_files, next_steps, parity_rows

    result = export_run(run_dir, target, precision=_choice("--precision", precision, PRECISIONS), out=out,
                        fmt=_choice("--format", fmt, FORMATS), calibration_samples=calibration_samples,
                        max_top1_drop=max_top1_drop, max_abs_error=max_abs_error,
                        engine="skip" if no_engine else "auto", log=(lambda s: None) if as_json else console.print)
    if as_json:
        print(json.dumps({"bundle": str(result.path), "manifest": result.manifest, "parity": result.parity}, indent=2))
        return
    m = result.manifest
    table = Table(title=f"{m['run']['name']} -> {m['target']} ({m['precision']})")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("artifact", "compared with") else "right")
    for row in parity_rows(result.parity, m):
        table.add_row(*row)
    console.print(table)
    console.print(f"bundle: {result.path}   files: {', '.join(bundle_files(m))}", highlight=False)
    for line in next_steps(m, str(result.path)):
        console.print(line, highlight=False)


@profiles_app.command("list")
def profiles_list(as_json: bool = typer.Option(False, "--json", help="Print the profiles as JSON.")) -> None:
    """List the export targets: device, compute capability, TensorRT range, build path, precisions."""
    from beamc.export.profiles import all_profiles, summary_rows

    profiles = all_profiles()
    if as_json:
        print(json.dumps([p.to_dict() for p in profiles], indent=2))
        return
    rows = summary_rows(profiles)
    table = Table(title="hardware profiles (beamc export --target NAME)")
    for col in rows[0]:
        table.add_column(col)
    for row in rows:
        table.add_row(*row.values())
    console.print(table)


@profiles_app.command("show", epilog="Examples:\n\n  beamc profiles show jetson-orin\n\n  beamc profiles show xavier-nx --json")
def profiles_show(
    name: str = typer.Argument(..., help="Profile name or profile .toml file."),
    as_json: bool = typer.Option(False, "--json", help="Print the profile as JSON."),
) -> None:
    """Show every setting of one hardware profile with its meaning."""
    from beamc.export.profiles import load_profile, show_rows

    profile = load_profile(name)
    if as_json:
        print(json.dumps(profile.to_dict(), indent=2))
        return
    table = Table(title=f"{profile.name}: {profile.device}")
    for col in ("key", "value", "meaning"):
        table.add_column(col)
    for row in show_rows(profile):
        table.add_row(*row)
    console.print(table)


# ---------------------------------------------------------------------------- recipes
@recipes_app.command("list")
def recipes_list(folder: Optional[Path] = typer.Argument(None, help="Folder of recipes (default: the built-in ones).")) -> None:
    """List recipes with their task, method and description."""
    from beamc.recipe import builtin_recipes_dir, read_toml

    root = folder or builtin_recipes_dir()
    if not root.is_dir():
        # an empty table would read as "this folder holds no recipes", not "there is no such folder"
        raise BeamcError(f"recipes folder not found: {root}" if not root.exists()
                         else f"{root} is a file, expected a folder of recipe .toml files")
    table = Table(title=f"recipes in {root}")
    for col in ("recipe", "task", "method", "description"):
        table.add_column(col)
    for p in sorted(root.glob("*.toml")):
        raw = read_toml(p)
        table.add_row(p.stem, str(raw.get("task", {}).get("name", "?")), str(raw.get("distill", {}).get("method", "none")),
                      str(raw.get("description", "")))
    console.print(table)


@recipes_app.command("validate", epilog="Example:\n\n  beamc recipes validate recipes/*.toml")
def recipes_validate(recipes: list[str] = typer.Argument(..., help="Recipe files to check.")) -> None:
    """Check recipes without running them; every problem is reported, exit 2 if any."""
    from rich.markup import escape

    from beamc.recipe import recipe_problems

    bad = 0
    for r in recipes:
        problems = recipe_problems(_recipe_path(r))
        if not problems:
            console.print(f"[green]ok[/green]    {r}")
        bad += bool(problems)
        for line in problems:  # escaped: "[teacher]" in a message is text, not a rich style tag
            console.print(f"[red]error[/red] {escape(line)}", highlight=False, soft_wrap=True)
    if bad:
        raise typer.Exit(2)


@recipes_app.command("schema", epilog="Examples:\n\n  beamc recipes schema\n\n  beamc recipes schema --task sub6 --method rkd")
def recipes_schema(
    # help texts are rich markup: an unescaped [task] is a style tag and vanishes from --help
    task: Optional[str] = typer.Option(None, help=r"Show the \[task] and \[data] keys of this task."),
    method: Optional[str] = typer.Option(None, help=r"Show the \[distill] keys of this method."),
    markdown: bool = typer.Option(False, help="Print a Markdown table (used for the README)."),
) -> None:
    """Document every recipe key: type, default and meaning."""
    from beamc.inspect import schema_rows

    rows = schema_rows(task, method)
    if markdown:
        print("| key | type | default | meaning |\n|---|---|---|---|")
        for key, tp, default, doc in rows:
            print(f"| `{key}` | {tp} | `{default}` | {doc} |")
        return
    table = Table(title="recipe keys")
    for col in ("key", "type", "default", "meaning"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)


# ------------------------------------------------------------------------------- data
@synth_app.command("sub6", epilog="Example:\n\n  beamc data synth sub6 --out /tmp/street --seed 3")
def synth_sub6(
    out: Path = typer.Option(..., "--out", help="Folder to write the two DeepMIMO scenario folders into."),
    seed: int = typer.Option(0, help="Layout seed."),
) -> None:
    """Write the embedded street scenario pair (3.5 GHz and 28 GHz) in DeepMIMO v4 format."""
    from dataclasses import replace

    from beamc.data.synth.street import StreetConfig, generate

    names = generate(replace(StreetConfig(), seed=seed), out)
    console.print(f"wrote {out / names[0]} and {out / names[1]} (read them with data.source = \"deepmimo\", "
                  f"data.folder = \"{out}\", data.sub6_scenario = \"{names[0]}\", data.mmwave_scenario = \"{names[1]}\")")


@synth_app.command("deepsense", epilog="Examples:\n\n  beamc data synth deepsense --out /tmp/v2i\n\n"
                                       "  beamc data synth deepsense --out /tmp/v2i-small --sequences 6 --seed 3 --no-radar\n\n"
                                       "  beamc data inspect /tmp/v2i   (check it and draw a contact sheet)")
def synth_deepsense(
    out: Path = typer.Option(..., "--out", help="New folder for the scenario (must not exist or be empty)."),
    sequences: Optional[int] = typer.Option(None, "--sequences", help="Number of vehicle passes, 30-65 frames each "
                                                                     "(default 24: about a minute)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the street, the traffic and the noise."),
    radar: bool = typer.Option(True, "--radar/--no-radar", help="Write radar cubes (1 MB per frame)."),
    camera: bool = typer.Option(True, "--camera/--no-camera", help="Write camera JPEGs."),
    night: float = typer.Option(0.0, "--night", help="Fraction of sequences recorded at night (darker, noisier "
                                                    "camera with vehicle lights; radar unaffected)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Simulate a V2I street (camera, LiDAR, radar, GPS, 64 beam powers at 60 GHz) and write it
    as a DeepSense 6G scenario folder that the real-format loader reads."""
    from beamc.data.synth.v2i import DeepSenseSynthConfig, generate
    from beamc.schema import parse, to_dict

    chosen = {"seed": seed, "radar": radar, "camera": camera, "night_fraction": night, **({"sequences": sequences} if sequences is not None else {})}
    cfg = parse(DeepSenseSynthConfig, {**to_dict(DeepSenseSynthConfig()), **chosen}, "data.synth")
    report = generate(cfg, out, progress=not quiet)
    console.print(f"wrote {report.rows} frames in {report.sequences} sequences to {out} in {report.seconds:.1f} s; "
                  f"check it with: beamc data inspect {out}")


@data_app.command("inspect", epilog="Examples:\n\n  beamc data inspect ~/data/scenario9\n\n"
                                    "  beamc data inspect ~/data/scenario9 --lenient --json\n\n"
                                    "  beamc data inspect /tmp/v2i --sheet /tmp/v2i.png --full")
def data_inspect(
    folder: Path = typer.Argument(..., help="DeepSense scenario folder (holding scenarioN.csv and unit1/)."),
    lenient: bool = typer.Option(False, "--lenient", help="Skip bad CSV rows and count them instead of stopping at the first."),
    csv_name: Optional[str] = typer.Option(None, "--csv", help="CSV file name when the folder has several."),
    full: bool = typer.Option(False, "--full", help="Read every file completely (default: JPEGs at 1/8 scale, .mat headers)."),
    sheet: Path = typer.Option(Path("contact_sheet.png"), "--sheet", help="Where to write the contact sheet PNG."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Counts, sequences, modalities, beam histogram, files that fail to load, and a contact sheet."""
    import numpy as np

    from beamc.data.deepsense_inspect import inspect_scenario

    info = inspect_scenario(folder, lenient=lenient, csv_name=csv_name, full=full, sheet=sheet, progress=not as_json)
    if as_json:
        print(json.dumps(info, indent=2))
        return
    table = Table(title=f"{info['folder']} ({info['csv']})", show_header=False)
    length = info["sequence_length"]
    hist = np.asarray(info["beam_histogram"])
    used = np.flatnonzero(hist)
    for key, value in (
        ("rows (kept / in CSV)", f"{info['kept']} / {info['rows']}"),
        ("skipped rows", ", ".join(f"{k}: {v}" for k, v in info["skipped"].items()) or "none"),
        ("sequences", f"{info['sequences']} (length {length['min']}..{length['max']}, median {length['median']:g})"),
        ("frame interval", f"{info['frame_interval_ms']:.0f} ms (median)" if info["frame_interval_ms"] else "n/a"),
        ("modalities", ", ".join(info["modalities"])),
        ("beams used (1-based)", f"{used.min() + 1}..{used.max() + 1}, most frequent {int(hist.argmax()) + 1}"
                                 if used.size else "none"),
        ("files that failed", str(len(info["failed_files"])) + f" ({info['checked']})"),
        ("contact sheet", info["contact_sheet"]),
    ):
        table.add_row(key, value)
    console.print(table)
    for line in info["failed_files"][:20]:
        console.print(f"[red]failed[/red] {line}", highlight=False)
    if len(info["failed_files"]) > 20:
        console.print(f"... and {len(info['failed_files']) - 20} more (use --json for all)")


# ------------------------------------------------------------------------------- run
def _run_epilog() -> str:
    from beamc.runtime.sources import EXAMPLES

    lines = ["Sources (--source SPEC; options after '?' as key=value&...):"]
    lines += [f"  {spec:<18} {what}, e.g. {example}" for spec, example, what in EXAMPLES]
    lines += ["Examples:",
              "  beamc run bundles/sub6-cpu-fp32 --source csi:rec.npz --baseline runs/sub6_ikd-20260101-120000",
              "  beamc run bundles/vision-orin-int8 --source deepsense:/data/scenario9 --engine trt --topk 5",
              "  beamc run bundles/lidar-cpu-fp32 --source tcp://0.0.0.0:5555 --slot-ms 100 --out preds.jsonl",
              "  beamc run bundles/sub6-cpu-fp32 --source synth:sub6 --as-fast-as-possible --max-frames 5000"]
    return "\n\n".join(lines)


@app.command(epilog=_run_epilog())
def run(
    bundle: Path = typer.Argument(..., help="Export bundle folder (beamc export)."),
    source: str = typer.Option(..., "--source", "-s", help="Where frames come from (see the list below)."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="Run directory of the PyTorch student to compare with, on the same preprocessed frames."),
    engine: str = typer.Option("ort", "--engine", "-e", help="ort (ONNX Runtime), trt (TensorRT) or torch."),
    report: Path = typer.Option(Path("report.json"), "--report", help="Where to write the report (PNG plots go next to it)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write per-frame predictions (top-K beams and scores) as JSON lines."),
    rate: Optional[float] = typer.Option(None, "--rate", help="Replay recordings at N frames per second instead of their timestamps."),
    afap: bool = typer.Option(False, "--as-fast-as-possible", help="Replay recordings without pacing (nothing is dropped)."),
    topk: int = typer.Option(5, "--topk", "-k", help="K of the predicted top-K beams (also the swept beams for the power loss)."),
    slot_ms: Optional[float] = typer.Option(None, "--slot-ms", help="Deadline per frame in ms (default per task: vision 128, lidar 111, camera_radar 111, sub6 20)."),
    max_frames: int = typer.Option(0, "--max-frames", help="Stop after N frames from the source (0: until the stream ends)."),
    micro_batch: int = typer.Option(1, "--micro-batch", help="Run up to N frames that are already waiting in one engine call."),
    queue_size: int = typer.Option(8, "--queue", help="Frames the source may be ahead of the engine before frames are dropped."),
    threads: int = typer.Option(1, "--threads", help="Engine threads (ONNX Runtime intra-op)."),
    live: Optional[bool] = typer.Option(None, "--live/--no-live", help="Live console view (default: when stderr is a terminal)."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write the latency histogram and accuracy-over-time PNGs."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Stream camera, LiDAR, radar or CSI frames through an exported model: top-K beams per frame,
    agreement with the PyTorch baseline, accuracy vs labels, latency vs the slot deadline."""
    from beamc.runtime.pipeline import RunOptions, run_stream

    if rate is not None and afap:
        raise BeamcError("--rate and --as-fast-as-possible exclude each other")
    pace = "afap" if afap else "rate" if rate is not None else "timestamps"
    opts = RunOptions(bundle=bundle, source=source, engine=_choice("--engine", engine, ("ort", "trt", "torch")),
                      baseline=baseline, report=report, out=out, pace=pace, rate=rate, topk=topk, slot_ms=slot_ms,
                      max_frames=max_frames, queue_size=queue_size, micro_batch=micro_batch, threads=threads,
                      live_view=err_console.is_terminal if live is None else live, plots=plots,
                      log=lambda s: err_console.print(s, highlight=False))
    rep = run_stream(opts)
    if as_json:
        print(json.dumps(rep, indent=2))
    else:
        _run_summary(rep, report)
    if rep["status"] in ("source_failed", "engine_failed"):
        raise BeamcError(f"{rep['message']} (report of the {rep['frames']['predicted']} frames processed: {report})")
    if rep["status"] == "interrupted":
        raise typer.Exit(130)
    f = rep["frames"]
    if f["received"] and not f["predicted"]:
        # nothing measured is not a success: a script must not take an empty report for a good run
        why = ", ".join(f"{k}: {v['count']}" for k, v in f["bad_by_reason"].items())
        raise BeamcError(f"{f['received']} frames received, none predicted ({f['bad']} bad{' - ' + why if why else ''}; "
                         f"{f['warmup']} filling history, {f['dropped']} dropped); report: {report}")


def _run_summary(rep: dict[str, Any], path: Path) -> None:
    table = Table(title=f"beamc run: {rep['task']} / {rep['engine'].get('engine')} on {rep['source']['spec']} ({rep['status']})",
                  show_header=False)
    f, lat, d = rep["frames"], rep["latency_ms"], rep["deadline"]
    e2e, eng = lat["e2e"], lat["engine"]
    rows = [("frames", f"{f['predicted']} predicted, {f['warmup']} filling history, {f['dropped']} dropped, {f['bad']} bad"
             + (" (" + ", ".join(f"{k}: {v['count']}" for k, v in f["bad_by_reason"].items()) + ")" if f["bad"] else "")
             + (f"; {f['unscored']} not scored (" + ", ".join(f"{k}: {v['count']}" for k, v in f["unscored_by_reason"].items())
                + ")" if f.get("unscored") else ""))]
    if e2e.get("count"):
        rows.append(("latency e2e ms", f"p50 {e2e['p50']:.3f}  p90 {e2e['p90']:.3f}  p99 {e2e['p99']:.3f}  max {e2e['max']:.3f}"))
        rows.append(("latency engine ms", f"p50 {eng['p50']:.3f}  p99 {eng['p99']:.3f}"))
        rows.append(("throughput", f"{rep['throughput_fps']:.1f} frames/s" if rep["throughput_fps"] else "-"))
        rows.append(("deadline", f"{d['misses']} misses of {d['slot_ms']:g} ms ({d['slot_from']})"))
    acc = rep.get("accuracy")
    if acc:
        ks = [k for k in acc if k.startswith("top")]
        rows.append(("vs labels", "  ".join(f"{k.replace('top', 'Top-')} {acc[k] * 100:.2f} %" for k in ks)
                     + f"  DBA {acc['dba']:.3f}  ({acc['labelled_frames']} frames)"))
    pw = rep.get("power")
    if pw and "loss_db" in pw:
        rows.append(("power loss", "  ".join(f"{k.replace('top', 'Top-')} {v['mean']:.2f} dB (saves "
                                              f"{pw['sweep_overhead_saved'][k] * 100:.0f} % of the sweep)"
                                              for k, v in pw["loss_db"].items())))
    elif pw and "skipped" in pw:
        rows.append(("power loss", f"skipped: {pw['skipped']}"))
    ag = rep.get("agreement")
    if ag:
        overlap = next(v for k, v in ag.items() if k.endswith("_overlap"))
        rows.append(("vs baseline", f"top-1 agreement {ag['top1_agreement'] * 100:.2f} %  top-{rep['topk']} overlap "
                                    f"{overlap * 100:.2f} %  max |logit error| {ag['max_abs_logit_error']:.2e}"))
    rows.append(("report", str(path) + (f"  plots: {', '.join(rep['plots'])}" if rep.get("plots") else "")))
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    if rep["status"] not in ("completed", "max_frames"):
        err_console.print(f"{rep['status']}: {rep['message']}", highlight=False)


record_app = typer.Typer(help="Record streams for beamc run.", no_args_is_help=True)
data_app.add_typer(record_app, name="record")


@record_app.command("csi", epilog="Examples:\n\n  beamc data record csi rec.npz --run runs/latest\n\n"
                                  "  beamc data record csi rec.npz --recipe sub6_ikd --snr-db 5 --max-frames 2000\n\n"
                                  "  beamc run bundles/sub6-cpu-fp32 --source csi:rec.npz --baseline runs/latest")
def record_csi(
    out: Path = typer.Argument(..., help="The .npz recording to write (format beamc-csi/1)."),
    run_dir: Optional[Path] = typer.Option(None, "--run", help="Use this run's recipe (its street and preprocessing)."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Or a sub6 recipe file or built-in name."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
    split: str = typer.Option("test", "--split", help="Users of this split: train, val or test."),
    snr_db: Optional[float] = typer.Option(None, "--snr-db", help="Receiver SNR (default: the task's reference SNR)."),
    interval_ms: float = typer.Option(20.0, "--interval-ms", help="Time between snapshots in the recording."),
    max_frames: int = typer.Option(0, "--max-frames", help="Keep only the first N snapshots (0: all)."),
) -> None:
    """Record the embedded sub-6 simulator's users as a CSI stream (csi, timestamps, labels, per-beam power)."""
    from beamc.runtime.sources.csi import record_csi as record

    path, n = record(out, run_dir=run_dir, recipe_path=_recipe_path(recipe) if recipe else None,
                     overrides=tuple(overrides or ()), split=split, snr_db=snr_db, interval_s=interval_ms / 1e3,
                     max_frames=max_frames)
    console.print(f"wrote {n} CSI snapshots to {path}; replay it with: beamc run BUNDLE --source csi:{path}")


def main() -> None:
    try:
        app()
    except BeamcError as e:
        err_console.print(f"error: {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted: checkpoints are kept; continue with --resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
