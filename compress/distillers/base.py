"""The distiller contract: configured, not coded.

A distiller is `loss(batch, student_out, teacher_out) -> {"loss": total, name: component}`.
The trainer logs every component. Intermediate features are read by module path through
forward hooks (`taps`), never by editing models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from beamc.errors import BeamcError
from beamc.schema import opt


@dataclass
class ModelOut:
    logits: torch.Tensor
    features: dict[str, torch.Tensor] = field(default_factory=dict)


class Taps:
    """Forward hooks that keep the outputs of named submodules during a forward pass."""

    def __init__(self, model: nn.Module, paths: tuple[str, ...], who: str):
        self.features: dict[str, torch.Tensor] = {}
        self._handles = []
        names = dict(model.named_modules())
        for path in paths:
            if path not in names:
                from beamc.errors import did_you_mean

                raise BeamcError(f"{who}: no module '{path}' to take features from{did_you_mean(path, [n for n in names if n])}; "
                                 f"modules: {', '.join(n for n in names if n and '.' not in n)}")
            self._handles.append(names[path].register_forward_hook(self._keep(path)))

    def _keep(self, path: str):
        def hook(module: nn.Module, inputs: Any, out: Any) -> None:
            self.features[path] = out[0] if isinstance(out, tuple) else out

        return hook

    def run(self, model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> ModelOut:
        self.features = {}
        logits = model(*inputs)
        return ModelOut(logits, dict(self.features))

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


@dataclass(frozen=True)
class NoneConfig:
    method: Literal["none"] = opt("none", doc="train the student on labels only (scratch baseline)")


class Distiller:
    """Base class. `criterion(logits, y)` is the task's supervised loss."""

    Config: ClassVar[type] = NoneConfig
    needs_teacher: ClassVar[bool] = False
    # self-distillation: a recipe without [student] distills into the teacher's architecture
    student_defaults_to_teacher: ClassVar[bool] = False

    def __init__(self, cfg: Any, criterion: Any):
        self.cfg = cfg
        self.criterion = criterion

    @property
    def teacher_taps(self) -> tuple[str, ...]:
        return ()

    @property
    def student_taps(self) -> tuple[str, ...]:
        return ()

    @property
    def generations(self) -> int:
        return 1

    @classmethod
    def check_recipe(cls, cfg: Any, teacher: Any, student: Any) -> None:
        """Raise SchemaError when the recipe's models do not fit this method."""

    def loss(self, batch: Any, student_out: ModelOut, teacher_out: ModelOut | None) -> dict[str, torch.Tensor]:
        hard = self.criterion(student_out.logits, batch.y)
        return {"loss": hard, "hard": hard}
