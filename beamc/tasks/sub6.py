"""Sub-6 GHz CSI -> mmWave beam (paper: ../shared/papers/sub6-kd-beam-prediction.md).

Input: the uplink sub-6 channel of a user, 4 antennas x 32 subcarriers, with receiver
noise at a chosen SNR, normalised by the training set's max |h|, real and imaginary parts
stacked into a 256-vector. Label: the beam of a 64-beam codebook (ULA steering vectors at
angles n*pi/64, n = 0..63) that maximises the downlink rate
    R(w) = mean_k log2(1 + SNR |h_k^H w|^2 / P_ref)
on the mmWave channel (64-antenna ULA). |h^H w|^2 = |h^T w*|^2, i.e. the codebook acts
through its conjugate, which is the same set of beams.

SNR conventions (the paper leaves the reference power implicit; we state ours):
* sub-6 input noise variance = P_sub6 / SNR, P_sub6 = mean |h_sub6|^2 per entry (train);
* mmWave P_ref = mean over train users and subcarriers of max_n |h_k^H w_n|^2, so SNR is
  the average SNR after the best beam; spectral efficiency = mean_k log2(1 + SNR g / P_ref).
Training draws a fresh SNR (from task.train_snr_db) and fresh noise for every sample and
epoch; evaluation uses fixed noise per SNR so runs are comparable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from beamc.errors import BeamcError
from beamc.registry import TASKS
from beamc.schema import opt
from beamc.tasks.base import (Batch, Predictor, StreamPreprocessor, Task, TaskData, TensorSpec, predict_in_batches,
                              topk_indices)
from beamc.data.synth.street import StreetConfig

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sub6TaskConfig:
    name: str = opt("sub6", doc='task name ("sub6")')
    num_beams: int = opt(64, ge=2, doc="codebook size (angles n*pi/num_beams)")
    train_snr_db: tuple[float, ...] = opt((-10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0), doc="SNRs drawn for training samples (dB)")
    eval_snr_db: tuple[float, ...] = opt((-10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0), doc="SNRs evaluated and plotted (dB)")
    reference_snr_db: float = opt(15.0, doc="SNR of the golden/calibration sets and the summary table (dB)")
    topk: tuple[int, ...] = opt((1, 3), ge=1, doc="Top-K accuracies reported")
    val_fraction: float = opt(0.1, ge=0, lt=0.5, doc="fraction of users for validation")
    test_fraction: float = opt(0.2, gt=0, lt=0.5, doc="fraction of users for the test set")
    split_seed: int = opt(0, ge=0, doc="seed of the user split")
    eval_seed: int = opt(1234, ge=0, doc="seed of the evaluation noise")


@dataclass(frozen=True)
class Sub6DataConfig:
    source: Literal["synth", "deepmimo"] = opt("synth", doc='"synth" (embedded street simulator) or "deepmimo" (scenarios on disk)')
    folder: str = opt("", doc="deepmimo: folder that holds the scenario folders (e.g. o1_3p5/, o1_28/)")
    sub6_scenario: str = opt("o1_3p5", doc="deepmimo: sub-6 GHz scenario name")
    mmwave_scenario: str = opt("o1_28", doc="deepmimo: mmWave scenario name")
    bs_tx_set: int = opt(0, ge=0, doc="deepmimo: TX set of the base station")
    bs_index: int = opt(0, ge=0, doc="deepmimo: BS index inside the TX set (O1 'BS 3' is one of these)")
    rx_sets: tuple[int, ...] | None = opt(None, doc="deepmimo: RX sets to use (all when unset)")
    max_users: int = opt(0, ge=0, doc="use only the first N users (0 = all)")
    sub6_antennas: int = opt(4, ge=1, doc="sub-6 BS antennas (ULA)")
    sub6_subcarriers: int = opt(32, ge=1, doc="sub-6 OFDM subcarriers")
    sub6_bandwidth_hz: float = opt(20e6, gt=0, doc="sub-6 bandwidth (Hz)")
    mmwave_antennas: int = opt(64, ge=1, doc="mmWave BS antennas (half-wavelength ULA)")
    mmwave_subcarriers: int = opt(512, ge=1, doc="mmWave OFDM subcarriers")
    mmwave_bandwidth_hz: float = opt(500e6, gt=0, doc="mmWave bandwidth (Hz)")
    mmwave_label_subcarriers: int = opt(64, ge=1, doc="evenly spaced mmWave subcarriers used for labels and rates")
    num_paths: int = opt(25, ge=1, doc="paths per user used to build channels")
    synth: StreetConfig = opt(factory=StreetConfig, doc="synth: street simulator settings")


# ----------------------------------------------------------------------- preprocessing
def codebook(num_antennas: int, num_beams: int) -> np.ndarray:
    """[num_antennas, num_beams] unit-norm ULA steering vectors at angles n*pi/num_beams."""
    angles = np.arange(num_beams) * np.pi / num_beams
    m = np.arange(num_antennas)[:, None]
    return (np.exp(1j * np.pi * m * np.cos(angles)[None, :]) / np.sqrt(num_antennas)).astype(np.complex64)


def add_noise(h: np.ndarray, snr_db: np.ndarray | float, ref_power: float, rng: np.random.Generator) -> np.ndarray:
    """Receiver noise at `snr_db` (per sample or scalar) relative to `ref_power`."""
    snr = 10.0 ** (np.asarray(snr_db, dtype=np.float64) / 10.0)
    sigma = np.sqrt(ref_power / snr / 2.0).reshape(-1, *([1] * (h.ndim - 1))) if np.ndim(snr) else np.sqrt(ref_power / snr / 2.0)
    noise = rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape)
    return (h + sigma * noise).astype(np.complex64)


def preprocess(csi: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    """Sub-6 CSI [B, antennas, subcarriers] (complex) -> model input [B, 2*antennas*subcarriers].

    The one preprocessing of this task, used by training, evaluation, export golden sets and
    the runtime: divide by the training set's max |h|, stack real then imaginary parts."""
    csi = np.asarray(csi)
    if csi.ndim == 2:
        csi = csi[None]
    expected = (int(state["antennas"]), int(state["subcarriers"]))
    if csi.shape[1:] != expected:
        raise BeamcError(f"sub6 CSI frame: expected shape (antennas, subcarriers) = {expected}, found {csi.shape[1:]}")
    flat = (csi / state["max_abs"]).reshape(len(csi), -1)
    return np.concatenate([flat.real, flat.imag], axis=1).astype(np.float32)


