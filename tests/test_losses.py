"""Each loss against a value computed by hand on a tiny batch."""

from __future__ import annotations

import math

import pytest
import torch

from beamc.compress import losses
from beamc.compress.distillers import ModelOut
from beamc.compress.distillers.ikd import IKD, IKDConfig
from beamc.compress.distillers.rkd import RKD, RKDConfig
from beamc.tasks.base import Batch


def softmax(v):
    e = [math.exp(x) for x in v]
    s = sum(e)
    return [x / s for x in e]


def test_kd_kl_matches_hand_value():
    s = torch.tensor([[1.0, 0.0, -1.0]])
    t = torch.tensor([[2.0, 0.0, 0.0]])
    T = 2.0
    ps, pt = softmax([1 / T, 0, -1 / T]), softmax([2 / T, 0, 0])
    kl = sum(p * math.log(p / q) for p, q in zip(pt, ps))
    assert losses.kd_kl(s, t, T).item() == pytest.approx(T * T * kl, rel=1e-5)  # float32
    assert losses.kd_kl(t, t, T).item() == pytest.approx(0.0, abs=1e-7)


def test_kd_kl_flattens_steps():
    s = torch.randn(2, 3, 5)
    t = torch.randn(2, 3, 5)
    assert losses.kd_kl(s, t, 3.0).item() == pytest.approx(losses.kd_kl(s.reshape(6, 5), t.reshape(6, 5), 3.0).item())


def test_focal_loss_hand_value():
    z = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    y = torch.tensor([0, 1])
    p0 = softmax([2, 0])[0]
    expected = ((1 - p0) ** 2 * -math.log(p0) + 0.5**2 * -math.log(0.5)) / 2
    assert losses.focal_loss(z, y, alpha=1.0, gamma=2.0).item() == pytest.approx(expected, rel=1e-6)
    # gamma = 0 is cross-entropy
    assert losses.focal_loss(z, y, gamma=0.0).item() == pytest.approx(torch.nn.functional.cross_entropy(z, y).item())


def test_huber_both_regimes():
    a = torch.tensor([0.0, 0.0])
    b = torch.tensor([0.5, 3.0])
    assert losses.huber(a, b).item() == pytest.approx((0.5 * 0.25 + (3.0 - 0.5)) / 2)


def test_rkd_potentials_on_a_right_triangle():
    # points (0,0), (3,0), (0,4): distances 3, 4, 5, mean 4
    f = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    d = losses.rkd_distance_potentials(f)
    assert d.tolist() == pytest.approx([3 / 4, 4 / 4, 5 / 4])
    a = losses.rkd_angle_potentials(f)
    # angles at vertex 0: 90 deg; at vertex 1: cos = 3/5; at vertex 2: cos = 4/5 (each twice, ordered)
    assert sorted(a.tolist()) == pytest.approx(sorted([0.0, 0.0, 0.6, 0.6, 0.8, 0.8]), abs=1e-6)


def test_rkd_loss_is_zero_for_similar_geometry_and_hand_value_otherwise():
    f = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    dist, ang = losses.rkd_loss(f, 2.5 * f)  # a scaled copy has identical relations
    assert dist.item() == pytest.approx(0.0, abs=1e-6) and ang.item() == pytest.approx(0.0, abs=1e-6)
    g = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])  # collinear student: distances 1,2,1 / mean 4/3
    dist, ang = losses.rkd_loss(f, g)
    ds = [0.75, 1.5, 0.75]
    expected = sum(0.5 * (x - y) ** 2 for x, y in zip(ds, [0.75, 1.0, 1.25])) / 3
    assert dist.item() == pytest.approx(expected, rel=1e-5)
    # student angles: vertex 0 (between +1 and +2): cos 1, vertex 1: cos -1, vertex 2: cos 1
    t_cos = {0: 0.0, 1: 0.6, 2: 0.8}
    s_cos = {0: 1.0, 1: -1.0, 2: 1.0}
    diffs = [s_cos[v] - t_cos[v] for v in range(3)]
    hub = [0.5 * x * x if abs(x) <= 1 else abs(x) - 0.5 for x in diffs]
    assert ang.item() == pytest.approx(sum(hub) / 3, rel=1e-5)


def test_ikd_distiller_combines_terms():
    crit = lambda z, y: torch.nn.functional.cross_entropy(z, y)  # noqa: E731
    s = torch.tensor([[1.0, 0.0, -1.0]])
    t = torch.tensor([[2.0, 0.0, 0.0]])
    y = torch.tensor([0])
    out = IKD(IKDConfig(temperature=2.0, alpha=0.25), crit).loss(Batch((s,), y), ModelOut(s), ModelOut(t))
    assert set(out) == {"loss", "kd", "hard"}
    assert out["kd"].item() == pytest.approx(losses.kd_kl(s, t, 2.0).item())
    assert out["hard"].item() == pytest.approx(-math.log(softmax([1, 0, -1])[0]))
    assert out["loss"].item() == pytest.approx(0.25 * out["kd"].item() + 0.75 * out["hard"].item())


def test_rkd_distiller_components():
    crit = lambda z, y: torch.nn.functional.cross_entropy(z, y)  # noqa: E731
    f = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    z = torch.zeros(3, 4)
    y = torch.tensor([0, 1, 2])
    out = RKD(RKDConfig(distance_weight=2.0, angle_weight=0.5), crit).loss(
        Batch((z,), y), ModelOut(z, {"features": 2 * f}), ModelOut(z, {"features": f}))
    assert out["hard"].item() == pytest.approx(math.log(4))
    assert out["loss"].item() == pytest.approx(math.log(4), abs=1e-5)  # scaled copy: relational terms vanish
