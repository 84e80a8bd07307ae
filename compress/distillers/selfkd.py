"""Self-distillation (Pareek et al., repeated self-distillation): the student has the
teacher's architecture and learns from the teacher's softened outputs with the IKD loss;
with `generations = k` the student of generation g becomes the teacher of g + 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from beamc.registry import DISTILLERS
from beamc.schema import SchemaError, opt
from beamc.compress.distillers.ikd import IKD


@dataclass(frozen=True)
class SelfConfig:
    method: Literal["self"] = opt("self", doc="self-distillation into the teacher's architecture")
    temperature: float = opt(10.0, gt=0, doc="softening temperature tau")
    alpha: float = opt(0.9, ge=0, le=1, doc="weight of the distillation term")
    generations: int = opt(1, ge=1, doc="repeat k times, each student teaching the next")


@DISTILLERS.register("self")
class SelfDistill(IKD):
    Config = SelfConfig
    student_defaults_to_teacher = True

    @property
    def generations(self) -> int:
        return self.cfg.generations

    @classmethod
    def check_recipe(cls, cfg, teacher, student) -> None:
        if student is not None and (student.model != teacher.model or student.args != teacher.args):
            raise SchemaError("student.model", "student.model: distill.method = 'self' needs the teacher's architecture "
                              f"(teacher.model = '{teacher.model}' {teacher.args}, student.model = '{student.model}' "
                              f"{student.args}); drop the [student] table to use the teacher's")
