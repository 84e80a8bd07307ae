"""The embedded V2I simulator: real format round trip, determinism, cross-modal agreement."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from beamc.data import deepsense as ds
from beamc.data.deepsense_inspect import angle_bins_deg, range_angle_map
from beamc.data.synth import v2i
from beamc.data.synth.v2i_beams import beam_angles_deg
from beamc.data.synth.v2i_camera import HEIGHT, WIDTH
from beamc.errors import BeamcError

TINY = v2i.DeepSenseSynthConfig(sequences=6, min_frames=5, max_frames=5, seed=3)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return v2i.generate(TINY, tmp_path_factory.mktemp("v2i") / "tiny").path


def blocks(img: np.ndarray) -> np.ndarray:
    """Means over 4 x 8 pixel blocks (540 x 960 -> 135 x 120)."""
    return img.astype(float).reshape(HEIGHT // 4, 4, WIDTH // 8, 8, 3).mean(axis=(1, 3))


def test_round_trip_every_column_and_modality(tiny):
    raw = (tiny / v2i.CSV_NAME).read_bytes()
    lines = raw.split(b"\r\n")
    assert lines[0].decode() == ",".join(ds.COLUMNS) and lines[-1] == b""  # real header, CRLF throughout
    assert b"\n" not in raw.replace(b"\r\n", b"")
    sc = ds.open_scenario(tiny)
    assert sc.columns == ds.COLUMNS and sc.n == 30 and sc.summary.skipped == {}
    assert sc.sequences().tolist() == [1, 2, 3, 4, 5, 6] and np.bincount(sc.seq).tolist() == [0] + [5] * 6
    np.testing.assert_allclose(ds.read_gps(sc, 0, "gps_bs"), [v2i.BS_LAT, v2i.BS_LON])
    truth = np.load(tiny / v2i.TRUTH_FILE)
    for i, f in enumerate(v2i.frames(TINY)):
        assert (sc.index[i], sc.seq[i]) == (f.g + 1, f.seq)
        assert abs(sc.time_s[i] - f.t) < 0.0005
        assert sc.beam[i] == int(np.argmax(f.power)) and f.beam_index == sc.beam[i] + 1  # 1-based in the CSV
        np.testing.assert_allclose(ds.read_power(sc, i), f.power, rtol=1e-8)
        img = ds.read_image(sc, i)
        assert img.shape == (HEIGHT, WIDTH, 3) == (540, 960, 3)
        # JPEG (quality 85) and sensor noise average out over 4 x 8 blocks; a moved vehicle does not
        err = np.abs(blocks(img) - blocks(f.image))
        assert err.mean() < 1.0 and err.max() < 20.0  # consecutive frames differ by > 100 at the vehicle
        np.testing.assert_array_equal(ds.read_lidar(sc, i), f.lidar)
        np.testing.assert_array_equal(ds.read_lidar_raw(sc, i), f.lidar_raw)
        np.testing.assert_array_equal(ds.read_radar(sc, i), f.radar)
        np.testing.assert_allclose(ds.read_gps(sc, i), f.gps, rtol=0, atol=1e-8)
        np.testing.assert_allclose(ds.read_gps(sc, i, "gps_cal"), f.gps_cal, rtol=0, atol=1e-8)
        assert {c: sc.meta[c][i] for c in sc.meta} == f.meta
        assert truth["bearing_deg"][i] == pytest.approx(f.truth["bearing_deg"])
        assert truth["seq_index"][i] == f.seq
    assert i == 29


def test_deterministic_by_seed(tmp_path, tiny):
    again = v2i.generate(TINY, tmp_path / "again").path
    assert (again / v2i.CSV_NAME).read_bytes() == (tiny / v2i.CSV_NAME).read_bytes()
    a, b = ds.open_scenario(again), ds.open_scenario(tiny)
    for m in ("power", "rgb", "gps"):
        assert a.paths[m][8].read_bytes() == b.paths[m][8].read_bytes()
    # .mat headers carry their creation time: compare the contents
    np.testing.assert_array_equal(ds.read_radar(a, 8), ds.read_radar(b, 8))
    np.testing.assert_array_equal(ds.read_lidar(a, 8), ds.read_lidar(b, 8))
    other = next(iter(v2i.frames(replace(TINY, seed=4, sequences=1))))
    assert not np.array_equal(other.power, next(iter(v2i.frames(TINY))).power)


def test_disabled_modalities_drop_their_columns(tmp_path):
    cfg = replace(TINY, sequences=1, camera=False, radar=False, gps=False)
    sc = ds.open_scenario(v2i.generate(cfg, tmp_path / "lean").path)
    assert sc.modalities == ("power", "lidar", "lidar_raw")
    assert "unit1_rgb" not in sc.columns and "unit1_beam_index" in sc.columns and sc.n == 5


def test_each_sensor_is_the_same_with_the_others_switched_off():
    # the LiDAR task's scenario has no camera or radar, the vision task's no LiDAR or radar:
    # the data a task reads must not depend on which other sensors were simulated
    cfg = replace(TINY, sequences=2)
    full = list(v2i.frames(cfg))
    lidar_only = list(v2i.frames(replace(cfg, camera=False, radar=False, gps=False)))
    camera_only = list(v2i.frames(replace(cfg, lidar=False, radar=False, gps=False)))
    camera_radar = list(v2i.frames(replace(cfg, lidar=False, gps=False)))
    assert len(full) == len(lidar_only) == len(camera_only) == 10
    for f, lo, co, cr in zip(full, lidar_only, camera_only, camera_radar):
        assert np.array_equal(f.power, lo.power) and np.array_equal(f.power, co.power)
        assert np.array_equal(f.lidar, lo.lidar) and np.array_equal(f.lidar_raw, lo.lidar_raw)
        assert np.array_equal(f.image, co.image) and np.array_equal(f.image, cr.image)
        assert np.array_equal(f.radar, cr.radar)


def test_bad_configuration_and_output(tmp_path, tiny):
    with pytest.raises(BeamcError) as e:
        v2i.generate(replace(TINY, min_frames=10, max_frames=5), tmp_path / "x")
    assert str(e.value) == "data.synth: min_frames (10) must be <= max_frames (5)"
    with pytest.raises(BeamcError) as e:
        v2i.generate(TINY, tiny)
    assert str(e.value) == f"{tiny} already exists and is not an empty folder; choose a new --out (nothing was written)"
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x-*"))


# ----------------------------------------------------------------------------- agreement
AGREE = v2i.DeepSenseSynthConfig(sequences=5, min_frames=12, max_frames=12, other_vehicles=0, pedestrians=0, seed=11)


def sensed_bearings(sc: ds.Scenario) -> dict[str, np.ndarray]:
    """The target's bearing (deg) as each modality sees it, measured from the loaded files only."""
    f_px = (WIDTH / 2) / np.tan(np.radians(AGREE.fov_deg / 2))
    out = {m: np.full(sc.n, np.nan) for m in ("camera", "lidar", "radar")}
    prev = None
    for i in range(sc.n):
        gray = ds.read_image(sc, i).astype(float).mean(axis=2)
        if prev is not None and sc.segment[i] == sc.segment[i - 1]:
            diff = np.abs(gray - prev)
            cols = np.flatnonzero(diff.max(axis=0) > 30)  # columns the moving target touched
            if cols.size:
                out["camera"][i] = np.degrees(np.arctan((np.median(cols) - WIDTH / 2) / f_px))
        prev = gray
        scan = ds.read_lidar(sc, i)
        hit = scan > 0
        if hit.any():
            out["lidar"][i] = np.median(ds.lidar_bearings_deg()[hit])
        # radar: the strongest moving reflector's range, then the energy-weighted bearing of
        # everything within 3 m of it (the vehicle's corners and side spread over its length)
        ra = range_angle_map(ds.read_radar(sc, i))
        r = np.unravel_index(np.argmax(ra), ra.shape)[1]
        profile = ra[:, max(r - 15, 0):r + 16].sum(axis=1)
        weight = np.clip(profile - profile.max() / 2, 0, None)
        out["radar"][i] = np.degrees(np.arcsin((weight * np.sin(np.radians(angle_bins_deg()))).sum() / weight.sum()))
    return out


