"""Night sequences of the V2I simulator: a darker, noisier camera with vehicle lights, and
nothing else changed (traffic, beams, radar, LiDAR, GPS are those of the same day sequence)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from beamc.data.synth import v2i, v2i_camera, v2i_scene
from beamc.errors import BeamcError
from beamc.recipe import load_recipe

DAY = v2i.DeepSenseSynthConfig(sequences=2, min_frames=6, max_frames=6, seed=3, other_vehicles=0, pedestrians=0)
NIGHT = replace(DAY, night_fraction=1.0)
TEACHER = Path(__file__).resolve().parents[1] / "recipes" / "camera_radar_teacher.toml"


def test_night_changes_only_the_camera_frames():
    day, night = list(v2i.frames(DAY)), list(v2i.frames(NIGHT))
    assert len(day) == len(night) == 12
    for a, b in zip(day, night):
        np.testing.assert_array_equal(a.power, b.power)
        np.testing.assert_array_equal(a.radar, b.radar)
        np.testing.assert_array_equal(a.lidar, b.lidar)
        np.testing.assert_array_equal(a.gps, b.gps)
        assert a.meta == b.meta and a.beam_index == b.beam_index
        assert {k: v for k, v in a.truth.items() if k != "night"} == {k: v for k, v in b.truth.items() if k != "night"}
        assert (a.truth["night"], b.truth["night"]) == (0.0, 1.0)
        # 0.15 x the light, ~4x the noise: the mean level drops by about the factor
        assert 0.1 < b.image.mean() / a.image.mean() < 0.2


def render_pair(noise_value: int):
    """A frame by day and by night, brightness 1, a constant noise pattern."""
    w, plans = v2i.plans(DAY)
    st = v2i_scene.frame_state(plans[1], 3)  # the target in full view
    cam = v2i_camera.camera(w, DAY.fov_deg)
    bg = v2i_camera.background(w, cam, DAY.seed)
    noise = np.full((1, v2i_camera.HEIGHT, v2i_camera.WIDTH, 3), noise_value, dtype=np.int16)
    day = v2i_camera.render(st, w, cam, bg, 1.0, noise, np.random.default_rng(0))
    night = v2i_camera.render(st, w, cam, bg, 1.0, noise, np.random.default_rng(0), v2i_camera.Night(0.15, 4.0))
    return day, night


def test_night_frame_is_the_day_frame_times_the_level_plus_lights_and_amplified_noise():
    day, night = render_pair(0)
    expected = np.floor(day.astype(np.float32) * np.float32(0.15))
    light = (night == v2i_camera.HEADLIGHT.astype(np.uint8)).all(axis=2) | \
            (night == v2i_camera.TAILLIGHT.astype(np.uint8)).all(axis=2)
    np.testing.assert_array_equal(night[~light], expected[~light])
    head = (night == v2i_camera.HEADLIGHT.astype(np.uint8)).all(axis=2)
    tail = (night == v2i_camera.TAILLIGHT.astype(np.uint8)).all(axis=2)
    assert head.sum() >= 20 and tail.sum() >= 20  # the target's lamps, a few pixels across
    assert not (day == v2i_camera.HEADLIGHT.astype(np.uint8)).all(axis=2).any()  # no lamps by day
    # the lamps sit on the vehicle's row band and at its two ends (front and rear)
    cols_h, cols_t = np.flatnonzero(head.any(axis=0)), np.flatnonzero(tail.any(axis=0))
    assert abs(np.median(cols_h) - np.median(cols_t)) > 100
    # the sensor noise is amplified by the night gain: +1 by day becomes +4 at night
    day1, night1 = render_pair(1)
    unsat = ~light[..., None] & (night < 200)
    np.testing.assert_array_equal(day1.astype(int) - day.astype(int), np.where(day < 255, 1, 0))
    np.testing.assert_array_equal((night1.astype(int) - night.astype(int))[unsat], 4)


def test_night_draw_is_per_sequence_deterministic_and_leaves_the_traffic_alone():
    cfg = replace(DAY, sequences=400, night_fraction=0.3)
    flags = np.array([v2i_scene.is_night(cfg, s) for s in range(1, 401)])
    assert flags.tolist() == [v2i_scene.is_night(cfg, s) for s in range(1, 401)]
    assert 0.25 < flags.mean() < 0.35
    assert not any(v2i_scene.is_night(replace(cfg, night_fraction=0.0), s) for s in range(1, 401))
    _, a = v2i.plans(replace(DAY, sequences=8))
    _, b = v2i.plans(replace(DAY, sequences=8, night_fraction=0.5))
    assert [p.night for p in a] == [False] * 8 and 0 < sum(p.night for p in b) < 8
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.start, q.start)
        np.testing.assert_array_equal(p.dt, q.dt)
        assert (p.brightness, p.lane) == (q.brightness, q.lane)


def test_night_knobs_are_recipe_settings_with_ranges():
    r = load_recipe(TEACHER, ["data.synth.night_fraction=0.5"])
    assert r.data.synth.night_fraction == 0.5
    with pytest.raises(BeamcError) as e:
        load_recipe(TEACHER, ["data.synth.night_fraction=1.5"])
    assert "night_fraction" in str(e.value)


def test_cli_night_option(tmp_path):
    from tests.test_v2i import beamc

    res = beamc("data", "synth", "deepsense", "--out", str(tmp_path / "n"), "--sequences", "1", "--night", "1.5", "-q")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "night_fraction" in res.stderr
    assert not (tmp_path / "n").exists()
