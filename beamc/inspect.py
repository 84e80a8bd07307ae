"""`beamc inspect` and `beamc recipes schema`: look at a recipe without running it."""

from __future__ import annotations

from typing import Any

from beamc.recipe import OutputConfig, Recipe, TrainConfig, ModelSection
from beamc.registry import DISTILLERS, TASKS
from beamc.schema import reference


def inspect_recipe(recipe: Recipe) -> dict[str, Any]:
    """Parameters and FLOPs of the recipe's teacher and student (built untrained)."""
    import torch

    from beamc.complexity import count_flops, count_params, example_inputs
    from beamc.compress.modeling import build_model

    task = TASKS.get(recipe.task.name)
    info: dict[str, Any] = {"recipe": recipe.name, "task": recipe.task.name, "method": recipe.distill.method}
    torch.manual_seed(0)
    for role, section in (("teacher", recipe.teacher), ("student", recipe.student)):
        if section is None:
            continue
        model = build_model(section.model, section.args)
        specs = task.input_spec(recipe.task, recipe.data, role)
        info[role] = {"model": section.model, "args": section.args, "params": count_params(model),
                      "flops": count_flops(model, example_inputs(specs), task.flop_convention),
                      "flops_convention": task.flop_convention, "inputs": [s.to_dict() for s in specs],
                      "outputs": [s.to_dict() for s in task.output_spec(recipe.task, recipe.data, role)]}
    if "teacher" in info and "student" in info:
        t, s = info["teacher"], info["student"]
        info["ratios"] = {"params": t["params"] / s["params"], "flops": t["flops"] / max(s["flops"], 1)}
    return info


def schema_rows(task: str | None = None, method: str | None = None) -> list[tuple[str, str, str, str]]:
    rows = [("name", "a string", "(file stem)", "recipe name; runs go to <output.dir>/<name>-<time>/"),
            ("description", "a string", "''", "one line shown by `beamc recipes list`")]
    tasks = [task] if task else TASKS.names()
    for t in tasks:
        cls = TASKS.get(t)
        rows += [(k if task else f"{k}  [{t}]", tp, d, doc) for k, tp, d, doc in reference(cls.TaskConfig, "task")]
        rows += [(k if task else f"{k}  [{t}]", tp, d, doc) for k, tp, d, doc in reference(cls.DataConfig, "data")]
    rows += reference(ModelSection, "teacher")
    rows += [r for r in reference(ModelSection, "student") if r[0] not in ("student.checkpoint", "student.train")]
    methods = [method] if method else DISTILLERS.names()
    for m in methods:
        rows += [(k if method else f"{k}  [{m}]", tp, d, doc) for k, tp, d, doc in reference(DISTILLERS.get(m).Config, "distill")]
    rows += reference(TrainConfig, "train")
    rows += reference(OutputConfig, "output")
    return rows
