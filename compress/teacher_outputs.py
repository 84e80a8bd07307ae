"""A frozen teacher's logits computed once per training sample instead of once per step.

The teacher of a distillation is frozen and in eval mode, so its logits for a sample only
change when the sample's inputs do. Where a task's training inputs are fixed
(`TaskData.fixed_training_inputs`: vision, LiDAR and camera+radar windows; not sub-6 CSI,
which re-draws its noise every epoch) and the distiller reads logits only (IKD, KD-MSE,
self-KD; not RKD, which taps intermediate features), one pass over the training split
replaces a teacher forward in every step of every epoch. For the vision teacher that forward
is more than half of a KD student's step (`benchmarks/kd_teacher_outputs.py`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from beamc.compress.distillers.base import Distiller, ModelOut


def live_reason(data: Any, distiller: Distiller) -> str | None:
    """Why the teacher must run in every step, or None when its outputs can be cached."""
    if not distiller.needs_teacher:
        return "the method has no teacher"
    if distiller.teacher_taps:
        return f"the method reads teacher features ({', '.join(distiller.teacher_taps)}), not only logits"
    if not getattr(data, "fixed_training_inputs", False):
        return "the task re-draws training inputs every epoch (noise or augmentation)"
    return None


class TeacherOutputs:
    """Logits of `teacher` for every training sample, looked up by `batch.extra["sample"]`."""

    def __init__(self, teacher: nn.Module, data: Any, batch_size: int, device: torch.device,
                 progress: Any = None, label: str = "teacher outputs"):
        chunks: list[tuple[torch.Tensor, torch.Tensor]] = []
        n_batches = -(-data.split_size("train") // batch_size)
        task_id = progress.add_task(label, total=n_batches) if progress else None
        teacher.eval()
        with torch.no_grad():
            for batch in data.batches("train", batch_size, epoch=0, seed=0, shuffle=False, roles=("teacher",)):
                batch = batch.to(device)
                chunks.append((batch.extra["sample"], teacher(*batch.for_teacher)))
                if progress:
                    progress.update(task_id, advance=1)
        samples = torch.cat([s for s, _ in chunks])
        logits = torch.cat([z for _, z in chunks])
        # dense by sample index: a lookup is one gather; samples outside the training split stay NaN,
        # so a batch that asks for one poisons the loss instead of silently reading another's logits
        self.logits = torch.full((int(samples.max()) + 1, *logits.shape[1:]), float("nan"), dtype=logits.dtype,
                                 device=logits.device)
        self.logits[samples] = logits
        self.samples = len(samples)

    @property
    def megabytes(self) -> float:
        return self.logits.numel() * self.logits.element_size() / 2**20

    def __call__(self, batch: Any) -> ModelOut:
        return ModelOut(self.logits[batch.extra["sample"]])
