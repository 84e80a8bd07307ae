"""Data-free KD: generator losses on hand-made tensors, the generator, the student losses,
teacher metadata saved and used, and a data-free run with the data folder made unreadable."""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from beamc.compress import datafree as dfm
from beamc.compress.datafree import (Generator, Inversion, activation_loss, adversarial_gap, entropy_loss,
                                     generator_loss, layered_metadata_loss, metadata_loss, metadata_stats,
                                     read_metadata, render_objects, render_segments, target_loss, train_generator,
                                     OBJECT_PARAMS, SEGMENT_PARAMS, Site)
from beamc.compress.distillers import ModelOut
from beamc.compress.pipeline import distill, reevaluate
from beamc.errors import BeamcError
from beamc.recipe import recipe_from_dict
from beamc.registry import DISTILLERS, TASKS
from beamc.schema import SchemaError, parse

FEATS = torch.tensor([[1.0, 2.0], [3.0, 6.0]])       # batch mean [2, 4], unbiased var [2, 8]
LOGITS = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])   # softmax [.5, .5] and [.25, .75]
MEAN, VAR = torch.tensor([1.0, 4.0]), torch.tensor([2.0, 4.0])
ENTROPY = (math.log(2) - (0.25 * math.log(0.25) + 0.75 * math.log(0.75))) / 2


def quiet(_: str) -> None:
    pass


# ---------------------------------------------------------------------------- losses
def test_generator_losses_by_hand():
    # ((2-1)^2 + (4-4)^2) / 2 + ((2-2)^2 + (8-4)^2) / 2
    assert float(metadata_loss(FEATS, MEAN, VAR)) == pytest.approx(0.5 + 8.0)
    # -(sqrt(5) + sqrt(45)) / 2
    assert float(activation_loss(FEATS)) == pytest.approx(-2 * math.sqrt(5))
    assert float(entropy_loss(LOGITS)) == pytest.approx(ENTROPY)
    # [B, steps, C] logits: every (sample, step) counts once
    assert float(entropy_loss(LOGITS[None])) == pytest.approx(ENTROPY)


@pytest.mark.parametrize("part, switches", [("weighted", (True, True, True)), ("metadata", (True, False, False)),
                                            ("activation", (False, True, False)), ("entropy", (False, False, True))])
def test_fig3_ablation_recipes_are_the_kl_recipe_with_one_loss_switched(part, switches):
    """Recipes have no include: this keeps the four Fig. 3 recipes on the headline DF-KD KL
    recipe's generator and student stage, so the ablation measures the generator loss alone."""
    from dataclasses import asdict

    from beamc.recipe import load_recipe
    recipes = Path(__file__).resolve().parents[1] / "recipes"
    base, ablation = load_recipe(recipes / "lidar_dfkd_kl.toml"), load_recipe(recipes / f"lidar_dfkd_ablation_{part}.toml")
    d = asdict(ablation.distill)
    assert (d["metadata_loss"], d["activation_loss"], d["entropy_loss"]) == switches
    d.update(metadata_loss=True, activation_loss=True, entropy_loss=True)
    assert d == asdict(base.distill)
    for section in ("task", "data", "teacher", "student", "train", "output"):
        assert asdict(getattr(ablation, section)) == asdict(getattr(base, section)), section


def test_generator_loss_is_eq8_with_switchable_terms():
    full = generator_loss(FEATS, LOGITS, MEAN, VAR, alpha=1e-4, beta=1e-2)
    assert float(full["loss"]) == pytest.approx(8.5 - 1e-4 * 2 * math.sqrt(5) + 1e-2 * ENTROPY, rel=1e-6)
    assert float(full["meta"]) == pytest.approx(8.5) and float(full["ent"]) == pytest.approx(ENTROPY)
    only = lambda **kw: float(generator_loss(FEATS, LOGITS, MEAN, VAR, alpha=1e-4, beta=1e-2, **kw)["loss"])  # noqa: E731
    assert only(use_activation=False, use_entropy=False) == pytest.approx(8.5)
    assert only(use_metadata=False, use_entropy=False) == pytest.approx(-1e-4 * 2 * math.sqrt(5))
    assert only(use_metadata=False, use_activation=False) == pytest.approx(1e-2 * ENTROPY)
    with pytest.raises(BeamcError, match="at least one of metadata_loss, activation_loss, entropy_loss"):
        generator_loss(FEATS, LOGITS, MEAN, VAR, use_metadata=False, use_activation=False, use_entropy=False)


def test_per_step_and_multi_layer_metadata_by_hand():
    # [B=2, T=2, U=1]: step 0 holds 1, 3 (mean 2, var 2), step 1 holds 2, 6 (mean 4, var 8)
    steps = FEATS[:, :, None]
    stats = {"a": (MEAN, VAR)}
    assert float(layered_metadata_loss({"a": steps}, stats)) == pytest.approx(8.5)
    # pooled over the two steps the same numbers would be mean 3, var 14/3: per step is not pooled
    pooled = metadata_loss(steps.reshape(-1, 1), torch.tensor([2.5]), torch.tensor([6.0]))
    assert float(pooled) == pytest.approx(0.5 ** 2 + (14 / 3 - 6) ** 2)
    # two layers add; `meta` replaces eq. 5 inside eq. 8
    two = layered_metadata_loss({"a": steps, "b": FEATS}, {"a": (MEAN, VAR), "b": (MEAN + 1, VAR)})
    assert float(two) == pytest.approx(8.5 + (0.0 + 1.0) / 2 + 8.0)
    full = generator_loss(FEATS, LOGITS, None, None, use_activation=False, use_entropy=False, meta=two)
    assert float(full["loss"]) == pytest.approx(float(two))


def test_temporal_variation_by_hand():
    # one sample, frames [0, 0], [1, 3], [1, 1]: |diffs| 1, 3 then 0, 2 -> mean 6 / 4
    x = torch.tensor([[[0.0, 0.0], [1.0, 3.0], [1.0, 1.0]]])
    assert float(dfm.temporal_variation(x)) == pytest.approx(1.5)
    assert float(dfm.temporal_variation(x.repeat(1, 1, 1)[:, [0, 0, 0]])) == 0.0


def test_adversarial_gap_by_hand():
    t = torch.tensor([[1.0, -2.0], [0.0, 4.0]])
    s = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert float(adversarial_gap(t, s)) == pytest.approx((1 + 2 + 1 + 3) / 4)


def test_metadata_stats_by_layer_and_missing_layer():
    meta = {"layer": "hidden", "mean": [1.0], "var": [2.0], "layers": {"gru": {"mean": [3.0, 4.0], "var": [5.0, 6.0]}}}
    st = metadata_stats(meta, ("hidden", "gru"), torch.device("cpu"))
    assert st["hidden"][0].tolist() == [1.0] and st["gru"][1].tolist() == [5.0, 6.0]
    with pytest.raises(BeamcError, match=r"teacher_metadata.json: no statistics for layer 'embed' .* found hidden, gru"):
        metadata_stats(meta, ("embed",), torch.device("cpu"))


