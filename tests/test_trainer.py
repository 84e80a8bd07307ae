"""Trainer behaviour that the pipeline tests do not reach directly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from beamc.errors import BeamcError
from beamc.recipe import TrainConfig
from beamc.schema import parse
from beamc.tasks.base import Batch
from beamc.tasks.deepsense_data import DeepSenseDataConfig, open_deepsense, split
from beamc.compress.trainer import fit


def _toy_fit(tmp_path: Path, cfg: TrainConfig, validate) -> list[dict]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    step = lambda b: {"loss": torch.nn.functional.cross_entropy(model(*b.inputs), b.y)}  # noqa: E731
    res = fit(model, label="toy", cfg=cfg, train_batches=lambda e: [Batch((x,), y)], step=step, validate=validate,
              state_path=tmp_path / "s.pt", history_path=tmp_path / "h.csv", device=torch.device("cpu"), num_batches=1)
    return res.history


def test_patience_without_validation_split_runs_every_epoch(tmp_path):
    hist = _toy_fit(tmp_path, replace(TrainConfig(), epochs=5, patience=2), validate=lambda m: {})
    assert [r["epoch"] for r in hist] == [1, 2, 3, 4, 5]


def test_patience_stops_when_val_loss_stalls(tmp_path):
    hist = _toy_fit(tmp_path, replace(TrainConfig(), epochs=10, patience=2), validate=lambda m: {"val_loss": 1.0})
    assert [r["epoch"] for r in hist] == [1, 2, 3]  # best at 1, two epochs without improvement


def test_resume_refuses_other_training_settings(tmp_path):
    _toy_fit(tmp_path, replace(TrainConfig(), epochs=2), validate=lambda m: {})
    with pytest.raises(BeamcError) as e:
        _toy_fit(tmp_path, replace(TrainConfig(), epochs=2, lr=0.5), validate=lambda m: {})
    assert "saved with different [train] settings" in str(e.value)


def test_deepsense_data_errors(tmp_path):
    cfg = parse(DeepSenseDataConfig, {"source": "deepsense"}, "data")
    with pytest.raises(BeamcError) as e:
        open_deepsense(cfg)
    assert str(e.value) == 'data.folder: required when data.source = "deepsense" (the scenario root holding scenarioN.csv)'
    cfg = parse(DeepSenseDataConfig, {"source": "deepsense", "folder": str(tmp_path / "nope")}, "data")
    with pytest.raises(BeamcError) as e:
        open_deepsense(cfg)
    assert str(e.value) == f"data.folder: DeepSense scenario folder not found: {tmp_path / 'nope'}"
    cfg = parse(DeepSenseDataConfig, {"train_fraction": 0.8, "val_fraction": 0.2}, "data")
    with pytest.raises(BeamcError) as e:
        split(None, cfg)
    assert str(e.value).startswith("data.train_fraction + data.val_fraction must be < 1")
