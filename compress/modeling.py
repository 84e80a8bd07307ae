"""Build, save and load models by registry name; wrap them as numpy predictors.

A model checkpoint is a plain dict (loadable with `torch.load(weights_only=True)`):
    {"format": "beamc-model/1", "model": <registry name>, "args": {...}, "task": <task>,
     "state_dict": {...}, ...}
so `evaluate`, `export` and the runtime's torch baseline rebuild the exact network.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from beamc.errors import BeamcError
from beamc.registry import MODELS
from beamc.runs import atomic_torch_save

FORMAT = "beamc-model/1"


def build_model(name: str, args: dict[str, Any]) -> nn.Module:
    return MODELS.get(name)(**args)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BeamcError(f"train.device = '{device}' but no CUDA GPU is available to torch; use \"cpu\" or \"auto\"")
    try:
        return torch.device(device)
    except RuntimeError:
        raise BeamcError(f"train.device: expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", found '{device}'") from None


def save_model(path: str | Path, model: nn.Module, name: str, args: dict[str, Any], task: str, **extra: Any) -> Path:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return atomic_torch_save({"format": FORMAT, "model": name, "args": dict(args), "task": task,
                              "state_dict": state, **extra}, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise BeamcError(f"checkpoint not found: {p}")
    # checked before torch.load: for a file that is no zip archive torch falls back to its
    # legacy pickle reader, which warns on stderr before it fails (save_model always writes zip)
    if p.is_dir() or p.stat().st_size == 0 or not zipfile.is_zipfile(p):
        reason = "a directory" if p.is_dir() else "empty file" if p.stat().st_size == 0 else "not a torch.save archive"
        raise BeamcError(f"{p}: not a beamc checkpoint ({reason})")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for corrupt files
        raise BeamcError(f"{p}: not a beamc checkpoint ({_unreadable_reason(e)})") from None
    if not isinstance(ckpt, dict):
        raise BeamcError(f"{p}: not a beamc checkpoint (expected a dict with format '{FORMAT}', "
                         f"found a {type(ckpt).__name__})")
    if ckpt.get("format") != FORMAT:
        raise BeamcError(f"{p}: not a beamc checkpoint (expected format '{FORMAT}', found {ckpt.get('format')!r})")
    return ckpt


def _unreadable_reason(e: Exception) -> str:
    """Why torch.load refused a zip archive, in a few words. torch's own message is a paragraph
    on weights_only; its first line cut to fit one line of ours ended mid-word and said nothing
    about the file."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        # e.g. "Unsupported global: GLOBAL mymodule.MyClass was not an allowed global by default ..."
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0]
        detail = detail.split(" was not an allowed global")[0].rstrip(". ")
        return f"holds objects other than tensors and plain data: {detail}"
    first = text.strip().splitlines()[0] if text.strip() else ""
    if len(first) > 100:
        first = first[:100].rsplit(" ", 1)[0] + " ..."
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def load_model(path: str | Path, expect_task: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    ckpt = read_checkpoint(path)
    if expect_task is not None and ckpt.get("task") != expect_task:
        raise BeamcError(f"{path}: checkpoint is for task '{ckpt.get('task')}', the recipe's task is '{expect_task}'")
    model = build_model(ckpt["model"], ckpt["args"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise BeamcError(f"{path}: weights do not fit model '{ckpt['model']}' {ckpt['args']} ({str(e).splitlines()[0][:160]})") from None
    model.eval()
    return model, ckpt


def link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def torch_predictor(model: nn.Module, device: torch.device | str = "cpu"):
    """numpy inputs -> numpy logits, eval mode, no grad (what Task.evaluate consumes)."""
    device = torch.device(device)
    model = model.to(device).eval()

    def predict(inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        with torch.no_grad():
            out = model(*(torch.from_numpy(np.ascontiguousarray(x)).to(device) for x in inputs))
        return out.float().cpu().numpy()

    return predict
