"""Individual (logit) KD, eq. (6) of the sub-6 paper (Hinton et al.):

    L = alpha * tau^2 * KL(p~T || p~S) + (1 - alpha) * hard(p_S, z)

`hard` is the task's supervised loss: cross-entropy for sub-6, focal loss for vision
beam tracking, where the same formula is the paper's (1 - beta) focal + beta Gamma^2 KL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from beamc.registry import DISTILLERS
from beamc.schema import opt
from beamc.compress.distillers.base import Distiller, ModelOut
from beamc.compress.losses import kd_kl


@dataclass(frozen=True)
class IKDConfig:
    method: Literal["ikd"] = opt("ikd", doc="individual (logit) knowledge distillation")
    temperature: float = opt(10.0, gt=0, doc="softening temperature tau")
    alpha: float = opt(0.9, ge=0, le=1, doc="weight of the distillation term (1 - alpha on labels)")


@DISTILLERS.register("ikd")
class IKD(Distiller):
    Config = IKDConfig
    needs_teacher = True

    def loss(self, batch, student_out: ModelOut, teacher_out: ModelOut | None):
        kd = kd_kl(student_out.logits, teacher_out.logits, self.cfg.temperature)
        hard = self.criterion(student_out.logits, batch.y)
        a = self.cfg.alpha
        return {"loss": a * kd + (1 - a) * hard, "kd": kd, "hard": hard}
