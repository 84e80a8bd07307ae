"""Sequence windows and sequence splits over a DeepSense scenario (numpy only).

A window at current frame t holds the row indices of the `past` frames t-past+1 .. t (the
sensor inputs, oldest first) and of the beams at t, t+1 .. t+future (the labels: the
current beam and `future` future beams). Windows never cross a `seq_index` boundary, nor a
row that `open_scenario(lenient=True)` skipped (`Scenario.segment`).

How the reference code builds them:

* vision paper (WillysMa/Sensing-Assisted-Beam-Tracking, ``gen_data_seq.py`` and
  ``MyFunc.py``): 8 images, the current beam is the last input frame's beam
  (``beam_downsampled[..., -1:]``) followed by 6 future beams; windows slide by one frame
  and the loop condition ``start + in_len + out_len < len(seq)`` drops each sequence's last
  complete window. That is how scenario 9's 5964 rows in 136 sequences give the paper's
  4060 samples: ``windows(sc, past=8, future=6, drop_last=True)`` reproduces it, and the
  default keeps that last window. Students with L=5/3 use the last L frames of the same
  8-frame windows (``samples_rgb[-self.seq_len:]``).
* LiDAR paper (AZakeri94/DF-KD-for-LiDAR-aided-Beam-Tracking, ``utils/gen_data_seq.py``):
  8 scans, current + 3 future beams; windows are kept while the 8 inputs fit
  (``start + in_len <= len(seq)``) and future beams past the end are padded and ignored in
  the loss (label -100): ``windows(sc, past=8, future=3, pad_future=True)``. The model's 3
  zero frames appended after the 8 scans are a model-input detail of the task, not a window.

Splits (`split_sequences`): the vision reference puts the first 80 % of sequences in
order of appearance into training (``int(0.8 * n)``); the LiDAR reference permutes the
sequences with ``np.random.default_rng(42).permutation`` and cuts at ``int(0.6 n)`` and
``int(0.75 n)``. Both are reproduced exactly (`seed=None` or `seed=42, train=0.6, val=0.15`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from beamc.errors import BeamcError

IGNORE_INDEX = -100  # label of a padded future beam (torch's CrossEntropyLoss default ignore_index)


@dataclass(frozen=True)
class Windows:
    past: np.ndarray    # [N, past] row indices, oldest first; the last column is the current frame t
    beams: np.ndarray   # [N, 1 + future] row indices of the beams at t .. t+future; -1 where padded
    seq: np.ndarray     # [N] seq_index of each window

    def __len__(self) -> int:
        return len(self.seq)

    def select(self, mask: np.ndarray) -> Windows:
        return Windows(self.past[mask], self.beams[mask], self.seq[mask])

    def in_sequences(self, seq_ids: np.ndarray) -> Windows:
        return self.select(np.isin(self.seq, seq_ids))


def windows(sc, past: int, future: int, *, pad_future: bool = False, drop_last: bool = False,
            valid: np.ndarray | None = None) -> Windows:
    """All windows of `past` input frames and the current + `future` beams.

    `sc` is a Scenario (or anything with `segment` and `seq` arrays). `valid` ([n] bool, e.g.
    a frame cache's `ok`) drops windows that touch a frame that failed to decode."""
    if past < 1 or future < 0:
        raise BeamcError(f"windows: expected past >= 1 and future >= 0, found past={past}, future={future}")
    segment, seq = np.asarray(sc.segment), np.asarray(sc.seq)
    n = len(segment)
    starts = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]])
    ends = np.r_[starts[1:], n]
    past_rows, beam_rows = [], []
    for s, e in zip(starts, ends):
        # current frame t runs over the segment; inputs need t-past+1 >= s
        last_t = e - 1 if pad_future else e - 1 - future
        if drop_last:
            last_t -= 1
        t = np.arange(s + past - 1, last_t + 1)
        if t.size == 0:
            continue
        past_rows.append(t[:, None] + np.arange(-past + 1, 1)[None, :])
        b = t[:, None] + np.arange(0, future + 1)[None, :]
        beam_rows.append(np.where(b < e, b, -1))
    if not past_rows:
        empty = np.zeros((0, past), np.int64)
        return Windows(empty, np.zeros((0, future + 1), np.int64), np.zeros(0, np.int64))
    w = Windows(np.concatenate(past_rows).astype(np.int64), np.concatenate(beam_rows).astype(np.int64),
                np.zeros(0, np.int64))
    w = Windows(w.past, w.beams, seq[w.past[:, -1]])
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        ok = valid[w.past].all(axis=1) & np.where(w.beams >= 0, valid[np.maximum(w.beams, 0)], True).all(axis=1)
        w = w.select(ok)
    return w


def beam_labels(sc, w: Windows, beam: np.ndarray | None = None) -> np.ndarray:
    """[N, 1 + future] int64 0-based beam labels; IGNORE_INDEX (-100) at padded positions.

    `beam` defaults to `sc.beam` (the CSV's unit1_beam_index - 1); pass argmax of the power
    files for scenarios whose CSV lacks that column."""
    beam = np.asarray(sc.beam if beam is None else beam)
    if (beam[w.beams[w.beams >= 0]] < 0).any():
        raise BeamcError("beam_labels: the scenario has no unit1_beam_index column; pass beam=argmax of the power files")
    return np.where(w.beams >= 0, beam[np.maximum(w.beams, 0)], IGNORE_INDEX).astype(np.int64)


@dataclass(frozen=True)
class SequenceSplit:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def to_dict(self) -> dict[str, list[int]]:
        return {k: [int(v) for v in getattr(self, k)] for k in ("train", "val", "test")}


def split_sequences(seqs, train: float = 0.8, val: float = 0.0, *, seed: int | None = None) -> SequenceSplit:
    """Split sequence ids into train/val/test (the rest) by whole sequences.

    `seqs` is a Scenario or an array of seq_index values; they are taken in order of first
    appearance. `seed=None` keeps that order (the vision reference's first-80 % split);
    a seed permutes them with `np.random.default_rng(seed)` (the LiDAR reference)."""
    if not (0.0 < train <= 1.0 and 0.0 <= val and train + val <= 1.0 + 1e-12):
        raise BeamcError(f"split_sequences: expected 0 < train <= 1, val >= 0 and train + val <= 1, "
                         f"found train={train}, val={val}")
    ids = seqs.sequences() if hasattr(seqs, "sequences") else np.asarray(seqs)
    _, first = np.unique(ids, return_index=True)
    ids = ids[np.sort(first)]
    if seed is not None:
        ids = np.random.default_rng(seed).permutation(ids)
    n = len(ids)
    a, b = int(train * n), int((train + val) * n)
    return SequenceSplit(ids[:a], ids[a:b], ids[b:])


__all__ = ["Windows", "windows", "beam_labels", "split_sequences", "SequenceSplit", "IGNORE_INDEX"]