def test_student_losses_by_hand():
    from beamc.tasks.base import Batch

    cfg = DISTILLERS.get("datafree").Config
    s, t = torch.zeros(1, 1, 2), torch.tensor([[[0.0, 5 * math.log(3.0)]]])
    batch = Batch((torch.zeros(1),), torch.zeros(1, 1, dtype=torch.long))
    kl = DISTILLERS.get("datafree")(cfg(student_loss="kl", temperature=5.0), None).loss(batch, ModelOut(s), ModelOut(t))
    # T^2 KL([.25, .75] || [.5, .5]) at T = 5
    assert float(kl["loss"]) == pytest.approx(25 * (0.25 * math.log(0.5) + 0.75 * math.log(1.5)), rel=1e-5)
    mse = DISTILLERS.get("datafree")(cfg(student_loss="mse"), None).loss(batch, ModelOut(s), ModelOut(t))
    assert float(mse["loss"]) == pytest.approx((5 * math.log(3.0)) ** 2 / 2)
    # KD-MSE: gamma MSE + (1 - gamma) CE; CE of uniform logits over 2 classes is ln 2
    from beamc.compress.losses import cross_entropy

    kdm = DISTILLERS.get("kd_mse")(DISTILLERS.get("kd_mse").Config(alpha=0.7), cross_entropy)
    out = kdm.loss(batch, ModelOut(s), ModelOut(t))
    assert float(out["loss"]) == pytest.approx(0.7 * (5 * math.log(3.0)) ** 2 / 2 + 0.3 * math.log(2), rel=1e-6)


@pytest.mark.parametrize("output", ["tanh", "relu"])
def test_generator_shape_range_and_padding(output):
    torch.manual_seed(0)
    g = Generator(500, 64, 8, 216, 3, 0.0, 4.0, output)
    assert sum(p.numel() for p in g.parameters()) == 500 * 64 + 64 + 64 * 8 * 216 + 8 * 216
    g.net[2].bias.data.fill_(50.0 if output == "relu" else 0.0)   # drive the relu variant past the maximum
    with torch.no_grad():
        x = g(torch.randn(5, 500))
    assert x.shape == (5, 11, 216) and not x[:, 8:].any()
    assert float(x.min()) >= 0.0 and float(x.max()) <= 4.0
    if output == "relu":
        assert float(x[:, :8].min()) == 4.0          # clamped, not wrapped
    else:
        assert 0.0 < float(x[:, :8].min()) and float(x[:, :8].max()) < 4.0


def segment_params(centre: float, drift: float, half_width: float, rng: float, features: int = 216, frames: int = 8,
                   hi: float = 4.0, presence: float = 20.0) -> torch.Tensor:
    """Unsquashed SEGMENT_PARAMS that render_segments maps back to these values (lo = 0)."""
    return torch.tensor([math.log(centre / (features - centre)), math.atanh(drift * frames / features),
                         math.log((half_width - 0.5) / (features / 4 - half_width + 0.5)), math.log(rng / (hi - rng)),
                         0.0, presence])


def test_segments_render_a_moving_run_of_bins_at_its_range():
    p = segment_params(centre=100.0, drift=2.0, half_width=10.5, rng=2.0)[None, None]     # [B=1, S=1, 6]
    x = render_segments(p, 8, 216, torch.tensor(0.0), torch.tensor(4.0))[0]
    assert x.shape == (8, 216)
    for f in range(8):
        c = 100 + 2 * f                                   # the run's centre moves 2 bins per frame
        inside, outside = x[f, c - 8:c + 9], torch.cat([x[f, :c - 16], x[f, c + 17:]])
        assert torch.allclose(inside, torch.full_like(inside, 2.0), atol=0.02)
        assert float(outside.max()) < 1e-3
        assert float((x[f] * torch.arange(216)).sum() / x[f].sum()) == pytest.approx(c, abs=1e-3)
    # a second, nearer run elsewhere adds its own bins; an absent one (presence -> 0) draws nothing
    two = torch.stack([segment_params(100.0, 0.0, 10.5, 2.0), segment_params(30.0, 0.0, 5.5, 1.0),
                       segment_params(180.0, 0.0, 5.5, 3.0, presence=-20.0)])[None]
    y = render_segments(two, 8, 216, torch.tensor(0.0), torch.tensor(4.0))[0]
    assert torch.allclose(y[:, 27:34], torch.full((8, 7), 1.0), atol=0.02)
    assert torch.allclose(y[:, 92:109], torch.full((8, 17), 2.0), atol=0.02)
    assert float(y[:, 170:].max()) < 1e-3
    # segment_max_drift bounds the motion: the fastest possible drift moves the run 3 bins per frame
    fast = segment_params(60.0, 0.0, 5.5, 2.0)
    fast[1] = 50.0                                        # tanh -> 1: the largest drift allowed
    z = render_segments(fast[None, None], 8, 216, torch.tensor(0.0), torch.tensor(4.0), max_drift=3.0)[0]
    centroids = (z * torch.arange(216)).sum(dim=1) / z.sum(dim=1)
    assert torch.allclose(centroids.diff(), torch.full((7,), 3.0), atol=1e-3)


def test_occlude_draws_the_nearest_covering_segment_with_hard_edges():
    # A at range 2 covers bins 90..110, B at range 1 covers 105..125: a ray stops at the first surface
    two = torch.stack([segment_params(100.0, 0.0, 10.5, 2.0, presence=3.0),
                       segment_params(115.0, 0.0, 10.5, 1.0, presence=3.0)])[None].requires_grad_(True)
    lo, hi = torch.tensor(0.0), torch.tensor(4.0)
    x = render_segments(two, 8, 216, lo, hi, occlude=True)[0]
    expected = torch.zeros(8, 216)
    expected[:, 90:105], expected[:, 105:126] = 2.0, 1.0
    assert torch.allclose(x, expected, atol=1e-4)                 # exact zeros off the runs, full range up to the edge
    # the blend averages the overlap into a range neither surface has and tapers the edges
    blend = render_segments(two.detach(), 8, 216, lo, hi)[0]
    assert float(blend[0, 107]) == pytest.approx(1.5, abs=0.05) and float(blend[0, 90]) < 1.9
    # straight-through: every parameter that shapes the scan still gets a gradient
    (x * torch.linspace(-1.0, 1.0, 216)).sum().backward()
    grad = two.grad[0]                                           # [S, 6]
    for name in ("centre", "half_width", "range", "presence"):
        k = SEGMENT_PARAMS.index(name)
        assert torch.isfinite(grad[:, k]).all() and bool((grad[:, k].abs() > 1e-6).all()), name


def test_occlude_is_a_recipe_key_that_reaches_the_generator():
    config = DISTILLERS.get("datafree").Config
    meta = {"layout": {"frames": 8, "features": 216, "pad": 3}, "input_min": 0.0, "input_max": 4.0}
    occluding = parse(config, {"generator_output": "segments", "segment_render": "occlude"}, "distill")
    assert dfm.build_generator(occluding, meta).occlude and not dfm.build_generator(config(), meta).occlude
    with pytest.raises(SchemaError, match=r'distill.segment_render: expected one of "blend", "occlude", found \'paint\''):
        parse(config, {"segment_render": "paint"}, "distill")


