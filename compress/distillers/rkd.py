"""Relational KD, eqs. (7)-(11) of the sub-6 paper (Park et al., CVPR 2019):

    L = hard + w_d * mean_pairs huber(psi_T^dist, psi_S^dist) + w_a * mean_triples huber(psi_T^angl, psi_S^angl)

on the features of one intermediate layer of each network, taken by module path. The paper
uses w_d = w_a = 1; distances are normalised by the batch-mean pair distance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from beamc.registry import DISTILLERS
from beamc.schema import opt
from beamc.compress.distillers.base import Distiller, ModelOut
from beamc.compress.losses import rkd_loss


@dataclass(frozen=True)
class RKDConfig:
    method: Literal["rkd"] = opt("rkd", doc="relational knowledge distillation")
    teacher_layer: str = opt("features", doc="teacher module whose output gives the features (module path)")
    student_layer: str = opt("features", doc="student module whose output gives the features (module path)")
    distance_weight: float = opt(1.0, ge=0, doc="weight of the distance-wise loss")
    angle_weight: float = opt(1.0, ge=0, doc="weight of the angle-wise loss")
    huber_delta: float = opt(1.0, gt=0, doc="Huber threshold (eq. 10 uses 1)")


@DISTILLERS.register("rkd")
class RKD(Distiller):
    Config = RKDConfig
    needs_teacher = True

    @property
    def teacher_taps(self):
        return (self.cfg.teacher_layer,)

    @property
    def student_taps(self):
        return (self.cfg.student_layer,)

    def loss(self, batch, student_out: ModelOut, teacher_out: ModelOut | None):
        dist, angle = rkd_loss(teacher_out.features[self.cfg.teacher_layer],
                               student_out.features[self.cfg.student_layer], self.cfg.huber_delta)
        hard = self.criterion(student_out.logits, batch.y)
        total = hard + self.cfg.distance_weight * dist + self.cfg.angle_weight * angle
        return {"loss": total, "hard": hard, "rkd_distance": dist, "rkd_angle": angle}