def test_best_beam_tracks_the_vehicle_in_every_modality(tmp_path):
    sc = ds.open_scenario(v2i.generate(AGREE, tmp_path / "agree").path)
    truth = np.load(sc.root / v2i.TRUTH_FILE)
    los = truth["los"] > 0
    assert los.mean() > 0.9
    beam_deg = beam_angles_deg(AGREE.fov_deg)[sc.beam]
    assert np.corrcoef(beam_deg[los], truth["bearing_deg"][los])[0, 1] > 0.95
    sensed = sensed_bearings(sc)
    for modality, bearing in sensed.items():
        ok = los & np.isfinite(bearing)
        assert ok.sum() >= 40, modality
        r = np.corrcoef(beam_deg[ok], bearing[ok])[0, 1]
        assert r > 0.9, (modality, r)
    # the beam moves with the vehicle: consecutive best beams stay close within a sequence
    same = sc.segment[1:] == sc.segment[:-1]
    assert np.median(np.abs(np.diff(sc.beam))[same]) <= 3


def test_cached_deepsense_generates_once(monkeypatch):
    from beamc.data.synth import cached_deepsense

    cfg = replace(TINY, sequences=2, radar=False, camera=False)
    first = cached_deepsense(cfg)
    assert ds.open_scenario(first).n == 10
    monkeypatch.setattr(v2i, "generate", lambda *a, **k: pytest.fail("regenerated a cached scenario"))
    assert cached_deepsense(cfg) == first
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]  # no half-written folders left