def test_a_tilted_segment_changes_range_across_its_run_and_occlusion_makes_a_corner():
    lo, hi = torch.tensor(0.0), torch.tensor(4.0)
    tilt = lambda slope: torch.tensor([math.atanh(slope / 0.02)])                 # max_slope 0.02, fraction per bin
    # one segment at range 2 around bin 100, tilted by 0.01 of its range per bin: 2 + 0.02 (b - 100)
    p = torch.cat([segment_params(100.0, 0.0, 10.5, 2.0), tilt(0.01)])[None, None]   # [B=1, S=1, 7]
    x = render_segments(p, 8, 216, lo, hi, occlude=True, max_slope=0.02)[0]
    b = torch.arange(90, 111, dtype=torch.float32)
    assert torch.allclose(x[:, 90:111], (2.0 + 0.02 * (b - 100)).expand(8, -1), atol=1e-4)
    assert float(x[:, :90].abs().max()) == 0.0 and float(x[:, 111:].abs().max()) == 0.0
    # two tilted segments crossing: each bin holds the nearer of the two surfaces where both cover it
    # (A: 2 - 0.02 (b - 95) over 85..105, B: 2 + 0.02 (b - 105) over 95..115), not their average
    corner = torch.stack([torch.cat([segment_params(95.0, 0.0, 10.5, 2.0), tilt(-0.01)]),
                          torch.cat([segment_params(105.0, 0.0, 10.5, 2.0), tilt(0.01)])])[None]
    y = render_segments(corner, 8, 216, lo, hi, occlude=True, max_slope=0.02)[0]
    bins = torch.arange(85, 116, dtype=torch.float32)
    inf = torch.full_like(bins, float("inf"))
    a = torch.where(bins <= 105, 2.0 - 0.02 * (bins - 95), inf)
    b = torch.where(bins >= 95, 2.0 + 0.02 * (bins - 105), inf)
    assert torch.allclose(y[0, 85:116], torch.minimum(a, b), atol=1e-4)
    assert float(y[0, 95]) == pytest.approx(1.8, abs=1e-4) and float(y[0, 100]) == pytest.approx(1.9, abs=1e-4)
    # the generator grows a seventh output per segment only when the recipe asks for tilts
    config = DISTILLERS.get("datafree").Config
    meta = {"layout": {"frames": 8, "features": 216, "pad": 3}, "input_min": 0.0, "input_max": 4.0}
    tilted = dfm.build_generator(parse(config, {"generator_output": "segments", "segment_max_slope": 0.025}, "distill"), meta)
    flat = dfm.build_generator(parse(config, {"generator_output": "segments"}, "distill"), meta)
    assert (tilted.net[-1].out_features, flat.net[-1].out_features) == (4 * 7, 4 * 6)
    with pytest.raises(BeamcError, match=r"render_segments: expected 7 parameters per segment with max_slope = 0.02, found 6"):
        render_segments(p[..., :6], 8, 216, lo, hi, max_slope=0.02)


def object_params(position: float, speed: float, distance: float, length: float, width: float, presence: float = 20.0,
                  site: Site = Site(), hi: float = 4.0) -> torch.Tensor:
    """Unsquashed OBJECT_PARAMS that render_objects maps back to these values (m, m/s)."""
    band = lambda y, pair: math.log((y - pair[0]) / (pair[1] - y))               # noqa: E731
    return torch.tensor([math.atanh(position / (hi / site.range_scale)), math.atanh(speed / (site.max_speed_kmh / 3.6)),
                         band(distance, site.distance_m), band(length, site.length_m), band(width, site.width_m), presence])


def bearing_bins(lo_deg: float, hi_deg: float, margin: float = 0.25) -> torch.Tensor:
    """Indices of the 216 lidar_SCR bins (bin 0 at +90 deg) whose centre bearing lies in [lo, hi]
    by at least `margin` bins (a centre on an edge is half covered, and either answer is right);
    a negative margin widens the interval instead."""
    bearing, pad = 90.0 - (torch.arange(216) + 0.5) * 180.0 / 216, margin * 180.0 / 216
    return torch.nonzero((bearing >= lo_deg + pad) & (bearing <= hi_deg - pad)).flatten()


def test_objects_render_a_box_on_the_street_as_the_sensor_sees_it():
    lo, hi, site = torch.tensor(0.0), torch.tensor(4.0), Site()
    bearing = torch.deg2rad(90.0 - (torch.arange(216) + 0.5) * 180.0 / 216)
    # a 4.5 x 1.8 m car, near face 5 m across the street, centre 3 m along it, driving +x at 4 m/s
    car = object_params(3.0, 4.0, 5.0, 4.5, 1.8, presence=3.0)[None, None].requires_grad_(True)
    x = render_objects(car, 8, 216, lo, hi, site)[0]
    for f in (0, 7):
        centre = 3.0 + 4.0 * 0.111 * f
        back = centre - 2.25                                # its -x end, which faces the sensor
        face = bearing_bins(math.degrees(math.atan2(back, 5.0)), math.degrees(math.atan2(centre + 2.25, 5.0)))
        end = bearing_bins(math.degrees(math.atan2(back, 6.8)), math.degrees(math.atan2(back, 5.0)))
        # the near face at 5 / cos(bearing), the end at back / sin(bearing), both / 10; nothing else returns
        assert torch.allclose(x[f, face], 0.5 / torch.cos(bearing[face]), atol=1e-4)
        assert torch.allclose(x[f, end], 0.1 * back / torch.sin(bearing[end]), atol=1e-4)
        rest = torch.ones(216, dtype=torch.bool)
        rest[bearing_bins(math.degrees(math.atan2(back, 6.8)), math.degrees(math.atan2(centre + 2.25, 5.0)), -0.25)] = False
        assert float(x[f, rest].detach().abs().max()) == 0.0
    # straight-through: the same scan without gradients, and every parameter learns with them
    with torch.no_grad():
        assert torch.allclose(render_objects(car.detach(), 8, 216, lo, hi, site)[0], x.detach(), atol=1e-6)
    (x * torch.linspace(-1.0, 1.0, 216)).sum().backward()
    grad = car.grad[0, 0]
    for name in OBJECT_PARAMS:
        assert math.isfinite(float(grad[OBJECT_PARAMS.index(name)])) and abs(float(grad[OBJECT_PARAMS.index(name)])) > 1e-6, name


def test_objects_occlude_each_other_and_vanish_past_the_sensors_reach():
    lo, hi, site = torch.tensor(0.0), torch.tensor(4.0), Site()
    bearing = torch.deg2rad(90.0 - (torch.arange(216) + 0.5) * 180.0 / 216)
    # a pedestrian 3 m away straight ahead hides part of a bus on the far lane; a third object is absent
    scene = torch.stack([object_params(0.0, 0.0, 12.0, 10.0, 2.4), object_params(0.0, 0.0, 3.0, 0.5, 0.5),
                         object_params(-10.0, 0.0, 4.0, 4.0, 2.0, presence=-20.0)])[None]
    x = render_objects(scene, 8, 216, lo, hi, site)[0]
    ped = bearing_bins(-math.degrees(math.atan2(0.25, 3.0)), math.degrees(math.atan2(0.25, 3.0)))
    bus = bearing_bins(-math.degrees(math.atan2(5.0, 12.0)), math.degrees(math.atan2(5.0, 12.0)))
    assert torch.allclose(x[:, ped], (0.3 / torch.cos(bearing[ped])).expand(8, -1), atol=1e-4)
    ped_edge = math.degrees(math.atan2(0.25, 3.0))
    shown = bus[~torch.isin(bus, bearing_bins(-ped_edge, ped_edge, -0.25))]
    assert torch.allclose(x[:, shown], (1.2 / torch.cos(bearing[shown])).expand(8, -1), atol=1e-4)
    edge = math.degrees(math.atan2(5.0, 12.0))
    assert not x[:, bearing_bins(-90.0, -edge, -0.25)].any() and not x[:, bearing_bins(edge, 90.0, -0.25)].any()
    # (the absent car at -10 m would have returned at bearings -72 to -53 degrees)
    # a bus 31.75-42.25 m along the street, 12.9 m across it, is 34.3-44.2 m away: past the 40 m reach
    # (hi 4.0 at 1/10) it draws nothing, the bins nearer than that show its near face
    bus_far = render_objects(object_params(37.0, 0.0, 12.9, 10.5, 2.4)[None, None], 8, 216, lo, hi, site)[0, 0]
    rng = 12.9 / torch.cos(bearing)
    on_face = bearing_bins(math.degrees(math.atan2(31.75, 12.9)), math.degrees(math.atan2(42.25, 12.9)))
    inside, past = on_face[rng[on_face] < 39.5], on_face[rng[on_face] > 40.5]
    assert len(inside) >= 2 and len(past) >= 1
    assert torch.allclose(bus_far[inside], rng[inside] / 10, atol=1e-4) and not bus_far[past].any()


