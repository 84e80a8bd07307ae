"""Shared fixtures: an isolated cache, tiny recipes, and a GPU marker that skips cleanly."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Generated data and teachers of the test session never touch ~/.cache/beamc.
    os.environ["BEAMC_CACHE"] = str(tmp_path_factory.mktemp("beamc-cache"))


def has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with TensorRT")
    for item in items:
        if "gpu" in item.keywords and not has_gpu():
            item.add_marker(skip)


TINY_SUB6 = """
name = "{name}"
[task]
name = "sub6"
train_snr_db = [10.0, 20.0]
eval_snr_db = [0.0, 15.0]
[data]
source = "synth"
mmwave_label_subcarriers = 8
[data.synth]
length = 40.0
width = 12.0
grid_spacing = 1.0
vehicles = 3
scatterers = 2
[teacher]
model = "sub6_mlp"
args = {{ hidden = [32, 32] }}
[student]
model = "sub6_mlp"
args = {{ hidden = [8] }}
[distill]
method = "{method}"
{distill_extra}
[train]
epochs = {epochs}
batch_size = 32
lr = 0.003
seed = 0
device = "cpu"
"""


def write_tiny_sub6(folder: Path, name: str = "tiny", method: str = "ikd", epochs: int = 2, distill_extra: str = "") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(TINY_SUB6.format(name=name, method=method, epochs=epochs, distill_extra=distill_extra)))
    return path


@pytest.fixture
def tiny_sub6(tmp_path: Path):
    def make(**kw) -> Path:
        return write_tiny_sub6(tmp_path, **kw)

    return make
