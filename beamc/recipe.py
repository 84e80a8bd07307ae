"""Recipes: a TOML file is the whole experiment, parsed into frozen dataclasses.

    name = "sub6_ikd"
    [task]     name = "sub6" + the task's own options (e.g. evaluation SNRs)
    [data]     where the samples come from (embedded simulator or a real data set on disk)
    [teacher]  model = "<registry name>", [teacher.args], optional checkpoint, [teacher.train]
    [student]  model = "<registry name>", [student.args]
    [distill]  method = "none" | "ikd" | "rkd" | "self" | "datafree" + its hyper-parameters
    [train]    optimizer, lr, epochs, batch size, seed, device, schedule
    [output]   where runs go

The [task], [data] and [distill] tables are validated by schemas that the task and the
distillation method register, so a typo anywhere is an error with a "did you mean".
`--set key.path=value` edits the raw table before validation and is recorded in the run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (JetPack 6)
    import tomli as tomllib

from beamc.errors import BeamcError
from beamc.registry import DISTILLERS, MODELS, TASKS
from beamc.schema import (SchemaError, check_call_args, collect_problems, opt, parse, problem, recorded_problems,
                          to_dict)

T = TypeVar("T")


@dataclass(frozen=True)
class TrainConfig:
    optimizer: Literal["adam", "adamw", "sgd"] = opt("adam", doc="optimizer")
    lr: float = opt(1e-3, gt=0, doc="learning rate")
    weight_decay: float = opt(0.0, ge=0, doc="L2 weight decay")
    momentum: float = opt(0.9, ge=0, lt=1, doc="SGD momentum (sgd only)")
    epochs: int = opt(20, ge=1, doc="training epochs (upper bound when early stopping)")
    batch_size: int = opt(256, ge=1, doc="minibatch size")
    seed: int = opt(0, ge=0, doc="seed for initialisation, data order and noise")
    device: str = opt("auto", doc='"auto" (GPU when present), "cpu", "cuda" or "cuda:N"')
    scheduler: Literal["none", "cosine", "cosine_warm_restarts", "step"] = opt("none", doc="learning-rate schedule")
    t0: int = opt(10, ge=1, doc="cosine_warm_restarts: epochs of the first cycle (T0)")
    t_mult: int = opt(2, ge=1, doc="cosine_warm_restarts: cycle growth factor (Tmult)")
    step_size: int = opt(10, ge=1, doc="step: epochs between decays")
    gamma: float = opt(0.1, gt=0, le=1, doc="step: decay factor")
    grad_clip: float = opt(0.0, ge=0, doc="clip the gradient norm at this value (0 = off)")
    patience: int = opt(0, ge=0, doc="early stopping after this many epochs without an improvement of `monitor` (0 = off)")
    keep: Literal["last", "best"] = opt("last", doc='model kept at the end: "last" epoch or "best" by `monitor`')
    monitor: Literal["val_loss", "val_top1", "val_top5"] = opt(
        "val_loss", doc='validation figure that "best" and early stopping follow: the task loss (lowest) or '
                        'top-1 / top-5 accuracy over the predicted steps (highest)')


# [train] keys added after checkpoints and teacher caches were first written, with the value that
# behaves as before they existed: a checkpoint without one resumes, and at that value the key
# stays out of the teacher cache's fingerprint, so teachers trained earlier are still found.
TRAIN_KEYS_ADDED_LATER: dict[str, Any] = {"monitor": "val_loss"}


def train_fingerprint_dict(cfg: TrainConfig) -> dict[str, Any]:
    """to_dict(cfg) without the TRAIN_KEYS_ADDED_LATER that are at their earlier behaviour."""
    return {k: v for k, v in to_dict(cfg).items() if TRAIN_KEYS_ADDED_LATER.get(k, object()) != v}


@dataclass(frozen=True)
class ModelSection:
    model: str = opt(doc="model name from the registry (beamc inspect lists parameters and FLOPs)")
    args: dict[str, Any] = opt(factory=dict, doc="keyword arguments of the model factory")
    checkpoint: str | None = opt(None, doc="teacher only: load this checkpoint instead of training")
    train: dict[str, Any] | None = opt(None, doc="teacher only: [train] keys that differ for the teacher")


@dataclass(frozen=True)
class OutputConfig:
    dir: str = opt("runs", doc="folder that holds run directories (runs/<recipe>-<time>/)")
    plots: bool = opt(True, doc="write PNG plots next to metrics.json")
    evaluate: bool = opt(True, doc="evaluate on the test split at the end (false: only `beamc evaluate RUN` opens the data; "
                                   "a data-free run then never reads the data set)")


@dataclass(frozen=True)
class Recipe:
    name: str
    task: Any
    data: Any
    teacher: ModelSection
    student: ModelSection | None
    distill: Any
    train: TrainConfig
    output: OutputConfig
    description: str = ""
    source: str = ""  # file the recipe came from (not part of the experiment)
    overrides: tuple[str, ...] = ()

    @property
    def teacher_train(self) -> TrainConfig:
        """The [train] table with the teacher's own [teacher.train] keys applied."""
        if not self.teacher.train:
            return self.train
        return parse(TrainConfig, {**to_dict(self.train), **self.teacher.train}, "teacher.train")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        for key in ("task", "data", "teacher", "student", "distill", "train", "output"):
            value = getattr(self, key)
            if value is not None:
                out[key] = to_dict(value)
        return out

    def with_overrides(self, overrides: Sequence[str]) -> Recipe:
        return recipe_from_dict(apply_overrides(self.to_dict(), overrides), self.source, self.name,
                                tuple(self.overrides) + tuple(overrides))


