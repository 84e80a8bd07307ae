"""Camera + radar beam-tracking networks (task `camera_radar`; the paper gives an abstract only,
so the layers are ours within its targets: >= 27x fewer parameters, >= 4x fewer FLOPs).

Both networks take one input per modality, [B, past, C, S, S] (camera: C = 3 RGB; radar:
C = 2 range-angle / range-velocity maps), in the order of `modalities`, and return the beam
logits of the current slot and `future` slots, [B, future + 1, num_beams]:

    per frame and modality:  CNN branch -> feature vector
    fusion:                  features of all modalities concatenated -> Linear -> ReLU
    sequence:                `past` fused features + `future` zero steps -> GRU -> Linear,
                             on the last future + 1 steps (slot t is the last input frame)

The branches keep where things are: the beam follows the target's bearing, i.e. its column
in the image and its angle bin in the radar map, so the teacher flattens its last feature
map into a linear layer instead of pooling it away, and the student does the same on a 4x4
map. Teacher: three Conv-BN-ReLU-MaxPool stages (16/32/64 channels), 256-d features, fusion
to 256, a 2-layer GRU(256) with dropout; student: three stride-2 Conv-BN-ReLU stages
(8/16/16 channels), 32-d features, fusion to 48, a 1-layer GRU(48). A single-modality
variant is the same network with one branch (`modalities = ["camera"]` or `["radar"]`).
`modality_dropout` (teacher argument, training only) drops one modality's features of a
window now and then, so the fusion learns to use the radar where the camera fails (night).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from beamc.errors import BeamcError
from beamc.registry import MODELS

CHANNELS = {"camera": 3, "radar": 2}


def teacher_branch(c_in: int, size: int, feature: int) -> nn.Sequential:
    chans = [c_in, 16, 32, 64]
    layers: list[nn.Module] = []
    for a, b in zip(chans[:-1], chans[1:]):
        layers += [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2)]
    side = size // 8
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * side * side, feature), nn.ReLU())


def student_branch(c_in: int, size: int, feature: int) -> nn.Sequential:
    chans = [c_in, 8, 16, 16]
    layers: list[nn.Module] = []
    for a, b in zip(chans[:-1], chans[1:]):
        layers += [nn.Conv2d(a, b, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
    side = size // 8
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(16 * side * side, feature), nn.ReLU())


class CameraRadarNet(nn.Module):
    def __init__(self, modalities: Sequence[str], branch, feature: int, hidden: int, gru_layers: int,
                 num_beams: int, future: int, image_size: int, map_size: int, dropout: float,
                 modality_dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= modality_dropout < 1.0:
            raise BeamcError(f"camera_radar model args: modality_dropout must be in [0, 1), found {modality_dropout}")
        modalities = list(modalities)
        if not modalities or len(set(modalities)) != len(modalities) or set(modalities) - set(CHANNELS):
            raise BeamcError(f"camera_radar model: modalities must be distinct names from {list(CHANNELS)}, found {modalities}")
        self.modalities, self.future = modalities, future
        self.modality_dropout = float(modality_dropout)
        self.sizes = {"camera": image_size, "radar": map_size}
        self.branches = nn.ModuleDict({m: branch(CHANNELS[m], self.sizes[m], feature) for m in modalities})
        self.fusion = nn.Sequential(nn.Linear(feature * len(modalities), hidden), nn.ReLU(), nn.Dropout(dropout))
        self.gru = nn.GRU(hidden, hidden, num_layers=gru_layers, batch_first=True,
                          dropout=dropout if gru_layers > 1 else 0.0)
        self.classifier = nn.Linear(hidden, num_beams)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if len(inputs) != len(self.modalities):
            raise BeamcError(f"camera_radar model built for modalities {self.modalities} (model args) got "
                             f"{len(inputs)} input(s); set task.modalities to the same list")
        feats = []
        for m, x in zip(self.modalities, inputs):
            b, t, c, h, w = x.shape
            if (c, h, w) != (CHANNELS[m], self.sizes[m], self.sizes[m]):
                raise BeamcError(f"camera_radar model: '{m}' input expected [{CHANNELS[m]}, {self.sizes[m]}, {self.sizes[m]}] "
                                 f"per frame, found {[c, h, w]}; set the model args like task.image_size / task.map_size")
            feats.append(self.branches[m](x.reshape(b * t, c, h, w)).reshape(b, t, -1))
        if self.training and self.modality_dropout > 0 and len(feats) > 1:
            feats = self.drop_modalities(feats)
        seq = self.fusion(torch.cat(feats, dim=-1))
        # decoder steps for the future slots: zero inputs (expand keeps the batch axis symbolic for export)
        zeros = torch.zeros_like(seq[:, :1]).expand(-1, self.future, -1)
        out, _ = self.gru(torch.cat([seq, zeros], dim=1))
        return self.classifier(out[:, -(self.future + 1):])

    def drop_modalities(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Modality dropout (training only): with probability `modality_dropout` a window loses
        the features of one modality, drawn uniformly, for all its frames (zeroed, never all
        modalities at once). Why: a fused network fits its training windows through whichever
        branch gets there first (the camera, on the simulator) and leaves the other one
        untrained; forced to predict from either branch alone now and then, it learns both and
        can lean on the radar when the camera is poor (night)."""
        b = feats[0].shape[0]
        drop = torch.rand(b, device=feats[0].device) < self.modality_dropout
        which = torch.randint(len(feats), (b,), device=feats[0].device)
        return [f * (~(drop & (which == i))).to(f.dtype)[:, None, None] for i, f in enumerate(feats)]


@MODELS.register("camera_radar_teacher")
def camera_radar_teacher(modalities: list[str] = ("camera", "radar"), num_beams: int = 64, future: int = 3,
                         image_size: int = 32, map_size: int = 32, dropout: float = 0.2,
                         modality_dropout: float = 0.0) -> CameraRadarNet:
    """Teacher: a CNN branch per modality (3 Conv-BN-ReLU-MaxPool, 256-d), fusion 256, 2-layer GRU(256);
    `modality_dropout`: probability that a training window loses one modality's features."""
    return CameraRadarNet(modalities, teacher_branch, 256, 256, 2, num_beams, future, image_size, map_size, dropout,
                          modality_dropout)


@MODELS.register("camera_radar_student")
def camera_radar_student(modalities: list[str] = ("camera", "radar"), num_beams: int = 64, future: int = 3,
                         image_size: int = 32, map_size: int = 32) -> CameraRadarNet:
    """Student: 3 stride-2 Conv-BN-ReLU per modality (32-d), fusion 48, 1-layer GRU(48)."""
    return CameraRadarNet(modalities, student_branch, 32, 48, 1, num_beams, future, image_size, map_size, 0.0)


__all__ = ["CameraRadarNet", "camera_radar_teacher", "camera_radar_student"]
