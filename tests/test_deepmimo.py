"""The DeepMIMO loader on tiny hand-written scenarios in the v4 on-disk format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from beamc.data.deepmimo import mat_filename, read_channels
from beamc.errors import BeamcError


def write_tiny(root: Path, name: str, users: list[dict], frequency: float = 28e9, rx_pos=None) -> None:
    """One TX set (id 0, one BS) and one RX set (id 1); each user has exactly one path."""
    d = root / name
    d.mkdir(parents=True)
    n = len(users)
    col = lambda key: np.array([[u[key]] for u in users], dtype=np.float32)  # noqa: E731
    mats = {k: col(k) for k in ("power", "phase", "delay", "aod_az", "aod_el")}
    mats["aoa_az"] = np.zeros((n, 1), np.float32)
    mats["aoa_el"] = np.full((n, 1), 90.0, np.float32)
    mats["inter"] = np.zeros((n, 1), np.float32)
    mats["inter_pos"] = np.full((n, 1, 1, 3), np.nan, np.float32)
    mats["rx_pos"] = np.asarray(rx_pos if rx_pos is not None else [[i, 0, 1.5] for i in range(n)], np.float32)
    mats["tx_pos"] = np.zeros((1, 3), np.float32)
    for k, v in mats.items():
        np.savez_compressed(d / mat_filename(k, 0, 0, 1), **{k: v})
    sets = {"txrx_set_0": {"name": "bs", "id": 0, "id_orig": 3, "is_tx": True, "is_rx": False, "num_points": 1,
                           "num_active_points": 1, "num_ant": 1, "dual_pol": False},
            "txrx_set_1": {"name": "ue", "id": 1, "id_orig": 1, "is_tx": False, "is_rx": True, "num_points": n,
                           "num_active_points": n, "num_ant": 1, "dual_pol": False}}
    (d / "params.json").write_text(json.dumps({"version": "4.0.5", "rt_params": {"frequency": frequency},
                                               "scene": {"num_scenes": 1}, "materials": {}, "txrx_sets": sets}))
    (d / "objects.json").write_text("[]")
    np.savez_compressed(d / "vertices.npz", vertices=np.zeros((0, 3)))


def test_channels_match_the_closed_form(tmp_path):
    users = [{"power": -60.0, "phase": 30.0, "delay": 1e-8, "aod_az": 90.0, "aod_el": 90.0},
             {"power": -70.0, "phase": -45.0, "delay": 2e-8, "aod_az": 30.0, "aod_el": 60.0}]
    write_tiny(tmp_path, "tiny", users)
    n_ant, n_sc, bw = 4, 8, 100e6
    ch = read_channels(tmp_path, "tiny", tx_set=0, tx_index=0, rx_sets=None, n_ant=n_ant, n_subcarriers=n_sc,
                       selected=np.arange(n_sc), bandwidth=bw)
    assert ch.h.shape == (2, n_ant, n_sc) and ch.frequency == 28e9
    m = np.arange(n_ant)[:, None]
    k = np.arange(n_sc)[None, :]
    for u, spec in enumerate(users):
        amp = np.sqrt(10 ** (spec["power"] / 10) / n_sc)
        az, el = np.radians(spec["aod_az"]), np.radians(spec["aod_el"])
        # [N, 1] array along y: phase pi*m*sin(el)*sin(az); delay phase -2 pi k tau B / K
        expected = amp * np.exp(1j * np.radians(spec["phase"])) * np.exp(1j * np.pi * m * np.sin(el) * np.sin(az)) \
            * np.exp(-2j * np.pi * k * spec["delay"] * bw / n_sc)
        np.testing.assert_allclose(ch.h[u], expected, rtol=1e-4, atol=1e-9)
    assert ch.los.tolist() == [1, 1]


def test_missing_scenario_says_where_and_how(tmp_path):
    with pytest.raises(BeamcError) as e:
        read_channels(tmp_path, "o1_28", tx_set=0, tx_index=0, rx_sets=None, n_ant=4, n_subcarriers=4,
                      selected=np.arange(4), bandwidth=1e6)
    assert str(e.value).startswith(f"DeepMIMO scenario 'o1_28' not found: {tmp_path / 'o1_28'} does not exist; "
                                   "download the DeepMIMO v4 scenario from https://www.deepmimo.net/scenarios/")


def test_bad_bs_selection(tmp_path):
    write_tiny(tmp_path, "tiny", [{"power": -60.0, "phase": 0.0, "delay": 0.0, "aod_az": 0.0, "aod_el": 90.0}])
    kw = dict(rx_sets=None, n_ant=4, n_subcarriers=4, selected=np.arange(4), bandwidth=1e6)
    with pytest.raises(BeamcError) as e:
        read_channels(tmp_path, "tiny", tx_set=2, tx_index=0, **kw)
    assert str(e.value) == f"{tmp_path / 'tiny'}: data.bs_tx_set = 2 is not a TX set of this scenario; TX sets: [0]"
    with pytest.raises(BeamcError) as e:
        read_channels(tmp_path, "tiny", tx_set=0, tx_index=3, **kw)
    assert str(e.value) == f"{tmp_path / 'tiny'}: data.bs_index = 3 out of range; TX set 0 has 1 transmitters (0..0)"


def test_a_damaged_array_file_is_one_line_naming_file_and_array(tmp_path):
    write_tiny(tmp_path, "tiny", [{"power": -60.0, "phase": 0.0, "delay": 0.0, "aod_az": 0.0, "aod_el": 90.0}] * 3)
    kw = dict(tx_set=0, tx_index=0, rx_sets=None, n_ant=4, n_subcarriers=4, selected=np.arange(4), bandwidth=1e6)
    d = tmp_path / "tiny"
    power, delay, phase = (d / mat_filename(k, 0, 0, 1) for k in ("power", "delay", "phase"))
    good = {p: p.read_bytes() for p in (power, delay, phase)}
    power.write_bytes(good[power][:100])  # truncated: the zip directory at the end is gone
    with pytest.raises(BeamcError) as e:
        read_channels(tmp_path, "tiny", **kw)
    assert str(e.value) == (f"{power}: expected a .npz file holding array 'power', cannot read it "
                            "(BadZipFile: File is not a zip file)")
    power.write_bytes(good[power])
    np.savez_compressed(delay, wrong=np.zeros((3, 1), np.float32))  # the array saved under another name
    with pytest.raises(BeamcError) as e:
        read_channels(tmp_path, "tiny", **kw)
    assert str(e.value) == f"{delay}: expected array 'delay', found 'wrong'"
    delay.unlink()
    with pytest.raises(BeamcError) as e:
        read_channels(tmp_path, "tiny", **kw)
    assert str(e.value) == f"{d}: missing {delay.name} (array 'delay'); the scenario folder is incomplete"
    delay.write_bytes(good[delay])
    np.savez(phase, phase=np.zeros((3, 1), np.float32))  # stored: flip bytes of the array data itself
    raw = bytearray(phase.read_bytes())
    at = raw.index(b"\x93NUMPY") + 128  # past the 128-byte .npy header: the array's values
    raw[at:at + 4] = b"\xff" * 4
    phase.write_bytes(bytes(raw))
    with pytest.raises(BeamcError) as e:
        read_channels(tmp_path, "tiny", **kw)
    assert str(e.value) == (f"{d}: cannot read the scenario's ray-tracing arrays (BadZipFile: Bad CRC-32 for file "
                            "'phase.npy'); the scenario folder is damaged")


def test_sub6_task_on_a_real_format_pair_and_misalignment(tmp_path):
    """The sub6 task reads a scenario pair through data.source = "deepmimo"; users must align."""
    from beamc.recipe import load_recipe
    from beamc.registry import TASKS

    rng = np.random.default_rng(0)
    n = 40
    pos = [[float(i), 0.0, 1.5] for i in range(n)]
    mk = lambda: [{"power": float(-60 - 10 * rng.random()), "phase": float(360 * rng.random()), "delay": 1e-8,  # noqa: E731
                   "aod_az": float(180 * rng.random()), "aod_el": 90.0} for _ in range(n)]
    write_tiny(tmp_path, "a_3p5", mk(), 3.5e9, pos)
    write_tiny(tmp_path, "a_28", mk(), 28e9, pos)
    repo = Path(__file__).resolve().parents[1]
    overrides = ["data.source=deepmimo", f"data.folder={tmp_path}", "data.sub6_scenario=a_3p5", "data.mmwave_scenario=a_28",
                 "data.mmwave_label_subcarriers=8"]
    r = load_recipe(repo / "recipes" / "sub6_ikd.toml", overrides)
    data = TASKS.get("sub6").prepare(r.task, r.data)
    assert data.info["users"] == n and sum(data.info["split_sizes"].values()) == n
    (x,), y = data.arrays("test")
    assert x.shape == (len(y), 256) and y.max() < 64

    write_tiny(tmp_path, "b_28", mk(), 28e9, [[p[0], 1.0, 1.5] for p in pos])
    r = load_recipe(repo / "recipes" / "sub6_ikd.toml", overrides[:-2] + ["data.mmwave_scenario=b_28"])
    with pytest.raises(BeamcError) as e:
        TASKS.get("sub6").prepare(r.task, r.data)
    assert str(e.value) == ("users of a_3p5 and b_28 are not aligned row by row: user 0 is at [0.0, 0.0, 1.5] in a_3p5 "
                            "and [0.0, 1.0, 1.5] in b_28")
    r = load_recipe(repo / "recipes" / "sub6_ikd.toml", ["data.source=deepmimo"])
    with pytest.raises(BeamcError) as e:
        TASKS.get("sub6").prepare(r.task, r.data)
    assert str(e.value).startswith('data.folder: required when data.source = "deepmimo"')