def test_objects_generator_takes_its_site_from_the_recipe():
    config = DISTILLERS.get("datafree").Config
    meta = {"layout": {"frames": 8, "features": 216, "pad": 3}, "input_min": 0.0, "input_max": 4.0}
    cfg = parse(config, {"generator_output": "objects", "generator_segments": 3, "site_distance_m": [4.0, 9.0],
                         "site_max_speed_kmh": 30.0}, "distill")
    g = dfm.build_generator(cfg, meta)
    assert g.site == Site(distance_m=(4.0, 9.0), max_speed_kmh=30.0)
    assert g.net[-1].out_features == 3 * len(OBJECT_PARAMS)
    with torch.no_grad():
        x = g(torch.randn(16, 500))
    assert x.shape == (16, 11, 216) and not x[:, 8:].any() and float(x.min()) >= 0.0 and float(x.max()) <= 4.0
    with pytest.raises(BeamcError, match=r"site.distance_m: expected \[min, max\] with 0 < min <= max, found \[9.0, 4.0\]"):
        dfm.build_generator(parse(config, {"generator_output": "objects", "site_distance_m": [9.0, 4.0]}, "distill"), meta)
    with pytest.raises(SchemaError, match=r"distill.scan_fov_deg"):
        parse(config, {"scan_fov_deg": 270.0}, "distill")


def test_realism_benchmark_scan_statistics_and_auroc_by_hand():
    # benchmarks/lidar_dfkd_realism.py: the shape statistics a real scan is compared on
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "lidar_dfkd_realism.py"
    spec = importlib.util.spec_from_file_location("lidar_dfkd_realism", path)
    realism = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(realism)
    x = np.zeros((1, 2, 10))
    x[0, 0, 1:3] = [1.0, 3.0]          # frame 0: one run of 2 bins, ranges 1 and 3 (std 1)
    x[0, 0, 9] = 2.0                   # and a run of 1 bin at the scan's end, which must not join frame 1's start
    x[0, 1, 0] = 2.0                   # frame 1: one run of 1 bin
    s = realism.scan_statistics(x)
    assert s["returning bins"] == pytest.approx(4 / 20) and s["scans with no return"] == 0.0
    assert (s["1 run"], s["2 runs"], s["3+ runs"]) == (0.5, 0.5, 0.0)
    assert s["run width, median bins"] == 1.0 and s["range std in a run, median"] == pytest.approx(1.0)
    assert s["mean range returned"] == pytest.approx(2.0)
    assert s["mean abs frame-to-frame change"] == pytest.approx((2 + 1 + 3 + 2) / 10)
    assert realism.auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert realism.auroc(np.array([1.0]), np.array([1.0])) == 0.5     # a tie counts half


def test_segments_generator_is_two_layers_into_the_scan_layout():
    torch.manual_seed(0)
    g = Generator(500, 64, 8, 216, 3, 0.0, 4.0, "segments", segments=4)
    assert sum(p.numel() for p in g.parameters()) == 500 * 64 + 64 + 64 * 4 * 6 + 4 * 6
    with torch.no_grad():
        x = g(torch.randn(5, 500))
    assert x.shape == (5, 11, 216) and not x[:, 8:].any()
    assert float(x.min()) >= 0.0 and float(x.max()) <= 4.0


def test_target_loss_is_the_cross_entropy_of_the_first_step():
    # [B=2, steps=2, C=3]; only step 0 counts (the later steps hold values that would dominate)
    logits = torch.tensor([[[0.0, 0.0, 0.0], [90.0, 0.0, 0.0]],
                           [[0.0, math.log(3.0), 0.0], [0.0, 0.0, 90.0]]])
    targets = torch.tensor([1, 1])
    # sample 0: uniform over 3 -> ln 3; sample 1: p(1) = 3 / 5 -> -ln 0.6
    assert float(target_loss(logits, targets)) == pytest.approx((math.log(3.0) - math.log(0.6)) / 2)
    # [B, C] logits (a task with one output step)
    assert float(target_loss(logits[:, 0], targets)) == pytest.approx((math.log(3.0) - math.log(0.6)) / 2)


def test_conditional_generator_draws_uniform_targets_and_depends_on_them():
    torch.manual_seed(0)
    g = Generator(16, 8, 2, 5, 1, 0.0, 4.0, "relu", classes=3)
    assert g.net[0].in_features == 16 + 3
    x, y = g.sample_with_targets(3000, torch.Generator().manual_seed(1))
    assert x.shape == (3000, 3, 5) and y.shape == (3000,)
    assert all(900 < c < 1100 for c in np.bincount(y.numpy(), minlength=3))
    # the noise comes first from the torch.Generator, then the targets
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(3000, 16, generator=gen)
    assert torch.equal(y, torch.randint(3, (3000,), generator=gen))
    with torch.no_grad():
        assert torch.equal(x, g(z, y))
        # same noise, another target: another sample (the one-hot input has its own weights)
        assert not torch.equal(g(z[:4], torch.tensor([0, 0, 0, 0])), g(z[:4], torch.tensor([1, 1, 1, 1])))
    with pytest.raises(BeamcError, match="conditional generator \\(3 classes\\): forward needs the target classes"):
        g(z[:2])
    # unconditional (the paper): no targets, and the same samples as plain noise through the network
    torch.manual_seed(0)
    u = Generator(16, 8, 2, 5, 1, 0.0, 4.0, "relu")
    xu, yu = u.sample_with_targets(4, torch.Generator().manual_seed(1))
    assert yu is None and torch.equal(xu, u(torch.randn(4, 16, generator=torch.Generator().manual_seed(1))))


# ---------------------------------------------------------------------- pipeline
TINY_SYNTH = {"sequences": 5, "min_frames": 14, "max_frames": 18, "seed": 5}


def tiny_raw(name: str, method: str = "none", data: dict | None = None, **distill) -> dict:
    raw = {"name": name, "task": {"name": "lidar"},
           "data": data or {"source": "synth", "synth": TINY_SYNTH, "train_fraction": 0.6, "val_fraction": 0.2},
           "teacher": {"model": "lidar_gru", "args": {"hidden_size": 12, "embed_dim": 8}},
           "distill": {"method": method, **distill},
           "train": {"epochs": 1, "batch_size": 16, "device": "cpu", "seed": 0},
           "output": {"plots": False}}
    if method != "none":
        raw["student"] = {"model": "lidar_gru", "args": {"hidden_size": 4, "embed_dim": 8}}
    return raw


DF = {"generator_steps": 6, "generator_batch_size": 8, "samples": 40, "noise_dim": 16, "generator_hidden": 8}


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lidar-teacher")
    raw = tiny_raw("tiny_lidar_teacher")
    raw["train"]["epochs"] = 2
    return distill(recipe_from_dict(raw), out=out / "runs", progress=False, log=quiet)