def beam_gains(h: np.ndarray, w: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """|h_k^H w_b|^2 for every user, subcarrier and beam: [U, A, K] x [A, B] -> [U, K, B] float32
    (in chunks of users so the complex intermediate stays small)."""
    out = np.empty((h.shape[0], h.shape[2], w.shape[1]), dtype=np.float32)
    for i in range(0, len(h), chunk):
        out[i:i + chunk] = np.abs(np.einsum("uak,ab->ukb", h[i:i + chunk].conj(), w, optimize=True)) ** 2
    return out


def rates(gains: np.ndarray, snr_db: float, p_ref: float) -> np.ndarray:
    """[U, K, B] beam gains -> [U, B] spectral efficiency (bits/s/Hz) at snr_db."""
    snr = 10.0 ** (snr_db / 10.0)
    return np.log2(1.0 + snr * gains / p_ref).mean(axis=1)


# ----------------------------------------------------------------------------- data
class Sub6Data(TaskData):
    def __init__(self, task: Task, cfg: Sub6TaskConfig, data_cfg: Sub6DataConfig, h_sub6: np.ndarray,
                 gains: np.ndarray, splits: dict[str, np.ndarray], info: dict[str, Any]):
        self.task = task
        self.cfg = self.task_cfg = cfg
        self.data_cfg = data_cfg
        self.h = h_sub6            # [U, A, K] complex64
        self.gains = gains         # [U, K_label, B] float32
        self.splits = splits       # split -> user indices
        self.info = info
        self.num_classes = cfg.num_beams
        train = splits["train"]
        p_sub6 = float(np.mean(np.abs(h_sub6[train]) ** 2))
        self.preprocess_state = {
            "task": "sub6",
            "antennas": int(h_sub6.shape[1]),
            "subcarriers": int(h_sub6.shape[2]),
            "max_abs": float(np.abs(h_sub6[train]).max()),
            "p_sub6": p_sub6,
            "p_ref_mmwave": float(gains[train].max(axis=2).mean()),
            "layout": "real parts then imaginary parts of csi/max_abs, antenna-major",
        }
        self._rate_cache: dict[float, np.ndarray] = {}

    def split_size(self, split: str) -> int:
        return len(self.splits[split])

    # -- labels and inputs ------------------------------------------------------------
    def rates_at(self, snr_db: float) -> np.ndarray:
        if snr_db not in self._rate_cache:
            self._rate_cache[snr_db] = rates(self.gains, snr_db, self.preprocess_state["p_ref_mmwave"]).astype(np.float32)
        return self._rate_cache[snr_db]

    def labels_at(self, snr_db: float) -> np.ndarray:
        return self.rates_at(snr_db).argmax(axis=1)

    def noisy_inputs(self, users: np.ndarray, snr_db: np.ndarray | float, rng: np.random.Generator) -> np.ndarray:
        noisy = add_noise(self.h[users], snr_db, self.preprocess_state["p_sub6"], rng)
        return preprocess(noisy, self.preprocess_state)

    def _eval_rng(self, split: str, snr_db: float) -> np.random.Generator:
        return np.random.default_rng([self.cfg.eval_seed, SPLITS.index(split), int(round(snr_db * 100)) + 100000])

    def arrays(self, split: str, role: str = "student") -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        snr = self.cfg.reference_snr_db
        users = self.splits[split]
        x = self.noisy_inputs(users, snr, self._eval_rng(split, snr))
        return (x,), self.labels_at(snr)[users]

    def batches(self, split: str, batch_size: int, *, epoch: int, seed: int, shuffle: bool,
                roles: Sequence[str] = ("student",)) -> Iterator[Batch]:
        import torch

        users = self.splits[split]
        snrs = np.asarray(self.cfg.train_snr_db, dtype=np.float64)
        if split == "train":
            rng = np.random.default_rng([seed, epoch, 7])
            snr_idx = rng.integers(0, len(snrs), size=len(users))
        else:  # fixed noise and a fixed SNR per sample: comparable validation curves
            rng = np.random.default_rng([self.cfg.eval_seed, SPLITS.index(split), 7])
            snr_idx = np.arange(len(users)) % len(snrs)
        x = self.noisy_inputs(users, snrs[snr_idx], rng)
        y = np.empty(len(users), dtype=np.int64)
        for i, s in enumerate(snrs):
            sel = snr_idx == i
            y[sel] = self.labels_at(float(s))[users[sel]]
        order = rng.permutation(len(users)) if shuffle else np.arange(len(users))
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        for start in range(0, len(order), batch_size):
            idx = torch.from_numpy(order[start:start + batch_size])
            yield Batch((xt[idx],), yt[idx])

    # -- metrics ------------------------------------------------------------------------
    def evaluate(self, predict: Predictor, split: str = "test", role: str = "student",
                 snr_db: Sequence[float] | None = None) -> dict[str, Any]:
        users = self.splits[split]
        rows = []
        for snr in (self.cfg.eval_snr_db if snr_db is None else snr_db):
            snr = float(snr)
            x = self.noisy_inputs(users, snr, self._eval_rng(split, snr))
            logits = predict_in_batches(predict, (x,))
            r = self.rates_at(snr)[users]              # [U, B]
            labels = r.argmax(axis=1)
            kmax = max(self.cfg.topk)
            top = topk_indices(logits, kmax)           # [U, kmax], best first
            row: dict[str, float] = {"snr_db": snr}
            for k in self.cfg.topk:
                row[f"top{k}"] = float((top[:, :k] == labels[:, None]).any(axis=1).mean())
                # SE when the BS sweeps the k predicted beams and keeps the best of them
                row[f"se_top{k}"] = float(np.take_along_axis(r, top[:, :k], axis=1).max(axis=1).mean())
            row["se_optimal"] = float(r.max(axis=1).mean())
            rows.append(row)
        return {"split": split, "num_samples": int(len(users)), "by_snr": rows}

    def headline(self, metrics: dict[str, Any]) -> dict[str, float]:
        rows = metrics["by_snr"]
        ref = min(rows, key=lambda r: abs(r["snr_db"] - self.cfg.reference_snr_db))
        out = {f"Top-{k} @{ref['snr_db']:g} dB": ref[f"top{k}"] * 100 for k in self.cfg.topk}
        out[f"SE @{ref['snr_db']:g} dB"] = ref[f"se_top{self.cfg.topk[0]}"]
        return out


# ----------------------------------------------------------------------------- task
class CsiStream(StreamPreprocessor):
    """Runtime side of `preprocess`: one user's sub-6 CSI snapshot per frame, no history."""

    modalities = ("csi",)

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def push(self, frame: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        if "csi" not in frame:
            raise BeamcError(f"sub6 frame: expected modality 'csi', found {sorted(frame)}")
        csi = np.asarray(frame["csi"])
        if not np.iscomplexobj(csi):
            raise BeamcError(f"sub6 CSI frame: expected complex values, found {csi.dtype}")
        return (preprocess(csi, self.state),)


class Sub6Task(Task):
    name = "sub6"
    TaskConfig = Sub6TaskConfig
    DataConfig = Sub6DataConfig

    def prepare(self, task_cfg: Sub6TaskConfig, data_cfg: Sub6DataConfig, *, progress: bool = True) -> Sub6Data:
        folder, sub6_name, mmw_name, tx_set, tx_index, rx_sets = self._scenarios(data_cfg)
        from beamc.data.deepmimo import read_channels

        sub6 = read_channels(folder, sub6_name, tx_set=tx_set, tx_index=tx_index, rx_sets=rx_sets,
                             n_ant=data_cfg.sub6_antennas, n_subcarriers=data_cfg.sub6_subcarriers,
                             selected=np.arange(data_cfg.sub6_subcarriers), bandwidth=data_cfg.sub6_bandwidth_hz,
                             num_paths=data_cfg.num_paths)
        step = max(1, data_cfg.mmwave_subcarriers // data_cfg.mmwave_label_subcarriers)
        selected = np.arange(0, data_cfg.mmwave_subcarriers, step)[:data_cfg.mmwave_label_subcarriers]
        mmw = read_channels(folder, mmw_name, tx_set=tx_set, tx_index=tx_index, rx_sets=rx_sets,
                            n_ant=data_cfg.mmwave_antennas, n_subcarriers=data_cfg.mmwave_subcarriers,
                            selected=selected, bandwidth=data_cfg.mmwave_bandwidth_hz, num_paths=data_cfg.num_paths)
        check_aligned(sub6, mmw, sub6_name, mmw_name)
        n = len(sub6.h) if data_cfg.max_users == 0 else min(data_cfg.max_users, len(sub6.h))
        h_sub6, h_mmw = sub6.h[:n], mmw.h[:n]
        # users without any path (zero channel in either band) carry no information
        keep = (np.abs(h_sub6).reshape(n, -1).max(axis=1) > 0) & (np.abs(h_mmw).reshape(n, -1).max(axis=1) > 0)
        h_sub6, h_mmw = h_sub6[keep], h_mmw[keep]
        if len(h_sub6) < 10:
            raise BeamcError(f"{folder}: only {len(h_sub6)} users with a channel in both {sub6_name} and {mmw_name}; need at least 10")
        gains = beam_gains(h_mmw, codebook(data_cfg.mmwave_antennas, task_cfg.num_beams))
        splits = split_users(len(h_sub6), task_cfg.val_fraction, task_cfg.test_fraction, task_cfg.split_seed)
        info = {"source": data_cfg.source, "folder": str(folder), "scenarios": [sub6_name, mmw_name],
                "users": int(len(h_sub6)), "users_without_paths": int((~keep).sum()),
                "los_fraction_mmwave": float(np.mean(mmw.los[:n][keep] == 1)),
                "split_sizes": {k: int(len(v)) for k, v in splits.items()}}
        return Sub6Data(self, task_cfg, data_cfg, h_sub6, gains, splits, info)

    def input_spec(self, task_cfg: Sub6TaskConfig, data_cfg: Sub6DataConfig, role: str = "student") -> list[TensorSpec]:
        return [TensorSpec("csi", (2 * data_cfg.sub6_antennas * data_cfg.sub6_subcarriers,))]

    def output_spec(self, task_cfg: Sub6TaskConfig, data_cfg: Sub6DataConfig, role: str = "student") -> list[TensorSpec]:
        return [TensorSpec("logits", (task_cfg.num_beams,))]

    def _scenarios(self, data_cfg: Sub6DataConfig) -> tuple[Path, str, str, int, int, tuple[int, ...] | None]:
        if data_cfg.source == "deepmimo":
            if not data_cfg.folder:
                raise BeamcError("data.folder: required when data.source = \"deepmimo\" (the folder holding "
                                 f"{data_cfg.sub6_scenario}/ and {data_cfg.mmwave_scenario}/)")
            return (Path(data_cfg.folder).expanduser(), data_cfg.sub6_scenario, data_cfg.mmwave_scenario,
                    data_cfg.bs_tx_set, data_cfg.bs_index, data_cfg.rx_sets)
        from beamc.data.synth import cached_street

        folder, sub6_name, mmw_name = cached_street(data_cfg.synth)
        return folder, sub6_name, mmw_name, 0, 0, None

    def criterion(self, logits: Any, y: Any, task_cfg: Any) -> Any:
        import torch.nn.functional as F

        return F.cross_entropy(logits, y)

    def stream_preprocessor(self, task_cfg: Sub6TaskConfig, state: dict[str, Any], role: str = "student") -> StreamPreprocessor:
        return CsiStream(state)

    def plot(self, metrics: dict[str, Any], out_dir: Any) -> list[Any]:
        from beamc.plots import sub6_curves

        return sub6_curves(metrics, Path(out_dir))


def check_aligned(a: Any, b: Any, name_a: str, name_b: str) -> None:
    """The two scenarios must list the same users in the same order (row-by-row alignment)."""
    if len(a.rx_pos) != len(b.rx_pos):
        raise BeamcError(f"users of {name_a} and {name_b} are not aligned row by row: "
                         f"{name_a} has {len(a.rx_pos)} users, {name_b} has {len(b.rx_pos)}")
    diff = np.linalg.norm(a.rx_pos - b.rx_pos, axis=1)
    if np.any(diff > 0.05):
        i = int(np.argmax(diff > 0.05))
        raise BeamcError(f"users of {name_a} and {name_b} are not aligned row by row: user {i} is at "
                         f"{np.round(a.rx_pos[i], 2).tolist()} in {name_a} and {np.round(b.rx_pos[i], 2).tolist()} in {name_b}")


def split_users(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    n_val = int(round(n * val_fraction))
    return {"test": np.sort(perm[:n_test]), "val": np.sort(perm[n_test:n_test + n_val]),
            "train": np.sort(perm[n_test + n_val:])}


TASKS.add("sub6", Sub6Task())
