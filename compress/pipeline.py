"""`beamc distill` / `beamc train`: teacher -> student(s) -> evaluation -> report.

    run = open or resume the run directory, write the resolved recipe
    data = task.prepare(...)                      (preprocessing state saved with the run)
    teacher = load recipe.teacher.checkpoint | reuse the cached teacher | train it
              (+ teacher_metadata.json when the task defines `teacher_metadata`)
    for each generation: student = distill(teacher)      (self-distillation: k generations)
    evaluate every model on the test split -> metrics.json, plots, summary

A data-free method (`distill.method = "datafree"`) changes the order: when the teacher is
already trained (teacher.checkpoint or the teacher cache) the data is never prepared before
the student stage, and the student stage itself receives no data object at all, only the
teacher and its metadata file. With `output.evaluate = false` the run never opens the data
set; `beamc evaluate RUN` is then the separate, explicit step that does.

Teachers are cached under <runs>/teachers/<task>-<model>-<hash of task, data, model and
training settings>/ so several recipes (scratch, IKD, RKD, ...) share one trained teacher.
"""

from __future__ import annotations

import datetime as _dt
import math
import platform
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch

import beamc
from beamc.complexity import count_flops, count_params, example_inputs, measure_latency
from beamc.errors import BeamcError
from beamc.progress import stage_progress
from beamc.recipe import Recipe, dumps, fingerprint, read_toml
from beamc.registry import DISTILLERS, TASKS
from beamc.runs import (Run, RunInterrupted, atomic_write_json, atomic_write_text, new_run, read_json,
                        resolve_run_dir, unfinished_runs)
from beamc.compress.distillers import ModelOut, Taps
from beamc.compress.modeling import (build_model, link_or_copy, load_model, resolve_device, save_model,
                                     torch_predictor)
from beamc.compress.trainer import fit, validation
from beamc.compress.teacher_outputs import TeacherOutputs, live_reason
from beamc.compress.datafree import METADATA_FILE, write_metadata

EpochHook = Callable[[str, int, dict[str, Any]], None]


