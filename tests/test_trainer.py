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


def test_monitor_accuracy_keeps_the_most_accurate_epoch_not_the_lowest_loss(tmp_path):
    """keep = "best" with monitor = "val_top5": the loss and the accuracy disagree about the best
    epoch (as a KD student's focal loss and accuracy can); the accuracy's epoch is kept, and
    patience counts epochs without a higher accuracy."""
    rows = iter([{"val_loss": 1.0, "val_top5": 0.2}, {"val_loss": 2.0, "val_top5": 0.6},
                 {"val_loss": 0.5, "val_top5": 0.4}, {"val_loss": 0.4, "val_top5": 0.5}, {"val_loss": 0.3, "val_top5": 0.1}])
    seen: list[dict] = []

    def validate(model):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(rows)

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    step = lambda b: {"loss": torch.nn.functional.cross_entropy(model(*b.inputs), b.y)}  # noqa: E731
    cfg = replace(TrainConfig(), epochs=5, keep="best", monitor="val_top5", patience=3, lr=0.1)
    res = fit(model, label="toy", cfg=cfg, train_batches=lambda e: [Batch((x,), y)], step=step, validate=validate,
              state_path=tmp_path / "s.pt", history_path=tmp_path / "h.csv", device=torch.device("cpu"), num_batches=1)
    assert res.best_epoch == 2 and [r["epoch"] for r in res.history] == [1, 2, 3, 4, 5]
    assert all(torch.equal(v, seen[1][k]) for k, v in model.state_dict().items())
    # the loss would have kept epoch 5 (0.3); patience 3 after epoch 2 stops at epoch 5 exactly
    assert res.stopped_early


def test_validation_reports_top5_over_unpadded_steps():
    from beamc.compress.trainer import validation

    class Data:
        def split_size(self, split):
            return 2

        def batches(self, split, batch_size, **kw):
            # two samples x two steps; the second step of sample 1 is padding (-100)
            yield Batch((torch.zeros(2, 1),), torch.tensor([[0, 6], [3, -100]]))

    logits = torch.arange(7, dtype=torch.float).expand(2, 2, 7)     # top-5 = classes 2..6, top-1 = 6

    class Model(torch.nn.Module):
        def forward(self, x):
            return logits

    out = validation(Data(), lambda z, y: torch.tensor(0.0), 2, torch.device("cpu"), 0)(Model())
    assert out["val_top1"] == pytest.approx(1 / 3) and out["val_top5"] == pytest.approx(2 / 3)


def test_resume_accepts_a_checkpoint_written_before_a_train_key_existed(tmp_path):
    _toy_fit(tmp_path, replace(TrainConfig(), epochs=2), validate=lambda m: {})
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    del state["train"]["monitor"]
    state.update(epoch=1, finished=False, history=state["history"][:1])   # as if killed after epoch 1
    torch.save(state, tmp_path / "s.pt")
    assert [r["epoch"] for r in _toy_fit(tmp_path, replace(TrainConfig(), epochs=2), validate=lambda m: {})] == [1, 2]


def test_teacher_cache_key_leaves_out_later_train_keys_at_their_old_behaviour():
    """A teacher cached before train.monitor existed is found again at monitor = "val_loss"
    (its behaviour then); another monitor is another teacher."""
    from beamc.compress.pipeline import teacher_cache_dir
    from beamc.recipe import fingerprint, load_recipe, train_fingerprint_dict
    from beamc.schema import to_dict

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "lidar_kd.toml", [])
    assert "monitor" in to_dict(recipe.teacher_train) and "monitor" not in train_fingerprint_dict(recipe.teacher_train)
    old = {k: v for k, v in to_dict(recipe.teacher_train).items() if k != "monitor"}
    assert fingerprint(old) == fingerprint(train_fingerprint_dict(recipe.teacher_train))
    other = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "lidar_kd.toml", ["teacher.train.monitor=val_top5"])
    assert teacher_cache_dir(recipe, Path("r")) != teacher_cache_dir(other, Path("r"))
