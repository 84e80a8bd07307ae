"""LiDAR beam-tracking networks (paper: ../shared/papers/lidar-data-free-kd-beam-tracking.md,
model of Jiang et al. [10]): per-frame Linear embedding 216 -> 64, a one-layer GRU, and a
Linear head applied to the GRU output of the last `out_steps` time steps.

The input is [B, past + pad, 216]: 8 scans then 3 zero frames; the GRU keeps running over
the zero frames, and its outputs at the current frame and the 3 padded steps are the logits
of beams t, t+1, t+2, t+3. Teacher (GRU hidden 128): 96,640 parameters; student (hidden
32): 25,408 (the paper's figures, asserted in tests).

`hidden` is an Identity on the GRU's final hidden state: the teacher's "last hidden state"
whose mean and variance are the data-free metadata. It computes nothing (no parameters, no
FLOPs, folded away by ONNX export); it exists so that distillers and the metadata pass take
that feature by module path through a forward hook, as every beamc feature is taken.
"""

from __future__ import annotations

import torch
from torch import nn

from beamc.registry import MODELS


class LidarGRU(nn.Module):
    def __init__(self, input_dim: int = 216, embed_dim: int = 64, hidden_size: int = 128, num_beams: int = 64,
                 out_steps: int = 4, dropout: float = 0.0):
        super().__init__()
        self.out_steps = out_steps
        self.embed = nn.Linear(input_dim, embed_dim)
        self.dropout = nn.Dropout(dropout)   # the reference teacher's dropout after the embedding
        self.gru = nn.GRU(embed_dim, hidden_size, batch_first=True)
        self.hidden = nn.Identity()
        self.fc = nn.Linear(hidden_size, num_beams)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.dropout(self.embed(x)))      # [B, T, H]
        self.hidden(out[:, -1])                              # feature tap (see module docstring)
        return self.fc(out[:, -self.out_steps:])             # [B, out_steps, num_beams]


@MODELS.register("lidar_gru")
def lidar_gru(input_dim: int = 216, embed_dim: int = 64, hidden_size: int = 128, num_beams: int = 64,
              out_steps: int = 4, dropout: float = 0.0) -> LidarGRU:
    """Embedding + GRU + linear head of any size (tests use tiny ones)."""
    return LidarGRU(input_dim, embed_dim, hidden_size, num_beams, out_steps, dropout)


@MODELS.register("lidar_teacher")
def lidar_teacher(num_beams: int = 64, out_steps: int = 4, dropout: float = 0.0) -> LidarGRU:
    """Paper teacher: 216 -> 64 embedding, GRU hidden 128 (96,640 parameters)."""
    return LidarGRU(216, 64, 128, num_beams, out_steps, dropout)


@MODELS.register("lidar_student")
def lidar_student(num_beams: int = 64, out_steps: int = 4) -> LidarGRU:
    """Paper student: the teacher with GRU hidden 32 (25,408 parameters)."""
    return LidarGRU(216, 64, 32, num_beams, out_steps)
