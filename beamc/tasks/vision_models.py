"""Vision beam-tracking networks (paper: vision-kd-long-term-beam-tracking, Sec. III-C).

Both networks map L motion masks [B, L, S, S] (float32, 0/1; S = 224 in the paper) to the
beam logits of the current slot and J future slots, [B, J+1, C]:

    per mask:  CNN embedding -> 64-d feature                       (Table II / Table III)
    sequence:  L mask features + J decoder steps -> LayerNorm -> GRU -> MHA (+ residual)
    output:    classifier on the last J+1 steps: slot t (the last mask) and t+1 .. t+J

Layer order, kernel sizes, pooling, dropout rates and the MHA settings follow the reference
code (WillysMa/Sensing-Assisted-Long-Term-Beam-Tracking, ``model_image.py``:
``ImageModalityNet_MHA`` and ``StudentModalityNet``); the parameter counts are the paper's
exactly: teacher 1,788,280, student 107,193 (its ``All_models/params_*.txt``).

Decoder steps. The reference appends J all-zero frames to the input and runs the CNN on
them too; in eval mode the CNN of a zero frame is a constant, so that is a learned constant
decoder input paid for with J extra CNN passes per sample. We feed a zero feature vector
instead (LayerNorm turns it into its learned bias, also a learned constant): no extra
parameters, and the CNN runs once per mask, which is what Table VII counts. The reference
also lets the zero frames into the BatchNorm statistics; ours see real masks only.
"""

from __future__ import annotations

import torch
from torch import nn

from beamc.errors import BeamcError
from beamc.registry import MODELS

FEATURE = 64       # per-frame feature size and GRU hidden size (both networks)
HEADS = 8


def conv_bn_relu_pool(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]