def versions() -> dict[str, str]:
    return {"beamc": beamc.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


# ------------------------------------------------------------------------------ runs
def open_run(recipe: Recipe, out: str | Path | None, resume: bool) -> Run:
    out_root = Path(out) if out is not None else Path(recipe.output.dir)
    if resume:
        runs = [r for r in unfinished_runs(out_root, recipe.name) if r.file("recipe.toml").exists()]
        if not runs:
            raise BeamcError(f"--resume: no unfinished run of recipe '{recipe.name}' under {out_root}/")
        wanted = recipe.to_dict()
        recorded = {r.path: read_toml(r.file("recipe.toml"), "recorded recipe") for r in runs}
        # the newest run started with this very recipe: an older interrupted run is not hidden
        # by a later attempt with other --set values
        run = next((r for r in runs if recorded[r.path] == wanted), None)
        if run is None:
            newest, other = runs[0], recorded[runs[0].path]
            changed = sorted(k for k in set(other) | set(wanted) if other.get(k) != wanted.get(k))
            raise BeamcError(f"--resume: {newest.path} was started with a different recipe (section(s) {', '.join(changed)} "
                             "differ); resume with the same recipe and --set values, or start a new run")
        run.update_status(state="running", resumed=_dt.datetime.now().isoformat())
        return run
    run = new_run(out_root, recipe.name)
    atomic_write_text(run.file("recipe.toml"), dumps(recipe))
    run.update_status(source=recipe.source, overrides=list(recipe.overrides), versions=versions(),
                      command=" ".join(sys.argv))
    return run


# --------------------------------------------------------------------------- teacher
def teacher_cache_dir(recipe: Recipe, out_root: Path) -> Path:
    from beamc.recipe import train_fingerprint_dict
    from beamc.schema import to_dict

    teacher_key_excludes = TASKS.get(recipe.task.name).teacher_key_excludes
    task = {k: v for k, v in to_dict(recipe.task).items() if k not in teacher_key_excludes}
    key = fingerprint({"task": task, "data": recipe.data, "model": recipe.teacher.model,
                       "args": recipe.teacher.args,
                       "train": train_fingerprint_dict(recipe.teacher_train)})
    return out_root / "teachers" / f"{recipe.task.name}-{recipe.teacher.model}-{key}"


def obtain_teacher(recipe: Recipe, data: Any, run: Run, device: torch.device, progress: Any,
                   on_epoch_end: EpochHook | None) -> torch.nn.Module:
    task = TASKS.get(recipe.task.name)
    if recipe.teacher.checkpoint:
        model, ckpt = load_model(recipe.teacher.checkpoint, expect_task=recipe.task.name)
        if ckpt["model"] != recipe.teacher.model:
            raise BeamcError(f"teacher.checkpoint {recipe.teacher.checkpoint} holds model '{ckpt['model']}', "
                             f"the recipe's teacher.model is '{recipe.teacher.model}'")
        link_or_copy(Path(recipe.teacher.checkpoint), run.file("teacher.pt"))
        meta = Path(recipe.teacher.checkpoint).parent / METADATA_FILE
        if meta.exists():
            link_or_copy(meta, run.file(METADATA_FILE))
        run.update_status(teacher_source=str(recipe.teacher.checkpoint))
        return model.to(device).eval()

    cache = teacher_cache_dir(recipe, run.path.parent)
    final = cache / "teacher.pt"
    if not final.exists():
        cfg = recipe.teacher_train
        torch.manual_seed(cfg.seed)
        model = build_model(recipe.teacher.model, recipe.teacher.args)
        criterion = lambda logits, y: task.criterion(logits, y, recipe.task)  # noqa: E731

        def step(batch):
            out = model(*batch.for_teacher)
            loss = criterion(out, batch.y)
            return {"loss": loss}

        n_batches = math.ceil(data.split_size("train") / cfg.batch_size)
        fit(model, label="teacher", cfg=cfg, device=device, num_batches=n_batches, progress=progress,
            train_batches=lambda e: data.batches("train", cfg.batch_size, epoch=e, seed=cfg.seed, shuffle=True, roles=("teacher",)),
            step=step, validate=validation(data, criterion, cfg.batch_size, device, cfg.seed, role="teacher"),
            state_path=cache / "teacher.state.pt", history_path=cache / "history.csv", on_epoch_end=on_epoch_end)
        atomic_write_json(cache / "teacher.json", {"recipe": recipe.name, "task": recipe.to_dict()["task"],
                                                   "model": recipe.teacher.model, "args": recipe.teacher.args})
        if hasattr(task, "teacher_metadata"):
            # written before teacher.pt, whose existence marks a finished cache entry
            write_metadata(cache / METADATA_FILE, task.teacher_metadata(model.eval(), data))
            atomic_write_json(cache / "preprocess.json", preprocess_record(recipe, data))
        save_model(final, model, recipe.teacher.model, recipe.teacher.args, recipe.task.name)
        (cache / "teacher.state.pt").unlink(missing_ok=True)
    elif hasattr(task, "teacher_metadata") and data is not None and _metadata_stale(task, cache / METADATA_FILE):
        # a teacher cached before (these) metadata existed: measure it now, the data is at hand
        cached, _ = load_model(final)
        write_metadata(cache / METADATA_FILE, task.teacher_metadata(cached.to(device).eval(), data))
        atomic_write_json(cache / "preprocess.json", preprocess_record(recipe, data))
    link_or_copy(final, run.file("teacher.pt"))
    if (cache / METADATA_FILE).exists():
        link_or_copy(cache / METADATA_FILE, run.file(METADATA_FILE))
    if (cache / "history.csv").exists():
        link_or_copy(cache / "history.csv", run.file("teacher_history.csv"))
    run.update_status(teacher_source=str(cache))
    model, _ = load_model(run.file("teacher.pt"))
    return model.to(device).eval()


def _metadata_stale(task: Any, path: Path) -> bool:
    """No metadata file, or one without the per-layer or per-beam statistics the task now measures."""
    if not path.exists():
        return True
    meta = read_json(path, METADATA_FILE)
    have = meta.get("layers", {})
    return (any(name not in have for name in getattr(task, "metadata_extra_layers", ()))
            or (getattr(task, "metadata_class_layer", None) is not None and "by_class" not in meta))


def trained_teacher_dir(recipe: Recipe, out_root: Path) -> Path | None:
    """Folder of the recipe's teacher when it exists without training (the checkpoint's
    folder, or its finished teacher-cache entry), else None."""
    if recipe.teacher.checkpoint:
        return Path(recipe.teacher.checkpoint).parent
    cache = teacher_cache_dir(recipe, out_root)
    return cache if (cache / "teacher.pt").exists() else None


def preprocess_record(recipe: Recipe, data: Any) -> dict[str, Any]:
    task = TASKS.get(recipe.task.name)
    return {"task": recipe.task.name, "state": data.preprocess_state, "data": data.info,
            "inputs": {r: [s.to_dict() for s in task.input_spec(recipe.task, recipe.data, r)] for r in ("teacher", "student")},
            "outputs": [s.to_dict() for s in task.output_spec(recipe.task, recipe.data)]}


# -------------------------------------------------------------------------- students
def student_names(recipe: Recipe) -> list[str]:
    if recipe.student is None:
        return []
    g = DISTILLERS.get(recipe.distill.method)(recipe.distill, None).generations
    return ["student"] if g == 1 else [f"student_gen{i}" for i in range(1, g + 1)]


def train_students(recipe: Recipe, data: Any, run: Run, teacher: torch.nn.Module, device: torch.device,
                   progress: Any, on_epoch_end: EpochHook | None) -> None:
    task = TASKS.get(recipe.task.name)
    cfg = recipe.train
    criterion = lambda logits, y: task.criterion(logits, y, recipe.task)  # noqa: E731
    distiller = DISTILLERS.get(recipe.distill.method)(recipe.distill, criterion)
    roles = ("student", "teacher") if distiller.needs_teacher else ("student",)
    n_batches = math.ceil(data.split_size("train") / cfg.batch_size)
    current_teacher = teacher
    for param in teacher.parameters():
        param.requires_grad_(False)
    names = student_names(recipe)
    for g, name in enumerate(names):
        final = run.file(f"{name}.pt")
        if final.exists():
            current_teacher, _ = load_model(final)
            current_teacher.to(device).eval()
            continue
        torch.manual_seed(cfg.seed + g)
        model = build_model(recipe.student.model, recipe.student.args).to(device)
        with ExitStack() as stack:
            s_taps = Taps(model, distiller.student_taps, "distill.student_layer")
            t_taps = Taps(current_teacher, distiller.teacher_taps, "distill.teacher_layer")
            stack.callback(s_taps.close)
            stack.callback(t_taps.close)
            frozen_teacher = current_teacher
            cached = None
            reason = live_reason(data, distiller)
            if reason is None:
                cached = TeacherOutputs(frozen_teacher, data, cfg.batch_size, device, progress, f"{name}: teacher outputs")
                run.update_status(teacher_outputs=f"cached: {cached.samples} training samples, {cached.megabytes:.1f} MB")
            elif distiller.needs_teacher:
                run.update_status(teacher_outputs=f"live in every step: {reason}")
            step_roles = ("student",) if cached is not None else roles

            def step(batch, model=model, s_taps=s_taps, t_taps=t_taps, frozen_teacher=frozen_teacher, cached=cached):
                s_out = s_taps.run(model, batch.inputs)
                t_out = None
                if cached is not None:
                    t_out = cached(batch)
                elif distiller.needs_teacher:
                    with torch.no_grad():
                        t_out = t_taps.run(frozen_teacher, batch.for_teacher)
                return distiller.loss(batch, s_out, t_out)

            fit(model, label=name, cfg=cfg, device=device, num_batches=n_batches, progress=progress,
                train_batches=lambda e, r=step_roles: data.batches("train", cfg.batch_size, epoch=e, seed=cfg.seed,
                                                                 shuffle=True, roles=r),
                step=step, validate=validation(data, criterion, cfg.batch_size, device, cfg.seed),
                state_path=run.file(f"{name}.state.pt"), history_path=run.file(f"{name}_history.csv"),
                on_epoch_end=on_epoch_end)
        save_model(final, model, recipe.student.model, recipe.student.args, recipe.task.name,
                   method=recipe.distill.method, generation=g + 1)
        run.file(f"{name}.state.pt").unlink(missing_ok=True)
        current_teacher = model.eval()
    if len(names) > 1:
        link_or_copy(run.file(f"{names[-1]}.pt"), run.file("student.pt"))


def train_students_data_free(recipe: Recipe, run: Run, teacher: torch.nn.Module, device: torch.device,
                             progress: Any, on_epoch_end: EpochHook | None) -> None:
    """Alg. 1 of the data-free paper: generator, then student, from the teacher and its
    metadata file alone. Deliberately takes no data object: nothing here can read the data set."""
    from beamc.compress.datafree import (Inversion, atypicality, build_generator, class_atypicality, class_metadata_stats,
                                         frozen_teacher_forward, inherit_layers, metadata_stats, mix_samples, prediction_entropy, read_metadata, synthesize,
                                         teacher_classes, train_generator)
    from beamc.compress.trainer import make_scheduler
    from beamc.runs import atomic_torch_save
    from beamc.tasks.base import Batch

    cfg, dcfg = recipe.train, recipe.distill
    meta = read_metadata(run.file(METADATA_FILE))
    distiller = DISTILLERS.get(dcfg.method)(dcfg, None)
    final = run.file("student.pt")
    if final.exists():
        return
    for param in teacher.parameters():
        param.requires_grad_(False)
    gen_path = run.file("generator.pt")
    if gen_path.exists():  # resumed run: the generator of the first attempt
        gen = build_generator(dcfg, meta, teacher_classes(teacher, meta))
        gen.load_state_dict(torch.load(gen_path, map_location="cpu", weights_only=True))
        gen = gen.to(device).eval()
    else:
        gen, _ = train_generator(teacher, meta, dcfg, seed=cfg.seed, device=device,
                                 history_path=run.file("generator_history.csv"), progress=progress)
        atomic_torch_save({k: v.detach().cpu() for k, v in gen.state_dict().items()}, gen_path)
    torch.manual_seed(cfg.seed)
    model = build_model(recipe.student.model, recipe.student.args).to(device)
    inherit_layers(model, teacher, tuple(dcfg.inherit), dcfg.freeze_inherited)
    teacher.eval()
    inversion, gen_sched, select = None, None, None
    if dcfg.student_samples == "pool":
        pool = synthesize(gen, dcfg.samples, seed=cfg.seed + 1)

        def batches(epoch: int):
            order = torch.from_numpy(np.random.default_rng([cfg.seed, epoch, 17]).permutation(len(pool)))
            for start in range(0, len(pool), cfg.batch_size):
                x = pool[order[start:start + cfg.batch_size]]
                # no labels exist; y only carries the batch size through the trainer's bookkeeping
                yield Batch((x,), torch.zeros(len(x), dtype=torch.long))
    else:
        # Alg. 1 line 10: new noise for every batch, `samples` per epoch; with `adversarial`
        # the generator also takes one step per batch against the current student
        if dcfg.adversarial > 0:
            inversion = Inversion(gen, teacher, meta, dcfg, device)
            gen_noise = torch.Generator().manual_seed(cfg.seed + 2)
            if dcfg.adversarial_schedule == "student":  # the student's [train] schedule on the generator's Adam
                gen_sched = make_scheduler(inversion.opt, cfg)
        if dcfg.keep < 1 and dcfg.keep_by == "metadata":
            rank_layer = meta["layer"]
            mean, var = metadata_stats(meta, (rank_layer,), device)[rank_layer]
            select = frozen_teacher_forward(teacher, (rank_layer,))
        elif dcfg.keep < 1 and dcfg.keep_by == "class_metadata":
            rank_layer, mean, var = class_metadata_stats(meta, device)
            select = frozen_teacher_forward(teacher, (rank_layer,))

        def typicality_rank(x: torch.Tensor) -> torch.Tensor:
            """Order of the drawn samples, most typical of the teacher's training data first."""
            if select is None:  # the teacher's most certain answers
                return prediction_entropy(teacher(x)).argsort()
            feats, logits = select[0](x)
            if dcfg.keep_by == "class_metadata":  # features closest to their predicted beam's statistics
                return class_atypicality(feats[rank_layer], logits, mean, var).argsort()
            return atypicality(feats[rank_layer], mean, var).argsort()  # closest to the saved statistics

        def batches(epoch: int):
            noise = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            for start in range(0, dcfg.samples, cfg.batch_size):
                n = min(cfg.batch_size, dcfg.samples - start)
                if inversion is not None:
                    was = model.training
                    model.eval()  # the student is the generator's adversary here, not being trained
                    inversion.step(gen_noise, model, dcfg.adversarial)
                    model.train(was)
                    model.zero_grad(set_to_none=True)
                with torch.no_grad():
                    x = gen.sample(n if dcfg.keep == 1 else round(n / dcfg.keep), noise)
                    if dcfg.keep < 1:
                        x = x[typicality_rank(x)[:n]]
                    if dcfg.mixup > 0:
                        x = mix_samples(x, dcfg.mixup, noise)
                yield Batch((x,), torch.zeros(len(x), dtype=torch.long))
            if gen_sched is not None:
                gen_sched.step()

    def step(batch):
        with torch.no_grad():
            t_out = ModelOut(teacher(*batch.inputs))
        return distiller.loss(batch, ModelOut(model(*batch.inputs)), t_out)

    try:
        fit(model, label="student", cfg=cfg, device=device, num_batches=math.ceil(dcfg.samples / cfg.batch_size),
            progress=progress, train_batches=batches, step=step, validate=lambda m: {},
            state_path=run.file("student.state.pt"), history_path=run.file("student_history.csv"), on_epoch_end=on_epoch_end)
    finally:
        if inversion is not None:
            inversion.close()
        if select is not None:
            select[1].close()
    if inversion is not None:  # the generator the student ended against (generator.pt: after step 1)
        atomic_torch_save({k: v.detach().cpu() for k, v in gen.state_dict().items()}, run.file("generator_final.pt"))
    save_model(final, model, recipe.student.model, recipe.student.args, recipe.task.name, method=dcfg.method, generation=1)
    run.file("student.state.pt").unlink(missing_ok=True)


def is_data_free(recipe: Recipe) -> bool:
    return recipe.student is not None and bool(getattr(DISTILLERS.get(recipe.distill.method), "data_free", False))


# ------------------------------------------------------------------------ evaluation
def model_report(data: Any, recipe_task: Any, recipe_data: Any, task: Any, path: Path, role: str,
                 device: torch.device, snr_db: Any = None) -> dict[str, Any]:
    model, ckpt = load_model(path)
    specs = task.input_spec(recipe_task, recipe_data, role)
    eval_kwargs = {} if snr_db is None else {"snr_db": snr_db}
    metrics = data.evaluate(torch_predictor(model, device), "test", role, **eval_kwargs)
    return {"model": ckpt["model"], "args": ckpt["args"], "checkpoint": path.name,
            "params": count_params(model), "flops": count_flops(model.cpu(), example_inputs(specs), task.flop_convention),
            "flops_convention": task.flop_convention,
            "latency_ms": measure_latency(model, example_inputs(specs), device, *task.latency_plan(recipe_task)),
            "metrics": metrics, "headline": data.headline(metrics)}


def evaluate_run(recipe: Recipe, data: Any, run_dir: Path, device: torch.device, snr_db: Any = None) -> dict[str, Any]:
    task = TASKS.get(recipe.task.name)
    models: dict[str, Any] = {}
    if (run_dir / "teacher.pt").exists():
        models["teacher"] = model_report(data, recipe.task, recipe.data, task, run_dir / "teacher.pt", "teacher", device, snr_db)
    for name in student_names(recipe):
        if (run_dir / f"{name}.pt").exists():
            models[name] = model_report(data, recipe.task, recipe.data, task, run_dir / f"{name}.pt", "student", device, snr_db)
    out: dict[str, Any] = {"recipe": recipe.name, "task": recipe.task.name, "method": recipe.distill.method,
                           "data": data.info, "models": models}
    final = [n for n in models if n.startswith("student")]
    if "teacher" in models and final:
        t, s = models["teacher"], models[final[-1]]
        out["compression"] = {"params_ratio": t["params"] / s["params"], "flops_ratio": t["flops"] / max(s["flops"], 1),
                              "params_reduction_pct": 100 * (1 - s["params"] / t["params"]),
                              "flops_reduction_pct": 100 * (1 - s["flops"] / max(t["flops"], 1))}
    return out


def unevaluated_report(recipe: Recipe, run_dir: Path) -> dict[str, Any]:
    """metrics.json of a run with `output.evaluate = false`: sizes only, no data touched."""
    task = TASKS.get(recipe.task.name)
    models: dict[str, Any] = {}
    for name, role in [("teacher", "teacher")] + [(n, "student") for n in student_names(recipe)]:
        if (run_dir / f"{name}.pt").exists():
            model, ckpt = load_model(run_dir / f"{name}.pt")
            specs = task.input_spec(recipe.task, recipe.data, role)
            models[name] = {"model": ckpt["model"], "args": ckpt["args"], "checkpoint": f"{name}.pt",
                            "params": count_params(model), "flops": count_flops(model, example_inputs(specs))}
    return {"recipe": recipe.name, "task": recipe.task.name, "method": recipe.distill.method, "evaluated": False,
            "models": models}


def write_plots(recipe: Recipe, metrics: dict[str, Any], run: Run) -> list[str]:
    import csv

    from beamc.plots import loss_curves

    histories = {}
    for name in ["teacher", *student_names(recipe)]:
        f = run.file(f"{name}_history.csv")
        if f.exists():
            with f.open() as fh:
                histories[name] = list(csv.DictReader(fh))
    paths = []
    p = loss_curves(histories, run.file("val_loss.png"))
    if p:
        paths.append(p)
    paths += TASKS.get(recipe.task.name).plot(metrics, run.path)
    return [Path(p).name for p in paths]


# ------------------------------------------------------------------------------ entry
def distill(recipe: Recipe, *, out: str | Path | None = None, resume: bool = False, progress: bool = True,
            teacher_only: bool = False, on_epoch_end: EpochHook | None = None, log: Callable[[str], None] = print) -> Run:
    """Run a recipe end to end and return its run directory."""
    run = open_run(recipe, out, resume)
    log(f"run directory: {run.path}")
    try:
        task = TASKS.get(recipe.task.name)
        data_free = is_data_free(recipe) and not teacher_only
        if data_free and not (hasattr(task, "teacher_metadata") and hasattr(task, "synthetic_layout")):
            able = [n for n in TASKS.names() if hasattr(TASKS.get(n), "teacher_metadata")]
            raise BeamcError(f"distill.method = '{recipe.distill.method}': task '{recipe.task.name}' has no teacher "
                             f"metadata or synthetic input layout for a generator (tasks that do: {', '.join(able)})")
        ready = trained_teacher_dir(recipe, run.path.parent) if data_free else None
        data = None
        if ready is None:
            log("preparing data ...")
            data = task.prepare(recipe.task, recipe.data, progress=progress)
            atomic_write_json(run.file("preprocess.json"), preprocess_record(recipe, data))
        else:
            log(f"data-free: teacher from {ready}; the data set is not opened for the student stage")
            if (ready / "preprocess.json").exists():
                link_or_copy(ready / "preprocess.json", run.file("preprocess.json"))
        device = resolve_device(recipe.train.device)
        prog = stage_progress(progress)
        with prog if prog is not None else ExitStack():
            teacher = obtain_teacher(recipe, data, run, device, prog, on_epoch_end)
            run.mark_stage("teacher")
            if not teacher_only and recipe.student is not None:
                if data_free:
                    train_students_data_free(recipe, run, teacher, device, prog, on_epoch_end)
                else:
                    train_students(recipe, data, run, teacher, device, prog, on_epoch_end)
                run.mark_stage("student")
        evaluation_recipe = recipe if not teacher_only else _without_student(recipe)
        if recipe.output.evaluate:
            if data is None:
                log("preparing the test data for evaluation ...")
                data = task.prepare(recipe.task, recipe.data, progress=progress)
            log("evaluating on the test split ...")
            metrics = evaluate_run(evaluation_recipe, data, run.path, device)
        else:
            log("output.evaluate = false: not evaluated (run `beamc evaluate` on this run)")
            metrics = unevaluated_report(evaluation_recipe, run.path)
        metrics["run"] = str(run.path)
        atomic_write_json(run.file("metrics.json"), metrics)
        if recipe.output.plots:
            metrics["plots"] = write_plots(evaluation_recipe, metrics, run)
            atomic_write_json(run.file("metrics.json"), metrics)
        run.mark_stage("evaluate")
        run.update_status(state="complete", finished=_dt.datetime.now().isoformat())
    except KeyboardInterrupt as e:
        run.update_status(state="interrupted")
        # typer turns a bare KeyboardInterrupt into exit 130 before `beamc`'s own handler sees
        # it; RunInterrupted carries the folder so the command can print how to resume
        raise RunInterrupted(run.path) from e
    except BaseException:
        run.update_status(state="failed")
        if run.discard_if_empty():  # a failed start leaves no clutter (and never moved `latest`)
            log(f"removed {run.path}: the run failed before producing anything")
        raise
    return run


def _without_student(recipe: Recipe) -> Recipe:
    from dataclasses import replace

    return replace(recipe, student=None)


def load_run_recipe(run_dir: str | Path) -> tuple[Path, Recipe]:
    from beamc.recipe import recipe_from_dict

    path = resolve_run_dir(run_dir)
    raw = read_toml(path / "recipe.toml", "run recipe")
    return path, recipe_from_dict(raw, str(path / "recipe.toml"), raw.get("name", path.name))


def reevaluate(run_dir: str | Path, snr_db: Any = None, device: str = "auto") -> dict[str, Any]:
    """`beamc evaluate`: rebuild the run's data and models and evaluate them again."""
    path, recipe = load_run_recipe(run_dir)
    if not (path / "teacher.pt").exists():
        raise BeamcError(f"{path}: no teacher.pt; the run did not get past its teacher stage")
    data = TASKS.get(recipe.task.name).prepare(recipe.task, recipe.data, progress=False)
    metrics = evaluate_run(recipe, data, path, resolve_device(device), snr_db)
    metrics["run"] = str(path)
    atomic_write_json(path / "evaluation.json", metrics)
    return metrics


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    return read_json(resolve_run_dir(run_dir) / "metrics.json", "metrics.json")
