"""One training loop for teachers and students, readable top to bottom.

    for epoch:
        seed everything from (seed, epoch)      -> a resumed run replays the same batches
        for batch: losses = step(batch); backward; clip; optimizer step
        scheduler step; validation (task loss, top-1, top-5)
        history row; checkpoint (atomic); early stopping on cfg.monitor

The checkpoint written after every epoch holds model, optimizer, scheduler, best weights and
history, so a killed run resumes at the next epoch and ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from beamc.errors import BeamcError
from beamc.recipe import TRAIN_KEYS_ADDED_LATER, TrainConfig
from beamc.runs import atomic_torch_save, atomic_write_csv
from beamc.schema import to_dict

StepFn = Callable[[Any], dict[str, torch.Tensor]]
ValFn = Callable[[nn.Module], dict[str, float]]
EpochHook = Callable[[str, int, dict[str, Any]], None]


@dataclass
class FitResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False


def monitor_score(row: dict[str, Any], monitor: str) -> float:
    """The figure `best` and early stopping follow, as "lower is better" (accuracies negated);
    NaN when the epoch had no validation split."""
    value = row.get(monitor, math.nan)
    return value if monitor == "val_loss" else -value


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.scheduler == "cosine_warm_restarts":
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=cfg.t0, T_mult=cfg.t_mult)
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    return None


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919) % (2**63 - 1)


def fit(model: nn.Module, *, label: str, cfg: TrainConfig, train_batches: Callable[[int], Iterable[Any]],
        step: StepFn, validate: ValFn, state_path: Path, history_path: Path, device: torch.device,
        num_batches: int, progress: Any = None, on_epoch_end: EpochHook | None = None) -> FitResult:
    """Train `model` in place; resumes from `state_path` when it exists."""
    model.to(device)
    opt = make_optimizer(model.parameters(), cfg)
    sched = make_scheduler(opt, cfg)
    start_epoch, history = 1, []
    best = {"score": math.inf, "epoch": 0, "state": None}
    bad_epochs = 0
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if {**TRAIN_KEYS_ADDED_LATER, **state.get("train", {})} != to_dict(cfg):
            raise BeamcError(f"{state_path}: saved with different [train] settings than the recipe's; "
                             "start a new run (drop --resume) or remove this file")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None and state.get("scheduler") is not None:
            sched.load_state_dict(state["scheduler"])
        start_epoch, history = state["epoch"] + 1, list(state["history"])
        best = {"score": state.get("best_score", state.get("best_val_loss")), "epoch": state["best_epoch"],
                "state": state["best_model"]}
        bad_epochs = state["bad_epochs"]
        if state.get("finished"):
            start_epoch = cfg.epochs + 1

    task_id = progress.add_task(label, total=cfg.epochs * num_batches, completed=(start_epoch - 1) * num_batches) if progress else None
    stopped = False
    for epoch in range(start_epoch, cfg.epochs + 1):
        torch.manual_seed(epoch_seed(cfg.seed, epoch))
        model.train()
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        n = 0
        for batch in train_batches(epoch):
            batch = batch.to(device)
            losses = step(batch)
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            bs = len(batch.y)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * bs
            n += bs
            if progress:
                progress.update(task_id, advance=1, description=f"{label} {epoch}/{cfg.epochs} loss {float(losses['loss'].detach()):.3f}")
        if sched is not None:
            sched.step()
        row: dict[str, Any] = {"epoch": epoch, **{f"train_{k}": v / max(n, 1) for k, v in sums.items()}}
        row.update(validate(model))
        row["lr"] = opt.param_groups[0]["lr"]
        row["seconds"] = round(time.perf_counter() - t0, 3)
        history.append(row)

        score = monitor_score(row, cfg.monitor)
        if not math.isnan(score) and score < best["score"]:
            best = {"score": score, "epoch": epoch, "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
            bad_epochs = 0
        elif not math.isnan(score):  # without a validation split there is nothing to stop on
            bad_epochs += 1
        stopped = cfg.patience > 0 and bad_epochs >= cfg.patience
        finished = stopped or epoch == cfg.epochs
        atomic_torch_save({
            "epoch": epoch, "finished": finished, "train": to_dict(cfg),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict() if sched is not None else None,
            "best_score": best["score"], "best_epoch": best["epoch"], "best_model": best["state"],
            "bad_epochs": bad_epochs, "history": history,
        }, state_path)
        atomic_write_csv(history_path, history)
        if on_epoch_end is not None:
            on_epoch_end(label, epoch, row)
        if stopped:
            if progress:
                progress.update(task_id, completed=cfg.epochs * num_batches)
            break

    if (cfg.keep == "best" or cfg.patience > 0) and best["state"] is not None:
        model.load_state_dict(best["state"])
    return FitResult(history=history, best_epoch=best["epoch"], stopped_early=stopped)


def validation(data: Any, criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], batch_size: int,
               device: torch.device, seed: int, role: str = "student", split: str = "val") -> ValFn:
    """Task loss and top-1 / top-5 accuracy on a fixed validation split (per predicted step for
    beam tracking; padded labels do not count)."""

    def run(model: nn.Module) -> dict[str, float]:
        if data.split_size(split) == 0:
            return {}
        model.eval()
        total, correct, correct5, count, steps = 0.0, 0, 0, 0, 0
        with torch.no_grad():
            for batch in data.batches(split, batch_size, epoch=0, seed=seed, shuffle=False, roles=(role,)):
                batch = batch.to(device)
                inputs = batch.for_teacher if role == "teacher" else batch.inputs
                logits = model(*inputs)
                total += float(criterion(logits, batch.y)) * len(batch.y)
                correct += int((logits.argmax(-1) == batch.y).sum())
                top5 = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
                correct5 += int((top5 == batch.y.unsqueeze(-1)).any(-1).sum())
                count += len(batch.y)
                steps += int((batch.y != -100).sum())   # padded labels (beam tracking) are not predictions
        return {"val_loss": total / max(count, 1), "val_top1": correct / max(steps, 1), "val_top5": correct5 / max(steps, 1)}

    return run