def test_metadata_is_saved_next_to_the_teacher(teacher_run):
    from beamc.compress.modeling import load_model

    run = teacher_run.path
    caches = list((run.parent / "teachers").iterdir())
    assert len(caches) == 1 and (caches[0] / "teacher_metadata.json").exists()
    meta = read_metadata(run / "teacher_metadata.json")
    assert meta == read_metadata(caches[0] / "teacher_metadata.json")
    # recompute: the GRU's final hidden state over the training windows
    raw = tiny_raw("x")
    r = recipe_from_dict(raw)
    data = TASKS.get("lidar").prepare(r.task, r.data, progress=False)
    (x,), _ = data.arrays("train")
    teacher, _ = load_model(run / "teacher.pt")
    with torch.no_grad():
        out, h = teacher.gru(teacher.embed(torch.from_numpy(x)))
    f = h[-1].double().numpy()
    assert meta["layer"] == "hidden" and meta["num_samples"] == len(x) == data.split_size("train")
    np.testing.assert_allclose(meta["mean"], f.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(meta["var"], f.var(axis=0, ddof=1), rtol=1e-4, atol=1e-6)
    assert meta["input_min"] == 0.0 and meta["input_max"] == pytest.approx(float(x[:, :8].max()))
    assert meta["layout"] == {"frames": 8, "features": 216, "pad": 3}
    # per-step statistics: the GRU output at every step and the input embedding, T x U each
    e = teacher.embed(torch.from_numpy(x)).detach().double().reshape(len(x), -1).numpy()
    g = out.double().reshape(len(x), -1).numpy()
    assert len(meta["layers"]["gru"]["mean"]) == 11 * 12 and len(meta["layers"]["embed"]["var"]) == 11 * 8
    np.testing.assert_allclose(meta["layers"]["gru"]["mean"], g.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(meta["layers"]["embed"]["var"], e.var(axis=0, ddof=1), rtol=1e-4, atol=1e-6)
    # per predicted beam: the GRU output over the windows the teacher gives that beam at that step;
    # the last 4 steps by their own prediction, the 7 before by the current beam's (step t)
    by = meta["by_class"]
    assert (by["layer"], by["steps"], by["min_count"]) == ("gru", 11, 10)
    beams = teacher.fc(out[:, -4:]).argmax(-1).numpy()                 # [N, 4]
    count = np.array(by["count"])
    assert count.shape == (64, 11) and (count.sum(axis=0) == len(x)).all()
    assert (count[:, 10] == np.bincount(beams[:, 3], minlength=64)).all()
    assert (count[:, 0] == np.bincount(beams[:, 0], minlength=64)).all()
    mean, var = np.array(by["mean"]).reshape(64, 11, 12), np.array(by["var"]).reshape(64, 11, 12)
    g3 = out.double().numpy()
    overall = g3.var(axis=0, ddof=1)
    c = int(np.bincount(beams[:, 3]).argmax())                          # a beam with enough windows
    sel = g3[beams[:, 3] == c, 10]
    np.testing.assert_allclose(mean[c, 10], sel.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var[c, 10], np.maximum(sel.var(axis=0, ddof=1), 0.01 * overall[10]), rtol=1e-5, atol=1e-9)
    rare = int(np.flatnonzero(count[:, 0] < 10)[0])                     # too few windows: the overall statistics
    np.testing.assert_allclose(mean[rare, 0], g3[:, 0].mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var[rare, 0], overall[0], rtol=1e-5, atol=1e-9)


def test_metadata_without_layers_is_remeasured_by_a_run_with_data(teacher_run, tmp_path):
    """A teacher cached before the per-layer statistics existed gets them on its next run
    that has the data at hand (a data-free run cannot, and says which layer is missing)."""
    import shutil

    out = tmp_path / "runs"
    shutil.copytree(teacher_run.path.parent / "teachers", out / "teachers")
    cache = next((out / "teachers").iterdir()) / "teacher_metadata.json"
    old = json.loads(cache.read_text())
    cache.write_text(json.dumps({k: v for k, v in old.items() if k != "layers"}))
    df = tiny_raw("df", "datafree", **DF, metadata_layers=["hidden", "gru"])
    kd = tiny_raw("kd", "ikd")
    for raw in (df, kd):
        raw["train"]["epochs"] = 2   # the fixture teacher's training, so both find its cache entry
    df["output"]["evaluate"] = False
    with pytest.raises(BeamcError, match=r"no statistics for layer 'gru'"):
        distill(recipe_from_dict(df), out=out, progress=False, log=quiet)
    distill(recipe_from_dict(kd), out=out, progress=False, log=quiet)
    assert json.loads(cache.read_text())["layers"] == old["layers"]
    run = distill(recipe_from_dict(df), out=out, progress=False, log=quiet)
    assert (run.path / "student.pt").exists()
    # the same for a teacher cached before the per-beam statistics existed
    cache.write_text(json.dumps({k: v for k, v in old.items() if k != "by_class"}))
    distill(recipe_from_dict(kd), out=out, progress=False, log=quiet)
    assert json.loads(cache.read_text())["by_class"] == old["by_class"]


def test_adversarial_step_is_eq8_minus_the_weighted_gap(teacher_run):
    """One generator update during the student stage: the logged gap is the teacher-student
    logit gap on the batch the generator drew, and the update follows L_G - w * gap."""
    from beamc.compress.modeling import build_model, load_model

    teacher, _ = load_model(teacher_run.path / "teacher.pt")
    meta = read_metadata(teacher_run.path / "teacher_metadata.json")
    cfg = DISTILLERS.get("datafree").Config(**DF, metadata_layers=("hidden", "gru", "embed"), student_samples="fresh",
                                            adversarial=0.5, smoothness=0.25)
    torch.manual_seed(0)
    student = build_model("lidar_gru", {"hidden_size": 4, "embed_dim": 8}).eval()

    def one_step(w):
        torch.manual_seed(1)
        gen = dfm.build_generator(cfg, meta)
        inv = Inversion(gen, teacher, meta, cfg, torch.device("cpu"))
        before = [p.detach().clone() for p in gen.parameters()]
        x = gen.sample(cfg.generator_batch_size, torch.Generator().manual_seed(3))
        losses = inv.step(torch.Generator().manual_seed(3), student, w)
        inv.close()
        return x, losses, [p.detach() - b for p, b in zip(gen.parameters(), before)]

    x, losses, moved = one_step(0.5)
    # eq. 8 with the three-layer metadata loss, plus the weighted smoothness prior on the 8 real frames
    eq8 = losses["meta"] + cfg.alpha * losses["act"] + cfg.beta * losses["ent"]
    assert float(losses["loss"].detach()) == pytest.approx(float((eq8 + 0.25 * losses["tv"]).detach()), rel=1e-6)
    assert float(losses["tv"].detach()) == pytest.approx(float(dfm.temporal_variation(x[:, :8].detach())), rel=1e-6)
    with torch.no_grad():
        assert float(losses["gap"].detach()) == pytest.approx(float(adversarial_gap(teacher(x), student(x))), rel=1e-5)
    _, plain, moved0 = one_step(0.0)
    assert "gap" not in plain and float(plain["loss"].detach()) == pytest.approx(float(losses["loss"].detach()), rel=1e-6)
    # the first Adam step moves each weight by about lr * sign(grad): the gap term changes some signs
    assert any(not torch.equal(a, b) for a, b in zip(moved, moved0))


def test_target_step_adds_the_weighted_cross_entropy(teacher_run):
    """distill.targets: the generator is conditional on the teacher's 64 beams and its loss is
    eq. 8 plus the weight x the teacher's cross-entropy towards the drawn targets."""
    from beamc.compress.modeling import load_model

    teacher, _ = load_model(teacher_run.path / "teacher.pt")
    meta = read_metadata(teacher_run.path / "teacher_metadata.json")
    cfg = DISTILLERS.get("datafree").Config(**DF, targets=0.5)
    assert dfm.teacher_classes(teacher, meta) == 64
    torch.manual_seed(1)
    gen = dfm.build_generator(cfg, meta, dfm.teacher_classes(teacher, meta))
    assert gen.classes == 64
    with pytest.raises(BeamcError, match="distill.targets = 0.5 needs the teacher's number of classes, found 0"):
        dfm.build_generator(cfg, meta)
    assert dfm.build_generator(DISTILLERS.get("datafree").Config(**DF), meta, 64).classes == 0
    inv = Inversion(gen, teacher, meta, cfg, torch.device("cpu"))
    with torch.no_grad():
        x, y = gen.sample_with_targets(cfg.generator_batch_size, torch.Generator().manual_seed(3))
        expect = float(target_loss(teacher(x), y))
    losses = inv.step(torch.Generator().manual_seed(3))
    inv.close()
    eq8 = losses["meta"] + cfg.alpha * losses["act"] + cfg.beta * losses["ent"]
    assert float(losses["target"].detach()) == pytest.approx(expect, rel=1e-5)
    assert float(losses["loss"].detach()) == pytest.approx(float((eq8 + 0.5 * losses["target"]).detach()), rel=1e-6)


def test_class_metadata_loss_adds_the_predicted_beams_distance_to_eq8(teacher_run):
    """distill.class_metadata_loss = w: the generator's loss is eq. 8 plus w x the batch mean of
    class_atypicality on the teacher's GRU outputs against the saved per-beam statistics."""
    from beamc.compress.modeling import load_model

    teacher, _ = load_model(teacher_run.path / "teacher.pt")
    meta = read_metadata(teacher_run.path / "teacher_metadata.json")
    cfg = DISTILLERS.get("datafree").Config(**DF, class_metadata_loss=0.3)
    torch.manual_seed(1)
    gen = dfm.build_generator(cfg, meta)
    inv = Inversion(gen, teacher, meta, cfg, torch.device("cpu"))
    layer, mean, var = dfm.class_metadata_stats(meta, torch.device("cpu"))
    with torch.no_grad():
        x = gen.sample(cfg.generator_batch_size, torch.Generator().manual_seed(3))
        out, _ = teacher.gru(teacher.embed(x))
        expect = float(dfm.class_atypicality(out, teacher(x), mean, var).mean())
    losses = inv.step(torch.Generator().manual_seed(3))
    inv.close()
    eq8 = losses["meta"] + cfg.alpha * losses["act"] + cfg.beta * losses["ent"]
    assert layer == "gru" and float(losses["class"].detach()) == pytest.approx(expect, rel=1e-5)
    assert float(losses["loss"].detach()) == pytest.approx(float((eq8 + 0.3 * losses["class"]).detach()), rel=1e-6)
    off = Inversion(dfm.build_generator(DISTILLERS.get("datafree").Config(**DF), meta), teacher, meta,
                    DISTILLERS.get("datafree").Config(**DF), torch.device("cpu"))
    assert "class" not in off.step(torch.Generator().manual_seed(3))
    off.close()


@pytest.mark.parametrize("schedule, final_lr", [("constant", 2e-3), ("student", 0.0)])
def test_adversarial_generator_follows_the_student_schedule(teacher_run, tmp_path, monkeypatch, schedule, final_lr):
    """adversarial_schedule = "student": the generator's Adam follows the student's cosine
    schedule and ends at 0 with it; "constant" keeps generator_lr to the end."""
    seen: list[float] = []
    close = Inversion.close

    def record(self):
        seen.append(self.opt.param_groups[0]["lr"])
        close(self)

    monkeypatch.setattr(Inversion, "close", record)
    raw = tiny_raw("df", "datafree", **DF, student_samples="fresh", adversarial=0.5, generator_lr=2e-3,
                   adversarial_schedule=schedule, targets=0.1)
    raw["teacher"]["checkpoint"] = str(teacher_run.path / "teacher.pt")
    raw["train"].update(epochs=2, scheduler="cosine")
    raw["output"]["evaluate"] = False
    run = distill(recipe_from_dict(raw), out=tmp_path / "runs", progress=False, log=quiet)
    # train_generator's Inversion closes first (step 1: constant), then the student stage's
    assert seen[0] == pytest.approx(2e-3) and seen[-1] == pytest.approx(final_lr, abs=1e-12)
    state = torch.load(run.path / "generator_final.pt", weights_only=True)
    assert state["net.0.weight"].shape == (DF["generator_hidden"], DF["noise_dim"] + 64)   # conditional


def test_mix_samples_by_hand():
    x = torch.tensor([[0.0, 0.0], [2.0, 4.0], [10.0, 10.0], [1.0, 1.0]])
    noise = torch.Generator().manual_seed(0)
    partner = torch.randint(4, (2,), generator=noise)
    lam = torch.rand(2, 1, generator=noise)
    out = dfm.mix_samples(x, 0.5, torch.Generator().manual_seed(0))
    # the first half mixed with its drawn partners, the rest untouched
    assert torch.allclose(out[:2], lam * x[:2] + (1 - lam) * x[partner]) and torch.equal(out[2:], x[2:])
    # every mixture lies on the segment between its two samples: sample 0 = [0, 0], so out[0] = (1 - lam) x[partner]
    assert torch.allclose(out[0], (1 - lam[0]) * x[partner[0]])
    assert torch.equal(dfm.mix_samples(x, 0.0, torch.Generator().manual_seed(0)), x)
    assert torch.equal(dfm.mix_samples(x, 0.1, torch.Generator().manual_seed(0)), x)   # round(0.4) = 0 samples


def test_atypicality_by_hand():
    # units with mean [1, 4] and variance [2, 4]: sample [1, 4] is at the mean, [3, 0] is
    # ((3-1)^2 / 2 + (0-4)^2 / 4) / 2 = (2 + 4) / 2 = 3
    score = dfm.atypicality(torch.tensor([[1.0, 4.0], [3.0, 0.0]]), MEAN, VAR)
    assert score.tolist() == pytest.approx([0.0, 3.0])


@pytest.mark.parametrize("key, value", [("mixup", 0.5), ("keep", 0.5)])
def test_sample_options_need_fresh_samples(teacher_run, tmp_path, key, value):
    raw = tiny_raw("df", "datafree", **DF, **{key: value})
    raw["teacher"]["checkpoint"] = str(teacher_run.path / "teacher.pt")
    raw["output"]["evaluate"] = False
    # refused when the recipe is read, before a teacher is trained or a run folder made
    with pytest.raises(SchemaError, match=rf'distill.{key} = {value} needs distill.student_samples = "fresh", found "pool"') as e:
        distill(recipe_from_dict(raw), out=tmp_path / "runs", progress=False, log=quiet)
    assert e.value.path == f"distill.{key}" and not (tmp_path / "runs").exists()


def test_keep_trains_on_the_most_typical_samples(teacher_run, tmp_path, monkeypatch):
    """distill.keep = 0.25: every student batch is the quarter of 4x as many generator samples
    whose teacher hidden state is closest to the saved statistics."""
    seen: list[torch.Tensor] = []
    real = dfm.atypicality

    def spy(f, m, v):
        out = real(f, m, v)
        seen.append(out)
        return out

    monkeypatch.setattr(dfm, "atypicality", spy)
    raw = tiny_raw("df", "datafree", **DF, student_samples="fresh", keep=0.25, mixup=0.5)
    raw["teacher"]["checkpoint"] = str(teacher_run.path / "teacher.pt")
    raw["output"]["evaluate"] = False
    run = distill(recipe_from_dict(raw), out=tmp_path / "runs", progress=False, log=quiet)
    assert (run.path / "student.pt").exists()
    # 40 samples per epoch in batches of 16: 16, 16, 8 kept of 64, 64, 32 drawn
    assert [len(s) for s in seen] == [64, 64, 32]


def test_prediction_entropy_by_hand():
    # step 1 uniform over 4 classes (ln 4), step 2 certain (0): mean ln(4) / 2; a [B, C] input has one step
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]]])
    assert dfm.prediction_entropy(logits).tolist() == pytest.approx([math.log(4) / 2])
    assert dfm.prediction_entropy(logits[:, 0]).tolist() == pytest.approx([math.log(4)])