def ds_conv(c_in: int, c_out: int) -> nn.Sequential:
    """Depthwise-separable conv (MobileNet): 3x3 depthwise + 1x1 pointwise, each with BN/ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False), nn.BatchNorm2d(c_in), nn.ReLU(),
        nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


def mask_features(cnn: nn.Module, embed: nn.Module, masks: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """Per-mask features [B, L, FEATURE]. masks [B, L, S, S] (the exported signature), or, in
    training with shared frames, distinct masks [F, S, S] and index [B, L] into them: the CNN
    then runs once per distinct mask however many overlapping windows use it."""
    if index is None:
        b, length, h, w = masks.shape
        return embed(cnn(masks.reshape(b * length, 1, h, w))).reshape(b, length, FEATURE)
    return embed(cnn(masks.unsqueeze(1)))[index]


class SequenceHead(nn.Module):
    """LayerNorm -> GRU -> multi-head self-attention with residual -> classifier, on the L
    frame features followed by `future` decoder steps; returns the last future+1 steps."""

    def __init__(self, gru_layers: int, classifier: nn.Sequential, future: int, attention: bool = True):
        super().__init__()
        self.future = future
        self.layer_norm = nn.LayerNorm(FEATURE)
        # dropout 0.8 between GRU layers as in the reference (a 1-layer GRU has none)
        self.gru = nn.GRU(FEATURE, FEATURE, num_layers=gru_layers, batch_first=True,
                          dropout=0.8 if gru_layers > 1 else 0.0)
        self.attention = nn.MultiheadAttention(FEATURE, HEADS, dropout=0.1, batch_first=True) if attention else None
        self.classifier = classifier

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        # decoder steps: zero features (see module docstring); expand keeps the batch axis symbolic for export
        zeros = torch.zeros_like(feats[:, :1]).expand(-1, self.future, -1)
        seq, _ = self.gru(self.layer_norm(torch.cat([feats, zeros], dim=1)))
        if self.attention is not None:
            attended, _ = self.attention(seq, seq, seq, need_weights=False)
            seq = attended + seq
        return self.classifier(seq[:, -(self.future + 1):])


class VisionTeacher(nn.Module):
    """Table II: five Conv-BN-ReLU-MaxPool(2) stages 1->4->8->16->32->64, MLP 3136->512->128->64->64
    (dropout 0.5/0.3/0.2), then a 2-layer GRU, 8-head MHA and a 64->64->64->C classifier."""

    def __init__(self, num_beams: int = 64, future: int = 6, image_size: int = 224, attention: bool = True):
        super().__init__()
        chans = [1, 4, 8, 16, 32, 64]
        self.cnn = nn.Sequential(*[m for a, b in zip(chans[:-1], chans[1:]) for m in conv_bn_relu_pool(a, b)])
        self.image_size = image_size
        side = image_size // 32
        self.embed = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * side * side, 512), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(512, 128), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(128, 64), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(64, FEATURE))
        classifier = nn.Sequential(nn.Linear(FEATURE, 64), nn.ReLU(), nn.Dropout(0.5),
                                   nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.3),
                                   nn.Linear(64, num_beams))
        self.head = SequenceHead(2, classifier, future, attention)

    def forward(self, masks: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        h, w = masks.shape[-2:]
        if (h, w) != (self.image_size, self.image_size):  # the flattened CNN output fixes the size
            raise BeamcError(f"vision_teacher was built for {self.image_size} x {self.image_size} masks "
                             f"(teacher.args.image_size), the input is {h} x {w} (task.image_size); set both alike")
        return self.head(mask_features(self.cnn, self.embed, masks, index))


class ChannelAttention(nn.Module):
    """CBAM-style channel gate of the reference student: avg-pool -> 1x1 conv c->c/2 -> ReLU -> 1x1 conv -> sigmoid."""

    def __init__(self, channels: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels // 2, 1), nn.ReLU(),
                                  nn.Conv2d(channels // 2, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class SpatialAttention(nn.Module):
    """Spatial gate of the reference student: 7x7 conv c->1 -> sigmoid (7,057 parameters at c=144)."""

    def __init__(self, channels: int):
        super().__init__()
        self.gate = nn.Sequential(nn.Conv2d(channels, 1, 7, padding=3), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class VisionStudent(nn.Module):
    """Table III: Conv(1->18, stride 2)-BN-ReLU-MaxPool(3, stride 2), three DS-Conv blocks 36/72/144
    each followed by MaxPool(3, stride 2), channel then spatial attention, global max pool,
    MLP 144->64->64, then a 1-layer GRU, 8-head MHA and a 64->64->C classifier (dropout 0.3)."""

    def __init__(self, num_beams: int = 64, future: int = 6):
        super().__init__()
        c1, c2, c3, c4 = 18, 36, 72, 144   # the reference's 12/24/48/96 x width_multiplier 1.5
        pool = lambda: nn.MaxPool2d(3, stride=2, padding=1)  # noqa: E731
        self.cnn = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(), pool(),
            ds_conv(c1, c2), pool(), ds_conv(c2, c3), pool(), ds_conv(c3, c4), pool(),
            ChannelAttention(c4), SpatialAttention(c4),
            nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.embed = nn.Sequential(nn.Linear(c4, 64), nn.ReLU(), nn.Linear(64, FEATURE))
        classifier = nn.Sequential(nn.Linear(FEATURE, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, num_beams))
        self.head = SequenceHead(1, classifier, future)

    def forward(self, masks: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(mask_features(self.cnn, self.embed, masks, index))


@MODELS.register("vision_teacher")
def vision_teacher(num_beams: int = 64, future: int = 6, image_size: int = 224, attention: bool = True) -> VisionTeacher:
    """Paper teacher (Table II, 1,788,280 parameters at image_size 224); attention=false is the
    "W/o MHA" ablation of Table IV. image_size must be a multiple of 32."""
    if image_size % 32 or image_size < 32:
        raise BeamcError(f"vision_teacher: image_size must be a positive multiple of 32 (five 2x2 poolings), found {image_size}")
    return VisionTeacher(num_beams, future, image_size, attention)


@MODELS.register("vision_student")
def vision_student(num_beams: int = 64, future: int = 6) -> VisionStudent:
    """Paper student (Table III, 107,193 parameters; any image size)."""
    return VisionStudent(num_beams, future)


__all__ = ["VisionTeacher", "VisionStudent", "vision_teacher", "vision_student"]
