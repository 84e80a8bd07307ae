"""KD with the logit MSE in place of the KL term (the LiDAR paper's "KD-MSE", Sec. IV):

    L = gamma * MSE(z_S, z_T) + (1 - gamma) * hard(z_S, y)

The standard KD baseline of that paper, (1 - gamma) CE + gamma T^2 KL, is `ikd` with
alpha = gamma.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch.nn.functional as F

from beamc.registry import DISTILLERS
from beamc.schema import opt
from beamc.compress.distillers.base import Distiller, ModelOut


@dataclass(frozen=True)
class KDMSEConfig:
    method: Literal["kd_mse"] = opt("kd_mse", doc="KD with the MSE between logits instead of the KL term")
    alpha: float = opt(0.7, ge=0, le=1, doc="weight gamma of the MSE term (1 - gamma on labels)")


@DISTILLERS.register("kd_mse")
class KDMSE(Distiller):
    Config = KDMSEConfig
    needs_teacher = True

    def loss(self, batch, student_out: ModelOut, teacher_out: ModelOut | None):
        mse = F.mse_loss(student_out.logits, teacher_out.logits)
        hard = self.criterion(student_out.logits, batch.y)
        a = self.cfg.alpha
        return {"loss": a * mse + (1 - a) * hard, "mse": mse, "hard": hard}