def test_keep_by_confidence_trains_on_the_teachers_most_certain_samples(teacher_run, tmp_path, monkeypatch):
    """distill.keep_by = "confidence": the batch keeps the quarter of the drawn samples with the
    lowest teacher prediction entropy, and the metadata statistics rank nothing."""
    seen: list[torch.Tensor] = []
    real = dfm.prediction_entropy

    def spy(logits):
        out = real(logits)
        if not torch.is_grad_enabled():  # the sample ranking; the generator's entropy loss runs with gradients
            seen.append(out)
        return out

    monkeypatch.setattr(dfm, "prediction_entropy", spy)
    monkeypatch.setattr(dfm, "atypicality", lambda *a: pytest.fail("keep_by = confidence ranked by the metadata"))
    raw = tiny_raw("df", "datafree", **DF, student_samples="fresh", keep=0.25, keep_by="confidence")
    raw["teacher"]["checkpoint"] = str(teacher_run.path / "teacher.pt")
    raw["output"]["evaluate"] = False
    run = distill(recipe_from_dict(raw), out=tmp_path / "runs", progress=False, log=quiet)
    assert (run.path / "student.pt").exists()
    assert [len(s) for s in seen] == [64, 64, 32]


def test_step_classes_and_class_atypicality_by_hand():
    # 2 samples, 2 predicted steps over 3 beams, features at 3 time steps: the last 2 steps by their
    # own beam, the first by step t's
    logits = torch.tensor([[[5.0, 0, 0], [0, 5.0, 0]], [[0, 0, 5.0], [0, 0, 5.0]]])
    assert dfm.step_classes(logits, 3).tolist() == [[0, 0, 1], [2, 2, 2]]
    mean = torch.zeros(3, 3, 1)
    mean[2] = 1.0                                      # beam 2's windows sit at 1, the others at 0
    var = torch.ones(3, 3, 1)
    var[1, 2] = 4.0
    f = torch.tensor([[[2.0], [0.0], [2.0]], [[1.0], [3.0], [1.0]]])
    # sample 0: 2^2/1, 0, 2^2/4 -> 5/3; sample 1: 0, 2^2, 0 -> 4/3
    assert dfm.class_atypicality(f, logits, mean, var).tolist() == pytest.approx([5 / 3, 4 / 3])
    meta = {"by_class": {"layer": "gru", "steps": 3, "mean": mean.reshape(3, -1).tolist(), "var": var.reshape(3, -1).tolist()}}
    layer, m, v = dfm.class_metadata_stats(meta, torch.device("cpu"))
    assert layer == "gru" and torch.equal(m, mean) and torch.equal(v, var)
    with pytest.raises(BeamcError, match=r"teacher_metadata.json: no per-beam statistics \('by_class', needed by "
                                         r'distill.keep_by = "class_metadata"\); re-measure'):
        dfm.class_metadata_stats({"layer": "hidden"}, torch.device("cpu"))


