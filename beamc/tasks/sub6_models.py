"""Sub-6 -> mmWave beam networks (paper Sec. 4): fully connected ReLU MLPs.

Teacher 256 -> 4 x 1024 -> 64 has 3,477,568 parameters; student 256 -> 2 x 64 -> 64 has
24,768 (Table 1). Plain Linear+ReLU layers: a normalisation layer would add parameters the
paper does not count.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from beamc.registry import MODELS


class MLP(nn.Module):
    def __init__(self, input_dim: int, hidden: Sequence[int], num_classes: int, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        dims = [input_dim, *hidden]
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.features = nn.Sequential(*layers)   # RKD taps "features" (last hidden layer)
        self.classifier = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@MODELS.register("sub6_mlp")
def sub6_mlp(input_dim: int = 256, hidden: list[int] = (1024, 1024, 1024, 1024), num_beams: int = 64,
             dropout: float = 0.0) -> MLP:
    """Fully connected beam predictor; `hidden` lists the hidden layer widths."""
    return MLP(input_dim, list(hidden), num_beams, dropout)


@MODELS.register("sub6_teacher")
def sub6_teacher(input_dim: int = 256, num_beams: int = 64, dropout: float = 0.0) -> MLP:
    """Paper teacher: four hidden layers of 1024 (3,477,568 parameters)."""
    return MLP(input_dim, [1024] * 4, num_beams, dropout)


@MODELS.register("sub6_student")
def sub6_student(input_dim: int = 256, num_beams: int = 64) -> MLP:
    """Paper student: two hidden layers of 64 (24,768 parameters)."""
    return MLP(input_dim, [64, 64], num_beams)