TOP_LEVEL = ("name", "description", "task", "data", "teacher", "student", "distill", "train", "output")


def read_toml(path: str | Path, what: str = "recipe") -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise BeamcError(f"{what} not found: {p}")
    if p.is_dir():
        raise BeamcError(f"{what} {p} is a directory, expected a .toml file")
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise BeamcError(f"{p}: invalid TOML: {e}") from None
    except UnicodeDecodeError:
        raise BeamcError(f"{p}: invalid TOML: not UTF-8 text") from None


def parse_override(item: str) -> tuple[list[str], Any]:
    """'train.epochs=1' -> (['train', 'epochs'], 1); values are TOML literals, else strings."""
    if "=" not in item:
        raise BeamcError(f"--set {item}: expected key.path=value")
    key, text = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise BeamcError(f"--set {item}: expected key.path=value")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # bare words (device=cpu) are strings
    return key.split("."), value


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    out = copy.deepcopy(dict(raw))
    for item in overrides:
        keys, value = parse_override(item)
        node = out
        for k in keys[:-1]:
            nxt = node.setdefault(k, {})
            if not isinstance(nxt, dict):
                raise BeamcError(f"--set {item}: '{k}' is a value, not a table")
            node = nxt
        node[keys[-1]] = value
    return out


