"""The embedded street simulator: deterministic, physically consistent across frequencies."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from beamc.data.synth.street import C, StreetConfig, fresnel, layout, permittivity, segment_hits_box, trace

SMALL = StreetConfig(length=40.0, width=12.0, grid_spacing=1.0, vehicles=3, scatterers=2)


def test_deterministic_by_seed():
    a, b = trace(SMALL, layout(SMALL), 28e9), trace(SMALL, layout(SMALL), 28e9)
    np.testing.assert_array_equal(a["power"], b["power"])
    other = replace(SMALL, seed=1)
    assert not np.array_equal(layout(other).boxes, layout(SMALL).boxes)


def test_unblocked_los_has_free_space_power_and_geometric_angles():
    cfg = replace(SMALL, vehicles=0, scatterers=0)
    lay = layout(cfg)
    for f in (3.5e9, 28e9):
        m = trace(cfg, lay, f)
        los = m["inter"] == 0
        assert los.sum(axis=1).tolist() == [1] * len(lay.users)  # every user has exactly one LOS path
        d = np.linalg.norm(lay.users - lay.bs, axis=1)
        expected = 20 * np.log10(C / f / (4 * np.pi * d))
        np.testing.assert_allclose(m["power"][los], expected, rtol=1e-5)
        v = lay.users - lay.bs
        np.testing.assert_allclose(m["aod_az"][los], np.degrees(np.arctan2(v[:, 1], v[:, 0])), atol=1e-3)
        # LOS is the strongest path with no blockers
        assert (m["inter"][:, 0] == 0).all()


def test_mmwave_loses_more_to_blockage_and_roughness_than_sub6():
    lay = layout(SMALL)
    lo, hi = trace(SMALL, lay, 3.5e9), trace(SMALL, lay, 28e9)
    assert np.nanmax(hi["blocked"]) >= 1
    # relative to free space, reflections and blocked paths are weaker at 28 GHz
    fs_gap = 20 * np.log10(28 / 3.5)
    nonlos = (lo["inter"] != 0) & ~np.isnan(lo["inter"])
    assert np.nanmean(lo["power"][nonlos]) - np.nanmean(hi["power"][(hi["inter"] != 0) & ~np.isnan(hi["inter"])]) > fs_gap


def test_fresnel_limits():
    eta = permittivity("concrete", 3.5e9)
    assert abs(fresnel(np.array([1.0]), eta, "TE")[0]) < 1  # normal incidence: partial reflection
    assert abs(fresnel(np.array([1e-6]), eta, "TE")[0]) == pytest.approx(1.0, abs=1e-4)  # grazing: total


def test_segment_box_intersection():
    box = np.array([[[1.0, -1.0, 0.0], [2.0, 1.0, 2.0]]])
    assert segment_hits_box(np.array([[0.0, 0.0, 1.0]]), np.array([[3.0, 0.0, 1.0]]), box).tolist() == [[True]]
    assert segment_hits_box(np.array([[0.0, 0.0, 3.0]]), np.array([[3.0, 0.0, 3.0]]), box).tolist() == [[False]]  # over it
    assert segment_hits_box(np.array([[0.0, 0.0, 1.0]]), np.array([[0.9, 0.0, 1.0]]), box).tolist() == [[False]]  # stops short


def test_best_mmwave_beam_tracks_los_angle():
    from beamc.tasks.sub6 import beam_gains, codebook
    from beamc.data.synth import cached_street
    from beamc.data.deepmimo import read_channels

    folder, _, mmw = cached_street(SMALL)
    ch = read_channels(folder, mmw, tx_set=0, tx_index=0, rx_sets=None, n_ant=64, n_subcarriers=512,
                       selected=np.arange(0, 512, 64), bandwidth=500e6)
    best = beam_gains(ch.h, codebook(64, 64)).mean(axis=1).argmax(axis=1)
    lay = layout(SMALL)
    v = lay.users - lay.bs
    geometric = np.arccos(v[:, 1] / np.linalg.norm(v, axis=1)) / np.pi * 64
    los_clear = trace(SMALL, lay, 28e9)
    clear = (los_clear["inter"][:, 0] == 0) & (los_clear["blocked"][:, 0] == 0)
    err = np.abs(best[clear] - geometric[clear])
    assert clear.sum() > 50 and np.mean(err <= 1.5) > 0.9