def test_keep_by_class_metadata_ranks_by_the_predicted_beams_statistics(teacher_run, tmp_path, monkeypatch):
    """distill.keep_by = "class_metadata": the batch keeps the samples whose teacher GRU outputs
    lie closest to their predicted beam's saved statistics, and nothing else ranks them."""
    kept: list[tuple[int, float, float]] = []
    real = dfm.class_atypicality

    def spy(features, logits, mean, var):
        out = real(features, logits, mean, var)
        kept.append((len(out), *(float(v) for v in out.sort().values[[0, -1]])))
        return out

    monkeypatch.setattr(dfm, "class_atypicality", spy)
    monkeypatch.setattr(dfm, "atypicality", lambda *a: pytest.fail("keep_by = class_metadata ranked by the overall statistics"))
    entropy = dfm.prediction_entropy

    def no_entropy_ranking(logits):   # the generator's entropy loss runs with gradients, a ranking without
        assert torch.is_grad_enabled(), "keep_by = class_metadata ranked by entropy"
        return entropy(logits)

    monkeypatch.setattr(dfm, "prediction_entropy", no_entropy_ranking)
    raw = tiny_raw("df", "datafree", **DF, student_samples="fresh", keep=0.25, keep_by="class_metadata")
    raw["teacher"]["checkpoint"] = str(teacher_run.path / "teacher.pt")
    raw["output"]["evaluate"] = False
    run = distill(recipe_from_dict(raw), out=tmp_path / "runs", progress=False, log=quiet)
    assert (run.path / "student.pt").exists()
    assert [n for n, _, _ in kept] == [64, 64, 32] and all(lo < hi for _, lo, hi in kept)


def test_keep_by_class_metadata_without_per_beam_statistics_is_a_clear_error(teacher_run, tmp_path):
    ckpt = tmp_path / "teacher.pt"
    ckpt.write_bytes((teacher_run.path / "teacher.pt").read_bytes())
    meta = json.loads((teacher_run.path / "teacher_metadata.json").read_text())
    del meta["by_class"]
    (tmp_path / "teacher_metadata.json").write_text(json.dumps(meta))
    raw = tiny_raw("df", "datafree", **DF, student_samples="fresh", keep=0.5, keep_by="class_metadata")
    raw["teacher"]["checkpoint"] = str(ckpt)
    raw["output"]["evaluate"] = False
    with pytest.raises(BeamcError, match=r"teacher_metadata.json: no per-beam statistics"):
        distill(recipe_from_dict(raw), out=tmp_path / "runs", progress=False, log=quiet)


def test_inherit_layers_copies_matching_teacher_modules():
    from beamc.compress.modeling import build_model

    torch.manual_seed(0)
    teacher = build_model("lidar_gru", {"hidden_size": 12, "embed_dim": 8})
    student = build_model("lidar_gru", {"hidden_size": 4, "embed_dim": 8})
    assert dfm.inherit_layers(student, teacher, ("embed",), freeze=True) == 216 * 8 + 8
    assert torch.equal(student.embed.weight, teacher.embed.weight) and torch.equal(student.embed.bias, teacher.embed.bias)
    assert not student.embed.weight.requires_grad and student.gru.weight_ih_l0.requires_grad
    assert dfm.inherit_layers(student, teacher, (), freeze=True) == 0
    dfm.inherit_layers(student, teacher, ("embed",), freeze=False)
    assert student.embed.weight.requires_grad
    with pytest.raises(BeamcError, match=r"distill.inherit: module 'gru': expected the teacher's parameters .*'weight_hh_l0': \[36, 12\]"):
        dfm.inherit_layers(student, teacher, ("gru",), freeze=False)
    with pytest.raises(BeamcError, match="distill.inherit: the teacher has no module 'decoder'"):
        dfm.inherit_layers(student, teacher, ("decoder",), freeze=False)


def test_data_free_student_keeps_a_frozen_inherited_embedding(teacher_run, tmp_path):
    from beamc.compress.modeling import load_model

    raw = tiny_raw("df", "datafree", **DF, inherit=["embed"], freeze_inherited=True)
    raw["teacher"]["checkpoint"] = str(teacher_run.path / "teacher.pt")
    raw["output"]["evaluate"] = False
    run = distill(recipe_from_dict(raw), out=tmp_path / "runs", progress=False, log=quiet)
    student, _ = load_model(run.path / "student.pt")
    teacher, _ = load_model(teacher_run.path / "teacher.pt")
    assert torch.equal(student.embed.weight, teacher.embed.weight)
    assert not torch.equal(student.fc.bias, build_student_like(student).fc.bias)   # the rest trained


def build_student_like(student):
    from beamc.compress.modeling import build_model

    torch.manual_seed(0)   # the pipeline's initialisation of the student (train.seed = 0)
    return build_model("lidar_gru", {"hidden_size": 4, "embed_dim": 8})


def test_adversarial_needs_fresh_samples(teacher_run, tmp_path):
    raw = tiny_raw("df", "datafree", **DF, adversarial=0.5)
    raw["teacher"]["checkpoint"] = str(teacher_run.path / "teacher.pt")
    raw["output"]["evaluate"] = False
    with pytest.raises(SchemaError, match=r'distill.adversarial = 0.5 needs distill.student_samples = "fresh", found "pool" '
                                          r'\(a fixed pool cannot follow a generator that keeps training\)') as e:
        distill(recipe_from_dict(raw), out=tmp_path / "runs", progress=False, log=quiet)
    assert e.value.path == "distill.adversarial" and not (tmp_path / "runs").exists()


