"""The [data] table shared by the DeepSense 6G tasks (vision, LiDAR, camera+radar).

    [data]
    source = "synth"             # embedded V2I simulator (default) or "deepsense" (a real folder)
    folder = "/data/scenario9"   # deepsense: the scenario root holding scenarioN.csv
    train_fraction = 0.8         # first 80 % of sequences train (the reference code's split) ...
    val_fraction = 0.0           # ... the next ones validate, the rest test
    split_seed = -1              # >= 0: shuffle sequences with this seed first
    [data.synth]                 # simulator settings (beamc.data.synth.v2i.DeepSenseSynthConfig)

A task subclasses `DeepSenseDataConfig` only to change the simulator defaults it needs
(e.g. no radar cubes for the vision task, which cost 1 MB per frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from beamc.data.deepsense import Scenario, open_scenario
from beamc.data.synth.v2i import DeepSenseSynthConfig
from beamc.data.windows import SequenceSplit, split_sequences
from beamc.errors import BeamcError
from beamc.schema import opt


@dataclass(frozen=True)
class DeepSenseDataConfig:
    source: Literal["synth", "deepsense"] = opt("synth", doc='"synth" (embedded V2I simulator) or "deepsense" (a scenario folder on disk)')
    folder: str = opt("", doc="deepsense: scenario root (the folder holding scenarioN.csv)")
    csv: str = opt("", doc="deepsense: CSV file name when the folder holds several")
    lenient: bool = opt(False, doc="skip rows with missing or corrupt files (counted in the summary) instead of failing")
    train_fraction: float = opt(0.8, gt=0, lt=1, doc="fraction of sequences for training (first ones unless split_seed >= 0)")
    val_fraction: float = opt(0.0, ge=0, lt=1, doc="fraction of sequences for validation (early stopping); the rest is the test split")
    split_seed: int = opt(-1, ge=-1, doc="-1: split in sequence order (reference code); >= 0: shuffle sequences with this seed")
    synth: DeepSenseSynthConfig = opt(factory=DeepSenseSynthConfig, doc="synth: simulator settings")


def open_deepsense(cfg: DeepSenseDataConfig) -> Scenario:
    """The scenario a recipe's [data] table points at (generating the embedded one if needed)."""
    if cfg.source == "synth":
        from beamc.data.synth import cached_deepsense

        cfg.synth.check()
        return open_scenario(cached_deepsense(cfg.synth), lenient=cfg.lenient)
    if not cfg.folder:
        raise BeamcError('data.folder: required when data.source = "deepsense" (the scenario root holding scenarioN.csv)')
    root = Path(cfg.folder).expanduser()
    if not root.is_dir():
        raise BeamcError(f"data.folder: DeepSense scenario folder not found: {root}")
    return open_scenario(root, csv_name=cfg.csv or None, lenient=cfg.lenient)


def split(sc: Scenario, cfg: DeepSenseDataConfig) -> SequenceSplit:
    if cfg.train_fraction + cfg.val_fraction >= 1:
        raise BeamcError(f"data.train_fraction + data.val_fraction must be < 1 (something must be left to test), "
                         f"found {cfg.train_fraction} + {cfg.val_fraction}")
    return split_sequences(sc, cfg.train_fraction, cfg.val_fraction, seed=None if cfg.split_seed < 0 else cfg.split_seed)
