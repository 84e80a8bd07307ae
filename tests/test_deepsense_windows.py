"""Sequence windows and splits: never across a sequence, reproducing the reference counts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from beamc.data.windows import IGNORE_INDEX, beam_labels, split_sequences, windows
from beamc.errors import BeamcError

# Rows per sequence of the public scenario9.csv (136 sequences, 5964 rows), in order.
SCENARIO9_LENGTHS = [
    45, 38, 33, 36, 35, 35, 37, 35, 32, 48, 45, 42, 54, 59, 53, 43, 45, 41, 52, 54, 50, 47, 48, 43, 47, 45, 30, 45,
    59, 57, 52, 43, 42, 40, 42, 42, 65, 45, 37, 48, 37, 46, 45, 40, 43, 42, 48, 63, 45, 47, 53, 38, 48, 45, 43, 48,
    43, 39, 39, 44, 42, 44, 41, 44, 49, 41, 42, 60, 43, 42, 48, 46, 46, 49, 47, 43, 45, 44, 43, 47, 42, 41, 44, 40,
    38, 44, 43, 46, 56, 34, 42, 44, 50, 44, 47, 48, 41, 48, 40, 43, 43, 41, 37, 33, 44, 49, 44, 41, 44, 34, 41, 43,
    38, 39, 39, 47, 47, 37, 46, 41, 36, 50, 48, 43, 37, 37, 44, 44, 41, 42, 46, 39, 41, 40, 40, 42]


def fake(lengths, seq_ids=None, gaps_after=()):
    """A scenario-like object: `lengths` rows per sequence, optional skipped-row holes."""
    seq_ids = list(range(1, len(lengths) + 1)) if seq_ids is None else seq_ids
    seq = np.repeat(seq_ids, lengths)
    new = np.r_[True, seq[1:] != seq[:-1]]
    for row in gaps_after:
        new[row + 1] = True
    return SimpleNamespace(seq=seq, segment=np.cumsum(new) - 1, beam=np.arange(len(seq)) % 64)


def test_windows_stay_inside_sequences():
    sc = fake([3, 5, 2])  # rows 0-2, 3-7, 8-9
    w = windows(sc, past=2, future=1)
    assert w.past.tolist() == [[0, 1], [3, 4], [4, 5], [5, 6]]
    assert w.beams.tolist() == [[1, 2], [4, 5], [5, 6], [6, 7]]
    assert w.seq.tolist() == [1, 2, 2, 2]
    for p, b in zip(w.past, w.beams):
        rows = np.r_[p, b[b >= 0]]
        assert len(set(sc.seq[rows])) == 1


def test_padded_future_and_drop_last():
    sc = fake([4])
    w = windows(sc, past=2, future=2, pad_future=True)
    assert w.past.tolist() == [[0, 1], [1, 2], [2, 3]]
    assert w.beams.tolist() == [[1, 2, 3], [2, 3, -1], [3, -1, -1]]
    assert beam_labels(sc, w).tolist() == [[1, 2, 3], [2, 3, IGNORE_INDEX], [3, IGNORE_INDEX, IGNORE_INDEX]]
    assert len(windows(sc, past=2, future=2)) == 1
    assert len(windows(sc, past=2, future=2, drop_last=True)) == 0
    assert len(windows(sc, past=5, future=0)) == 0  # sequence shorter than the input


def test_windows_respect_holes_and_invalid_frames():
    sc = fake([6], gaps_after=[2])  # a skipped row between rows 2 and 3
    assert windows(sc, past=2, future=1).past.tolist() == [[0, 1], [3, 4]]
    valid = np.ones(6, bool)
    valid[4] = False
    assert windows(sc, past=2, future=0, valid=valid).past.tolist() == [[0, 1], [1, 2]]
    assert windows(sc, past=1, future=1, valid=valid).past.tolist() == [[0], [1]]  # row 3's label is row 4


def test_reference_sample_counts_on_scenario9():
    """The vision paper's 4060 windows (3286 train / 774 validation) from 5964 rows in 136 sequences."""
    sc = fake(SCENARIO9_LENGTHS)
    assert len(sc.seq) == 5964
    w = windows(sc, past=8, future=6, drop_last=True)
    assert len(w) == 4060
    split = split_sequences(sc.seq)
    assert (len(split.train), len(split.val), len(split.test)) == (108, 0, 28)
    assert split.train.tolist() == list(range(1, 109))
    assert (len(w.in_sequences(split.train)), len(w.in_sequences(split.test))) == (3286, 774)
    assert len(windows(sc, past=8, future=6)) == 4060 + 136  # our default keeps each sequence's last window
    # LiDAR paper layout: 8 scans, current + 3 future beams, padded future, every 8-frame run
    assert len(windows(sc, past=8, future=3, pad_future=True)) == 5964 - 7 * 136


def test_seeded_split_matches_the_lidar_reference():
    ids = np.arange(1, 137)
    split = split_sequences(ids, train=0.6, val=0.15, seed=42)
    perm = np.random.default_rng(seed=42).permutation(ids)  # utils/gen_data_seq.py
    assert split.train.tolist() == perm[:81].tolist()
    assert split.val.tolist() == perm[81:102].tolist()
    assert split.test.tolist() == perm[102:].tolist()
    assert split_sequences(ids, seed=1).train.tolist() != split_sequences(ids, seed=2).train.tolist()
    assert split_sequences(ids, seed=1).to_dict() == split_sequences(ids, seed=1).to_dict()


def test_bad_arguments():
    with pytest.raises(BeamcError) as e:
        windows(fake([3]), past=0, future=1)
    assert str(e.value) == "windows: expected past >= 1 and future >= 0, found past=0, future=1"
    with pytest.raises(BeamcError) as e:
        split_sequences(np.arange(5), train=0.9, val=0.2)
    assert str(e.value) == ("split_sequences: expected 0 < train <= 1, val >= 0 and train + val <= 1, "
                            "found train=0.9, val=0.2")
    sc = fake([3])
    sc.beam = np.full(3, -1)
    with pytest.raises(BeamcError) as e:
        beam_labels(sc, windows(sc, past=1, future=0))
    assert str(e.value).startswith("beam_labels: the scenario has no unit1_beam_index column")
