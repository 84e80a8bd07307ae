"""Sub-6 task: preprocessing layout, labels and metrics on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest

from beamc.errors import BeamcError
from beamc.tasks.sub6 import codebook, preprocess, rates, split_users


def test_preprocess_layout_and_shape_error():
    state = {"antennas": 2, "subcarriers": 2, "max_abs": 2.0}
    csi = np.array([[[1 + 2j, 3 - 1j], [0 + 0j, -2 + 4j]]])
    x = preprocess(csi, state)
    assert x.tolist() == [[0.5, 1.5, 0.0, -1.0, 1.0, -0.5, 0.0, 2.0]]
    with pytest.raises(BeamcError) as e:
        preprocess(np.zeros((1, 3, 2), complex), state)
    assert str(e.value) == "sub6 CSI frame: expected shape (antennas, subcarriers) = (2, 2), found (3, 2)"


def test_codebook_unit_norm_and_angles():
    w = codebook(8, 4)
    np.testing.assert_allclose(np.linalg.norm(w, axis=0), 1.0, rtol=1e-6)
    # beam 2 points at pi/2 (broadside): all elements in phase
    np.testing.assert_allclose(w[:, 2], np.full(8, 1 / np.sqrt(8)), atol=1e-6)


def test_rates_and_labels_by_hand():
    gains = np.array([[[1.0, 3.0], [3.0, 0.0]]])  # 1 user, 2 subcarriers, 2 beams
    r = rates(gains, 0.0, p_ref=1.0)                  # SNR 0 dB
    assert r.tolist()[0] == pytest.approx([(1.0 + 2.0) / 2, (2.0 + 0.0) / 2])
    assert r.argmax(axis=1).tolist() == [0]


def test_split_is_a_seeded_partition():
    s = split_users(100, 0.1, 0.2, seed=3)
    all_idx = np.concatenate(list(s.values()))
    assert sorted(all_idx.tolist()) == list(range(100))
    assert [len(s[k]) for k in ("train", "val", "test")] == [70, 10, 20]
    assert split_users(100, 0.1, 0.2, seed=3)["test"].tolist() == s["test"].tolist()


def test_prepared_data_metrics_consistent(tiny_sub6):
    from beamc.recipe import load_recipe
    from beamc.registry import TASKS

    r = load_recipe(tiny_sub6())
    data = TASKS.get("sub6").prepare(r.task, r.data)
    st = data.preprocess_state
    assert st["antennas"] == 4 and st["subcarriers"] == 32 and st["max_abs"] > 0
    (x,), y = data.arrays("test")
    # an oracle predictor that puts the label first: Top-1 = 1 and SE = optimal
    labels_by_snr = {s: data.labels_at(s)[data.splits["test"]] for s in r.task.eval_snr_db}
    calls = []

    def oracle(inputs):
        s = r.task.eval_snr_db[len(calls) // 1]
        calls.append(1)
        lab = labels_by_snr[s][: len(inputs[0])]
        return np.eye(64, dtype=np.float32)[lab]

    m = data.evaluate(oracle)
    for row in m["by_snr"]:
        assert row["top1"] == 1.0 and row["top3"] == 1.0
        assert row["se_top1"] == pytest.approx(row["se_optimal"])
    rand = data.evaluate(lambda inp: np.random.default_rng(0).standard_normal((len(inp[0]), 64)).astype(np.float32))
    for row in rand["by_snr"]:
        assert row["se_top1"] <= row["se_top3"] <= row["se_optimal"] + 1e-9


def test_stream_preprocessor_matches_offline_preprocessing():
    from beamc.registry import TASKS

    state = {"antennas": 2, "subcarriers": 2, "max_abs": 2.0}
    stream = TASKS.get("sub6").stream_preprocessor(None, state)
    assert stream.modalities == ("csi",)
    csi = np.array([[1 + 2j, 3 - 1j], [0 + 0j, -2 + 4j]])
    (x,) = stream.push({"csi": csi})
    assert x.shape == (1, 8) and x.tolist() == preprocess(csi[None], state).tolist()
    with pytest.raises(BeamcError) as e:
        stream.push({"lidar": csi})
    assert str(e.value) == "sub6 frame: expected modality 'csi', found ['lidar']"
    with pytest.raises(BeamcError) as e:
        stream.push({"csi": csi.real})
    assert str(e.value) == "sub6 CSI frame: expected complex values, found float64"


def test_sliding_window_preprocesses_each_frame_once():
    from beamc.tasks.base import SlidingWindow

    seen = []

    def per_frame(frame):
        seen.append(int(frame["x"]))
        return float(frame["x"]) * 2

    win = SlidingWindow(("x",), 3, per_frame, lambda h: (np.asarray(h)[None],))
    outs = [win.push({"x": i}) for i in range(5)]
    assert outs[0] is None and outs[1] is None
    assert [o[0].tolist() for o in outs[2:]] == [[[0, 2, 4]], [[2, 4, 6]], [[4, 6, 8]]]
    assert seen == [0, 1, 2, 3, 4]
    win.reset()
    assert win.push({"x": 9}) is None