def _section(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise SchemaError(key, f"{key}: expected a table, found {value!r}")
    return dict(value)


def _model_section(raw: Mapping[str, Any], key: str) -> ModelSection:
    section = parse(ModelSection, _section(raw, key), key)
    factory = MODELS.get_at(section.model, f"{key}.model")
    args = check_call_args(factory, section.args, f"{key}.args")
    if section.train is not None:
        parse(TrainConfig, section.train, f"{key}.train")  # validate keys and values early
    return replace(section, args=args)


def recipe_from_dict(raw: Mapping[str, Any], source: str = "<recipe>", default_name: str = "recipe",
                     overrides: tuple[str, ...] = ()) -> Recipe:
    try:
        recipe = _recipe_from_dict(raw, default_name, overrides, source)
    except BeamcError as e:
        raise _located(e, source, overrides) from None
    assert recipe is not None  # None only while collecting problems (recipe_problems)
    return recipe


def _located(e: BeamcError, source: str, overrides: Sequence[str]) -> BeamcError:
    """The error as the user reads it: prefixed with the recipe file, or with --set when the
    key came from an override."""
    if isinstance(e, SchemaError):
        if any(o.split("=", 1)[0].strip() == e.path for o in overrides):
            return SchemaError(e.path, f"--set {e.detail}")
        return e.located(source)
    return BeamcError(f"{source}: {e}")


def _attempt(check: Callable[[], T]) -> T | None:
    """check(). While problems are collected, a failing check (or one that recorded a
    problem) gives None instead of raising, and only the checks that do not need its result go on."""
    found = recorded_problems()
    if found is None:
        return check()
    before = len(found)
    try:
        value = check()
    except SchemaError as e:
        problem(e)
        return None
    except BeamcError as e:
        problem(SchemaError("", str(e)))
        return None
    return value if len(found) == before else None


def _task_of(raw: Mapping[str, Any]) -> Any:
    task_raw = _section(raw, "task")
    if "name" not in task_raw:
        raise SchemaError("task.name", f"missing required key 'task.name' (one of: {', '.join(TASKS.names())})")
    return TASKS.get_at(task_raw["name"], "task.name")


def _recipe_from_dict(raw: Mapping[str, Any], default_name: str, overrides: tuple[str, ...], source: str) -> Recipe | None:
    """The recipe, checked in a fixed order: the first problem raises, or, while problems are
    collected (recipe_problems), every check whose inputs are sound runs and None is returned
    when any problem was found."""
    from beamc.errors import did_you_mean

    for key in raw:
        if key not in TOP_LEVEL:
            problem(SchemaError(key, f"unknown key '{key}'{did_you_mean(key, TOP_LEVEL)}"))
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name or "/" in name:
        problem(SchemaError("name", f"name: expected a non-empty string without '/', found {name!r}"))
    task = _attempt(lambda: _task_of(raw))
    task_cfg = _attempt(lambda: parse(task.TaskConfig, _section(raw, "task"), "task")) if task is not None else None
    data_cfg = _attempt(lambda: parse(task.DataConfig, _section(raw, "data"), "data")) if task is not None else None
    teacher = student = None
    if "teacher" not in raw:
        problem(SchemaError("teacher", "missing required table [teacher]"))
    else:
        teacher = _attempt(lambda: _model_section(raw, "teacher"))
    has_student = "student" in raw
    if has_student:
        student = _attempt(lambda: _model_section(raw, "student"))
    distill_raw = _attempt(lambda: _section(raw, "distill")) or {}
    method = distill_raw.get("method", "none")
    distiller = _attempt(lambda: DISTILLERS.get_at(method, "distill.method"))
    distill_cfg = None
    if distiller is not None:
        distill_cfg = _attempt(lambda: parse(distiller.Config, {"method": method, **distill_raw}, "distill"))
        if distill_cfg is not None and teacher is not None and (student is not None or not has_student):
            _attempt(lambda: distiller.check_recipe(distill_cfg, teacher, student))
        if student is None and not has_student and distiller.student_defaults_to_teacher and teacher is not None:
            student = ModelSection(model=teacher.model, args=dict(teacher.args))
    if distiller is not None and student is None and not has_student and method != "none" \
            and not distiller.student_defaults_to_teacher:
        problem(SchemaError("student", f"distill.method = '{method}' needs a [student] table"))
    if student is not None and (student.checkpoint is not None or student.train is not None):
        key = "student.checkpoint" if student.checkpoint is not None else "student.train"
        problem(SchemaError(key, f"{key}: only the teacher takes this key (the student is always trained by [train])"))
    train = _attempt(lambda: parse(TrainConfig, _section(raw, "train"), "train"))
    output = _attempt(lambda: parse(OutputConfig, _section(raw, "output"), "output"))
    description = raw.get("description", "")
    if not isinstance(description, str):
        problem(SchemaError("description", f"description: expected a string, found {description!r}"))
    if recorded_problems():
        return None
    return Recipe(name=name, task=task_cfg, data=data_cfg, teacher=teacher, student=student,
                  distill=distill_cfg, train=train, output=output, description=description,
                  source=source, overrides=overrides)


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read, override and validate a recipe file."""
    raw = read_toml(path)
    raw = apply_overrides(raw, overrides)
    return recipe_from_dict(raw, str(path), Path(path).stem, tuple(overrides))


def recipe_problems(path: str | Path, overrides: Sequence[str] = ()) -> list[str]:
    """Every problem of a recipe file, one line each as load_recipe would raise it (for
    `beamc recipes validate`); [] when the recipe is valid."""
    try:
        raw = apply_overrides(read_toml(path), overrides)
    except BeamcError as e:
        return [str(e)]
    with collect_problems() as found:
        try:
            _recipe_from_dict(raw, Path(path).stem, tuple(overrides), str(path))
        except BeamcError as e:  # a check that cannot go on (a missing required key it needs)
            problem(e if isinstance(e, SchemaError) else SchemaError("", str(e)))
    return [str(_located(e, str(path), overrides)) for e in found]


def dumps(recipe: Recipe) -> str:
    """The fully resolved recipe as TOML (what a run records)."""
    import tomli_w

    header = f"# resolved recipe {recipe.name}"
    if recipe.source:
        header += f" from {recipe.source}"
    if recipe.overrides:
        header += "\n# overrides: " + " ".join(f"--set {o}" for o in recipe.overrides)
    return header + "\n" + tomli_w.dumps(recipe.to_dict())


def fingerprint(obj: Any) -> str:
    """Stable short hash of plain data (dataclasses allowed): keys the teacher and data caches."""
    blob = json.dumps(to_dict(obj), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def builtin_recipes_dir() -> Path:
    import importlib.resources

    return Path(str(importlib.resources.files("beamc.recipes")))