def test_generator_training_uses_the_metadata(teacher_run):
    from beamc.compress.modeling import load_model

    teacher, _ = load_model(teacher_run.path / "teacher.pt")
    cfg = DISTILLERS.get("datafree").Config(**DF)
    meta = read_metadata(teacher_run.path / "teacher_metadata.json")
    shifted = {**meta, "mean": [m + 1.0 for m in meta["mean"]]}

    def first_batch_meta(m):
        # replay the first step: same seed -> same generator weights and noise
        torch.manual_seed(0)
        g = dfm.build_generator(cfg, m)
        x = g.sample(cfg.generator_batch_size, torch.Generator().manual_seed(0))
        with torch.no_grad():
            out, h = teacher.gru(teacher.embed(x))
        return float(metadata_loss(h[-1], torch.tensor(m["mean"]), torch.tensor(m["var"])))

    for m in (meta, shifted):
        _, hist = train_generator(teacher, m, cfg, seed=0, device=torch.device("cpu"))
        assert hist[0]["step"] == 1 and hist[0]["meta"] == pytest.approx(first_batch_meta(m), rel=1e-5)
    assert first_batch_meta(shifted) > first_batch_meta(meta) + 0.5


def test_data_free_student_never_opens_the_data_folder(tmp_path, monkeypatch):
    """Teacher trained on a DeepSense-format folder; the folder is then made unreadable (and,
    since root ignores permissions, every way into the data set is made to fail) and the
    data-free recipe still trains its student. `beamc evaluate` is the explicit later step."""
    from beamc.data.synth.v2i import DeepSenseSynthConfig, generate

    folder = tmp_path / "scenario8"
    generate(DeepSenseSynthConfig(**TINY_SYNTH, camera=False, radar=False, gps=False), folder)
    data = {"source": "deepsense", "folder": str(folder), "train_fraction": 0.6, "val_fraction": 0.2}
    out = tmp_path / "runs"
    distill(recipe_from_dict(tiny_raw("t", data=data)), out=out, progress=False, log=quiet)

    df_raw = tiny_raw("df", "datafree", data=data, **DF, metadata_layers=["hidden", "gru", "embed"],
                      student_samples="fresh", adversarial=0.5)
    df_raw["output"]["evaluate"] = False
    os.chmod(folder, 0o000)
    import beamc.data.deepsense as ds
    import beamc.tasks.deepsense_data as dsd
    from beamc.tasks.lidar import LidarTask

    def refuse(*a, **k):
        raise AssertionError("the data-free student stage opened the data set")

    for mod in (ds, dsd):
        monkeypatch.setattr(mod, "open_scenario", refuse)
    monkeypatch.setattr(LidarTask, "prepare", refuse)
    logs: list[str] = []
    try:
        if os.geteuid() != 0:
            with pytest.raises(PermissionError):
                os.listdir(folder)
        run = distill(recipe_from_dict(df_raw), out=out, progress=False, log=logs.append)
    finally:
        os.chmod(folder, 0o755)
        monkeypatch.undo()
    assert (run.path / "student.pt").exists() and (run.path / "generator.pt").exists()
    assert (run.path / "generator_final.pt").exists()   # adversarial: the generator kept training
    assert any("data set is not opened" in line for line in logs)
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert metrics["evaluated"] is False and metrics["models"]["student"]["params"] > 0
    hist = (run.path / "generator_history.csv").read_text().splitlines()
    assert hist[0] == "step,loss,meta,act,ent" and len(hist) == 1 + DF["generator_steps"]

    # the tiny end-to-end result, evaluated afterwards with the data readable again
    ev = reevaluate(run.path, device="cpu")
    student = ev["models"]["student"]["metrics"]
    assert student["steps"] == ["t", "t+1", "t+2", "t+3"] and len(student["top5"]) == 4
    assert all(0.0 <= v <= 1.0 for v in student["top1"] + student["top5"])


def test_data_free_needs_the_metadata_file(teacher_run, tmp_path):
    ckpt = tmp_path / "teacher.pt"
    ckpt.write_bytes((teacher_run.path / "teacher.pt").read_bytes())
    raw = tiny_raw("df", "datafree", **DF)
    raw["teacher"]["checkpoint"] = str(ckpt)
    raw["output"]["evaluate"] = False
    with pytest.raises(BeamcError, match=r"teacher_metadata.json: teacher metadata not found"):
        distill(recipe_from_dict(raw), out=tmp_path / "runs", progress=False, log=quiet)
    meta = json.loads((teacher_run.path / "teacher_metadata.json").read_text())
    del meta["var"]
    (tmp_path / "teacher_metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BeamcError, match=r"teacher_metadata.json: missing key 'var'"):
        distill(recipe_from_dict(raw), out=tmp_path / "runs2", progress=False, log=quiet)


def test_data_free_on_a_task_without_metadata_is_a_clear_error(tiny_sub6, tmp_path):
    from beamc.recipe import load_recipe

    recipe = load_recipe(tiny_sub6(method="datafree"))
    with pytest.raises(BeamcError, match=r"distill.method = 'datafree': task 'sub6' has no teacher metadata .* \(tasks that do: lidar\)"):
        distill(recipe, out=tmp_path / "runs", progress=False, log=quiet)


def test_cli_data_free_run_then_explicit_evaluate(teacher_run, tmp_path):
    """`beamc distill` of a data-free recipe on a teacher checkpoint (its metadata next to
    it) with evaluation off, then `beamc evaluate RUN` as the separate step that reads data."""
    import subprocess
    import sys

    import tomli_w

    raw = tiny_raw("cli_df", "datafree", **DF)
    raw["teacher"]["checkpoint"] = str(teacher_run.path / "teacher.pt")
    raw["output"]["evaluate"] = False
    recipe = tmp_path / "cli_df.toml"
    recipe.write_text(tomli_w.dumps(raw))

    def beamc(*args):
        return subprocess.run([sys.executable, "-m", "beamc.cli", *args], capture_output=True, text=True)

    res = beamc("distill", str(recipe), "--out", str(tmp_path / "runs"), "-q")
    assert res.returncode == 0, res.stderr
    assert "data set is not opened" in res.stdout and "not evaluated" in res.stdout
    run = tmp_path / "runs" / "latest"
    assert (run / "student.pt").exists() and (run / "teacher_metadata.json").exists()
    res = beamc("evaluate", str(run))
    assert res.returncode == 0, res.stderr
    assert "Top-1 @t" in res.stdout and (run / "evaluation.json").exists()


def test_confident_recipe_is_the_kl_recipe_with_the_confidence_filter():
    """lidar_dfkd_kl_confident is compared with lidar_dfkd_kl seed for seed: nothing but the
    sample filter, the KL temperature and the segment renderer may differ."""
    from dataclasses import asdict

    from beamc.recipe import load_recipe
    recipes = Path(__file__).resolve().parents[1] / "recipes"
    base, confident = load_recipe(recipes / "lidar_dfkd_kl.toml"), load_recipe(recipes / "lidar_dfkd_kl_confident.toml")
    d = asdict(confident.distill)
    assert (d["keep"], d["keep_by"], d["temperature"], d["segment_render"]) == (0.5, "confidence", 1.0, "occlude")
    d.update(keep=1.0, keep_by="metadata", temperature=5.0, segment_render="blend")
    assert d == asdict(base.distill)
    for section in ("task", "data", "teacher", "student", "train", "output"):
        assert asdict(getattr(confident, section)) == asdict(getattr(base, section)), section