def beamc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "beamc.cli", *args], capture_output=True, text=True, cwd=REPO)


def test_cli_synth_and_inspect(tmp_path):
    out = tmp_path / "cli"
    res = beamc("data", "synth", "deepsense", "--out", str(out), "--sequences", "1", "--seed", "2", "--no-radar", "-q")
    assert res.returncode == 0, res.stderr
    assert f"in 1 sequences to {out}" in res.stdout.replace("\n", "")
    res = beamc("data", "inspect", str(out), "--json", "--sheet", str(tmp_path / "sheet.png"))
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["sequences"] == 1 and info["kept"] == info["rows"] and 30 <= info["rows"] <= 65
    assert info["modalities"] == ["rgb", "power", "lidar", "lidar_raw", "gps_bs", "gps", "gps_cal"]
    assert sum(info["beam_histogram"]) == info["rows"] and info["failed_files"] == []
    assert round(info["frame_interval_ms"]) == 111
    assert (tmp_path / "sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (out / "unit1/mmWave_data/mmWave_power_3.txt").write_text("1\n2\n")
    res = beamc("data", "inspect", str(out), "--json", "--sheet", str(tmp_path / "sheet2.png"))
    info = json.loads(res.stdout)
    assert info["failed_per_modality"] == {"power": 1}
    assert info["failed_files"] == [f"{out / v2i.CSV_NAME}: line 5 (data row 4), column 'unit1_pwr_60ghz': "
                                    "expected 64 beam powers, found 2 values in ./unit1/mmWave_data/mmWave_power_3.txt"]
    (out / "unit1/mmWave_data/mmWave_power_3.txt").unlink()
    res = beamc("data", "inspect", str(out))
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"error: {out / v2i.CSV_NAME}: line 5 (data row 4), column 'unit1_pwr_60ghz': file not found")
    res = beamc("data", "inspect", str(out), "--lenient", "--json", "--sheet", str(tmp_path / "sheet3.png"))
    assert res.returncode == 0 and json.loads(res.stdout)["skipped"] == {"missing file (unit1_pwr_60ghz)": 1}
    assert "Examples" in beamc("data", "synth", "deepsense", "--help").stdout


@pytest.mark.slow
def test_lidar_baseline_learns_from_simulated_data():
    """The LiDAR paper's GRU teacher, trained briefly on simulated sequences, beats chance (7.8 %) by far."""
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "deepsense_learnability.py"), "--json",
                          "--sequences", "40", "--epochs", "10"], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["params"] == 96_640  # the paper's teacher size
    assert result["top5"][0] > 0.6 and min(result["top5"]) > 0.5, result
