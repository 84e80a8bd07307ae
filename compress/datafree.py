"""Data-free KD (Zakeri et al., ../shared/papers/lidar-data-free-kd-beam-tracking.md, Alg. 1).

    teacher training  ->  teacher.pt + teacher_metadata.json (mean / variance of the teacher's
                          last hidden state over the training data, the input value range)
    step 1: knowledge inversion: a generator G (noise 500 -> 64 ReLU -> frames x features,
            squashed into the input range, then the task's zero frames) trained against the
            frozen teacher with  L_G = L_meta + alpha L_act + beta L_ent  (eq. 8)
    step 2: the student learns from the teacher's outputs on G's samples only (KL at T or
            MSE on logits; `distillers/datafree.py`)

Beyond the paper, each off by default (the paper's setting): eq. 5 on further teacher layers
per time step (`metadata_layers`), a temporal total-variation prior (`smoothness`), new
noise for every student batch (Alg. 1 line 10, `student_samples = "fresh"`) and generator
steps during the student stage that also push the teacher-student logit gap up
(`adversarial`, after Fang et al.'s data-free adversarial distillation): `Inversion` is the
one generator update both stages share. Round 3 added, also off by default: that generator's
learning rate on the student's schedule (`adversarial_schedule`), a class-conditional
generator with uniform target beams (`targets`), student layers inherited from the teacher
(`inherit`), mixup of generator samples (`mixup`) and keeping the samples most typical of
the saved statistics (`keep`). None of them closes the gap on the simulator
(benchmarks/results/lidar_dfkd.md says by how much each moved it). Round 5 added a generator
whose last layer gives segments, not bins (`generator_output = "segments"`,
`render_segments`): a processed scan's format as a prior, and with it the per-layer
metadata becomes reachable; that moved the student most. Round 9 added per-beam statistics
to the metadata (the teacher's GRU outputs over the training windows it gives each beam),
used to keep the drawn samples nearest their predicted beam's (`keep_by = "class_metadata"`)
and as a per-sample generator loss (`class_metadata_loss`). Round 12 added a generator whose
last layer gives objects on the street, not runs of bins (`generator_output = "objects"`,
`render_objects`): boxes moving along a straight street in the band of distances, speeds and
sizes the operator knows of the site (`Site`), seen by rays from the sensor.

Nothing here reads a data set: the teacher, its metadata file and the recipe are the inputs.
Each generator loss is a function of tensors so tests check them on hand-made values.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from beamc.errors import BeamcError
from beamc.runs import atomic_write_csv, atomic_write_json, read_json

METADATA_FILE = "teacher_metadata.json"
METADATA_FORMAT = "beamc-teacher-metadata/1"


# ------------------------------------------------------------------------- metadata
def write_metadata(path: Path, meta: dict[str, Any]) -> Path:
    atomic_write_json(path, {"format": METADATA_FORMAT, **meta})
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The teacher's metadata file, checked: BeamcError naming the file and key otherwise."""
    p = Path(path)
    if not p.exists():
        raise BeamcError(f"{p}: teacher metadata not found; data-free distillation needs the {METADATA_FILE} that "
                         "teacher training writes next to teacher.pt (retrain the teacher with this version of beamc)")
    meta = read_json(p, METADATA_FILE)
    if meta.get("format") != METADATA_FORMAT:
        raise BeamcError(f"{p}: expected format '{METADATA_FORMAT}', found {meta.get('format')!r}")
    for key in ("layer", "mean", "var", "input_min", "input_max", "layout"):
        if key not in meta:
            raise BeamcError(f"{p}: missing key '{key}'")
    if len(meta["mean"]) != len(meta["var"]) or not meta["mean"]:
        raise BeamcError(f"{p}: 'mean' and 'var' must be non-empty lists of one length, found {len(meta['mean'])} and {len(meta['var'])}")
    for key in ("frames", "features", "pad"):
        if key not in meta["layout"]:
            raise BeamcError(f"{p}: missing key 'layout.{key}'")
    return meta


# ------------------------------------------------------------------------ generator
OUTPUTS = ("tanh", "relu", "segments", "objects")
# per segment, before squashing: centre bin, drift (bins per frame), half-width, range, range drift, presence
SEGMENT_PARAMS = ("centre", "drift", "half_width", "range", "range_drift", "presence")
EDGE_BINS = 0.5     # softness of a segment's edges, in bins: wide enough for gradients, narrow enough to look hard
OCCLUSION_SHARPNESS = 0.05   # range units (0.5 m at the scans' 1/10 scale): nearer by this much mostly hides the other


def occluded_scan(weight: torch.Tensor, rng: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                  straight_through: bool = True) -> torch.Tensor:
    """Scans [B, F, D] from surfaces [B, F, S, D] (coverage weight in [0, 1], range per bin):
    what a LiDAR measures, straight-through. Forward: each bin holds the range of the nearest
    surface covering it past its half-way edge (a ray stops at the first surface), 0 where none
    does. Backward: a soft version of it (a soft minimum over the covering surfaces,
    OCCLUSION_SHARPNESS range units sharp, times the soft coverage), so every parameter behind
    the weights and ranges still learns. `straight_through = False` skips the soft version (for
    samples no gradient will flow through)."""
    covering = torch.where(weight > 0.5, rng, torch.full_like(rng, float("inf"))).amin(dim=2)
    hard = torch.where(torch.isfinite(covering), covering, torch.zeros_like(covering))
    if not straight_through:
        return hard.clamp(lo, hi)
    logit = torch.where(weight > 0, weight.clamp_min(1e-12).log(), torch.full_like(weight, -1e4))
    nearest = torch.softmax(logit - rng / OCCLUSION_SHARPNESS, dim=2)
    soft = (nearest * rng).sum(dim=2) * (1 - torch.prod(1 - weight, dim=2))
    return (hard + soft - soft.detach()).clamp(lo, hi)


def render_segments(p: torch.Tensor, frames: int, features: int, lo: torch.Tensor, hi: torch.Tensor,
                    max_drift: float | None = None, occlude: bool = False, max_slope: float = 0.0) -> torch.Tensor:
    """Scans [B, frames, features] drawn from segment parameters p [B, S, 6] (SEGMENT_PARAMS,
    unsquashed), or [B, S, 7] with a `max_slope` > 0 (SEGMENT_PARAMS + "slope"). A processed (static-clutter-removed) LiDAR scan is zero except where a moving
    object returns: one contiguous run of bins at that object's range, which moves a little
    from frame to frame. So each segment is a run of bins centred at c + v f with half-width h,
    at range r + u f, weighted by a presence in (0, 1); where segments overlap their ranges
    are averaged by weight. Every quantity is squashed into what the scan layout allows (the
    centre anywhere in the field of view, a drift of at most `max_drift` bins per frame (default:
    the field of view over the window), a half-width of at most a quarter of it, ranges in
    [lo, hi]), so nothing but that format, the sensor's geometry and the teacher's losses shapes
    the samples. Bins a segment leaves are exactly zero, as in a real processed scan.

    A seventh parameter tilts each segment: its range changes across the run by up to
    `max_slope` x its range per bin, as a flat surface seen obliquely does (a vehicle's side;
    two adjacent ones, a corner). Without it every run is at one range,
    where real runs spread (0.07 range units, a median over the simulator's test windows).

    `occlude` draws what a LiDAR measures instead of a blend: a bin holds the range of the
    nearest segment that covers it (a ray stops at the first surface) at full value up to a
    hard edge half-way through the soft one, where the blend tapers a segment's range towards 0
    over its soft edges and averages overlapping segments into ranges no surface has. It is
    straight-through: the forward pass is that scan, the gradient that of a soft version of it
    (a soft minimum over the covering segments, OCCLUSION_SHARPNESS range units sharp, times
    the soft coverage), so position, width, range and presence still learn."""
    c, v, h, r, u, pres, *tilt = p.unbind(-1)                                   # each [B, S]
    if len(tilt) != (max_slope > 0):
        raise BeamcError(f"render_segments: expected {6 + (max_slope > 0)} parameters per segment with max_slope = "
                         f"{max_slope}, found {p.shape[-1]}")
    c = torch.sigmoid(c) * features
    v = torch.tanh(v) * (features / frames if max_drift is None else max_drift)
    h = 0.5 + torch.sigmoid(h) * features / 4
    r = lo + (hi - lo) * torch.sigmoid(r)
    u = torch.tanh(u) * (hi - lo) / frames
    pres = torch.sigmoid(pres)
    f = torch.arange(frames, dtype=p.dtype, device=p.device)[:, None]           # [F, 1]: against [B, 1, S]
    b = torch.arange(features, dtype=p.dtype, device=p.device)                  # [D]
    centre = (c[:, None] + v[:, None] * f)[..., None]                           # [B, F, S, 1]
    half = h[:, None, :, None]
    inside = torch.sigmoid((b - centre + half) / EDGE_BINS) * torch.sigmoid((centre + half - b) / EDGE_BINS)
    weight = inside * pres[:, None, :, None]                                    # [B, F, S, D]
    weight = torch.where(weight > 1e-3, weight, torch.zeros_like(weight))      # no faint tails off the run
    rng = (r[:, None] + u[:, None] * f)[..., None]                               # [B, F, S, 1]
    if tilt:                                                                    # [B, F, S, D]: the range across the run
        rng = rng + (torch.tanh(tilt[0]) * max_slope * r)[:, None, :, None] * (b - centre)
    rng = rng.clamp(lo, hi)
    if occlude:
        return occluded_scan(weight, rng, lo, hi)
    total = weight.sum(dim=2)
    value = (weight * rng).sum(dim=2) / total.clamp_min(1.0)                    # a lone segment keeps its taper
    return value.clamp(lo, hi)


# per object, before squashing: along-street position at the first frame, speed along the street,
# distance of its near face from the sensor (across the street), length, width, presence
OBJECT_PARAMS = ("position", "speed", "distance", "length", "width", "presence")


@dataclass(frozen=True)
class Site:
    """What the operator of a site knows without recording anything: the band of distances
    (m, across the street, from the sensor) where the near faces of traffic and pedestrians
    lie, the top speed along the street, the time between frames, the range of object lengths
    (along the street) and widths, the scan's field of view (bins evenly spread over it, bin 0
    at +fov/2 as in DeepSense's lidar_SCR) and its range scale (input units per metre)."""
    distance_m: tuple[float, float] = (2.0, 13.0)
    max_speed_kmh: float = 18.0
    frame_interval_s: float = 0.111
    length_m: tuple[float, float] = (0.4, 11.0)
    width_m: tuple[float, float] = (0.4, 2.5)
    fov_deg: float = 180.0
    range_scale: float = 0.1

    def __post_init__(self):
        for key in ("distance_m", "length_m", "width_m"):
            pair = getattr(self, key)
            if len(pair) != 2 or not 0 < pair[0] <= pair[1]:
                raise BeamcError(f"site.{key}: expected [min, max] with 0 < min <= max, found {list(pair)}")


def render_objects(p: torch.Tensor, frames: int, features: int, lo: torch.Tensor, hi: torch.Tensor,
                   site: Site) -> torch.Tensor:
    """Scans [B, frames, features] of objects [B, S, 6] (OBJECT_PARAMS, unsquashed) on a
    straight street. Object s is a box whose near face lies d across the street from the
    sensor, L long and W wide, at along-street position x + v t at frame time t, with a
    presence in (0, 1). A ray at bearing theta (0 across the street, positive towards +x)
    returns from a box where its bearing falls between the box's outermost corners, at the
    range where it enters the box: max(d / cos theta, the nearer end's x / sin theta), the
    slab method, so the near face reads d / cos theta and an end the sensor sees (the box off
    to one side) its own slope. The nearest box wins (`occluded_scan`), and nothing past the
    sensor's reach (hi) returns. So position, motion, width in bins and the range's change
    across a run are tied to each other as on a real street, where the segment generator draws
    them apart. Every parameter is squashed into the site's bands (position within the
    sensor's reach, |v| up to the top speed)."""
    x0, v, d, length, width, pres = p.unbind(-1)                                  # each [B, S]
    reach = hi / site.range_scale                                                 # metres
    x0 = torch.tanh(x0) * reach
    v = torch.tanh(v) * site.max_speed_kmh / 3.6
    band = lambda a, pair: pair[0] + (pair[1] - pair[0]) * torch.sigmoid(a)      # noqa: E731
    d, length, width = band(d, site.distance_m), band(length, site.length_m), band(width, site.width_m)
    t = torch.arange(frames, dtype=p.dtype, device=p.device)[:, None] * site.frame_interval_s   # [F, 1]
    x = x0[:, None] + v[:, None] * t                                              # [B, F, S]: box centre
    ends = torch.stack([x - length[:, None] / 2, x + length[:, None] / 2])        # [2, B, F, S]: its -x and +x ends
    near, far = d[:, None].expand_as(x), (d + width)[:, None].expand_as(x)
    corners = torch.atan2(ends[:, None], torch.stack([near, far])[None]).flatten(0, 1)   # [4, B, F, S] bearings
    half_fov, step = math.radians(site.fov_deg) / 2, math.radians(site.fov_deg) / features
    b = torch.arange(features, dtype=p.dtype, device=p.device)                   # [D]
    bearing = half_fov - (b + 0.5) * step                                         # [D], bin 0 at +fov/2
    first = ((half_fov - corners.amax(0)) / step - 0.5)[..., None]                # bin index falls as bearing rises
    last = ((half_fov - corners.amin(0)) / step - 0.5)[..., None]
    cover = torch.sigmoid((b - first) / EDGE_BINS) * torch.sigmoid((last - b) / EDGE_BINS)   # [B, F, S, D]
    sin_b = torch.sin(bearing)
    sin_b = torch.where(sin_b.abs() < 1e-6, torch.full_like(sin_b, 1e-6), sin_b)
    cross_x = ends[..., None] / sin_b                                             # [2, B, F, S, D]: along the ray
    entry = torch.maximum(near[..., None] / torch.cos(bearing).clamp_min(1e-6), cross_x.amin(0))
    rng = entry * site.range_scale
    weight = cover * torch.sigmoid(pres)[:, None, :, None]
    weight = weight * torch.sigmoid((hi - rng) / OCCLUSION_SHARPNESS)             # beyond the sensor's reach: no return
    weight = torch.where(weight > 1e-3, weight, torch.zeros_like(weight))        # no faint tails off the boxes
    return occluded_scan(weight, rng.clamp(lo, hi), lo, hi, straight_through=torch.is_grad_enabled())


class Generator(nn.Module):
    """Two fully connected layers that turn noise into `frames` x `features` synthetic inputs
    inside [input_min, input_max], followed by `pad` zero frames.

    `output = "tanh"` is the paper's text: lo + (hi - lo) (tanh(a) + 1) / 2, never exactly at
    the bounds. `output = "relu"` is the reference code's ReLU, clamped at hi: it produces
    exact zeros, and processed LiDAR scans are mostly zeros (the static clutter removed).

    `classes > 0` makes it conditional (beyond the paper): a one-hot target class is appended
    to the noise, and `sample` draws the targets uniformly, so every class gets its share of
    samples whether or not the teacher's favourite outputs would have covered it."""

    def __init__(self, noise_dim: int, hidden: int, frames: int, features: int, pad: int, lo: float, hi: float,
                 output: str = "tanh", classes: int = 0, segments: int = 4, max_drift: float | None = None,
                 occlude: bool = False, max_slope: float = 0.0, site: Site | None = None):
        super().__init__()
        if output not in OUTPUTS:
            raise BeamcError(f"generator output: expected one of {', '.join(map(repr, OUTPUTS))}, found {output!r}")
        self.noise_dim, self.frames, self.features, self.pad, self.output = noise_dim, frames, features, pad, output
        self.classes, self.segments, self.max_drift, self.occlude = classes, segments, max_drift, occlude
        self.max_slope, self.site = max_slope, site or Site()
        self.segment_params = len(OBJECT_PARAMS) if output == "objects" else len(SEGMENT_PARAMS) + (max_slope > 0)
        width = segments * self.segment_params if output in ("segments", "objects") else frames * features
        self.net = nn.Sequential(nn.Linear(noise_dim + classes, hidden), nn.ReLU(), nn.Linear(hidden, width))
        self.register_buffer("lo", torch.tensor(float(lo)))
        self.register_buffer("hi", torch.tensor(float(hi)))

    def forward(self, z: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        if self.classes:
            if targets is None:
                raise BeamcError(f"conditional generator ({self.classes} classes): forward needs the target classes")
            z = torch.cat([z, F.one_hot(targets, self.classes).to(z.dtype)], dim=1)
        a = self.net(z)
        if self.output == "segments":
            x = render_segments(a.reshape(len(z), self.segments, self.segment_params), self.frames, self.features,
                                self.lo, self.hi, self.max_drift, self.occlude, self.max_slope)
        elif self.output == "objects":
            x = render_objects(a.reshape(len(z), self.segments, self.segment_params), self.frames, self.features,
                               self.lo, self.hi, self.site)
        elif self.output == "relu":
            x = torch.minimum(torch.relu(a.reshape(len(z), self.frames, self.features)) + self.lo, self.hi)
        else:
            x = self.lo + (self.hi - self.lo) * (torch.tanh(a.reshape(len(z), self.frames, self.features)) + 1) / 2
        return torch.cat([x, x.new_zeros(len(z), self.pad, self.features)], dim=1)

    def sample_with_targets(self, n: int, generator: torch.Generator | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """n samples and their target classes (None for an unconditional generator). The
        targets are drawn after the noise from the same torch.Generator."""
        device = self.lo.device
        z = torch.randn(n, self.noise_dim, generator=generator)
        targets = torch.randint(self.classes, (n,), generator=generator) if self.classes else None
        return self(z.to(device), None if targets is None else targets.to(device)), targets

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample_with_targets(n, generator)[0]


# --------------------------------------------------------------------------- losses
def metadata_loss(features: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Eq. (5): MSE(mu, mu^) + MSE(sigma^2, sigma^2^), batch statistics per feature unit
    (unbiased variance, as the saved metadata)."""
    f = features.reshape(len(features), -1)
    return F.mse_loss(f.mean(dim=0), mean) + F.mse_loss(f.var(dim=0), var)


def activation_loss(features: torch.Tensor) -> torch.Tensor:
    """Eq. (6): minus the mean L2 norm of each sample's features."""
    return -features.reshape(len(features), -1).norm(dim=1).mean()


def entropy_loss(logits: torch.Tensor) -> torch.Tensor:
    """Eq. (7): entropy -sum_i p_i log p_i of the teacher's softmax, averaged over samples
    (and predicted steps)."""
    return prediction_entropy(logits.reshape(-1, logits.shape[-1])).mean()


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per sample: entropy of the softmax over the last axis, averaged over any predicted steps
    in between ([B, C] or [B, S, C] -> [B])."""
    logp = F.log_softmax(logits, dim=-1)
    ent = -(logp.exp() * logp).sum(dim=-1)
    return ent.reshape(len(logits), -1).mean(dim=1)


def layered_metadata_loss(features: dict[str, torch.Tensor], stats: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Eq. (5) summed over several teacher layers (the paper matches the last hidden state
    only; [18] and DeepInversion match every layer's statistics). A per-step layer ([B, T, U]
    features against T x U saved statistics) is matched per time step, not pooled."""
    total = next(iter(features.values())).new_zeros(())
    for name, (mean, var) in stats.items():
        total = total + metadata_loss(features[name], mean, var)
    return total


def temporal_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean |x[t+1] - x[t]| between consecutive frames of [B, T, D] inputs: the total
    variation prior of DeepInversion taken along time. Scans 0.1 s apart of a slowly moving
    vehicle change little; a generator left alone draws every frame independently."""
    return (x[:, 1:] - x[:, :-1]).abs().mean()


def adversarial_gap(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between teacher and student logits: what an adversarial
    generator maximises while the student trains (Fang et al., data-free adversarial
    distillation), so that new samples land where the student still disagrees."""
    return (teacher_logits - student_logits).abs().mean()


def target_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the teacher's first predicted step (beam tracking: the current beam)
    towards the generator's target class, as in DAFL's one-hot loss and Nayak et al.'s
    class-conditional "data impressions": with targets drawn uniformly the samples cover
    every class the teacher can be driven to, not only the few it prefers on noise."""
    first = logits[:, 0] if logits.dim() == 3 else logits
    return F.cross_entropy(first, targets.to(first.device))


def generator_loss(features: torch.Tensor, logits: torch.Tensor, mean: torch.Tensor | None, var: torch.Tensor | None, *,
                   use_metadata: bool = True, use_activation: bool = True, use_entropy: bool = True,
                   alpha: float = 1e-4, beta: float = 1e-2, meta: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Eq. (8): L_G = L_meta + alpha L_act + beta L_ent, each term switchable (Fig. 3's
    ablation). Components are returned unweighted for logging. `meta`, when given, replaces
    eq. (5) on `features` (the multi-layer metadata loss)."""
    if not (use_metadata or use_activation or use_entropy):
        raise BeamcError("distill: at least one of metadata_loss, activation_loss, entropy_loss must be true")
    parts = {"meta": metadata_loss(features, mean, var) if meta is None else meta,
             "act": activation_loss(features), "ent": entropy_loss(logits)}
    total = features.new_zeros(())
    if use_metadata:
        total = total + parts["meta"]
    if use_activation:
        total = total + alpha * parts["act"]
    if use_entropy:
        total = total + beta * parts["ent"]
    return {"loss": total, **parts}


# ------------------------------------------------------------------------- training
def teacher_classes(teacher: nn.Module, meta: dict[str, Any]) -> int:
    """Number of classes of the teacher's output (the last logits axis), from one zero input
    of the synthetic layout: what a conditional generator draws its targets from."""
    lay = meta["layout"]
    device = next(teacher.parameters()).device
    x = torch.zeros(1, int(lay["frames"]) + int(lay["pad"]), int(lay["features"]), device=device)
    was = teacher.training
    with torch.no_grad():
        n = int(teacher.eval()(x).shape[-1])
    teacher.train(was)
    return n


def build_generator(cfg: Any, meta: dict[str, Any], classes: int = 0) -> Generator:
    """The recipe's generator; `classes` (the teacher's output size) is used only when
    `cfg.targets > 0` makes the generator conditional."""
    lay = meta["layout"]
    classes = classes if getattr(cfg, "targets", 0.0) > 0 else 0
    if getattr(cfg, "targets", 0.0) > 0 and classes < 2:
        raise BeamcError(f"distill.targets = {cfg.targets} needs the teacher's number of classes, found {classes}")
    return Generator(cfg.noise_dim, cfg.generator_hidden, int(lay["frames"]), int(lay["features"]), int(lay["pad"]),
                     float(meta["input_min"]), float(meta["input_max"]), cfg.generator_output, classes,
                     cfg.generator_segments, cfg.segment_max_drift or None,
                     getattr(cfg, "segment_render", "blend") == "occlude", getattr(cfg, "segment_max_slope", 0.0),
                     site_of(cfg) if cfg.generator_output == "objects" else None)


def site_of(cfg: Any) -> Site:
    """The recipe's description of the site (distill.site_* / object_* / scan_* keys)."""
    return Site(tuple(cfg.site_distance_m), cfg.site_max_speed_kmh, cfg.site_frame_interval_s, tuple(cfg.object_length_m),
                tuple(cfg.object_width_m), cfg.scan_fov_deg, cfg.scan_range_scale)


def metadata_stats(meta: dict[str, Any], layers: tuple[str, ...], device: torch.device
                   ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Saved (mean, var) per requested layer: `meta["layer"]` is the top-level statistics
    (the paper's last hidden state), any other name is looked up in `meta["layers"]`."""
    out = {}
    for name in layers:
        if name == meta["layer"]:
            m, v = meta["mean"], meta["var"]
        elif name in meta.get("layers", {}):
            m, v = meta["layers"][name]["mean"], meta["layers"][name]["var"]
        else:
            have = [meta["layer"], *meta.get("layers", {})]
            raise BeamcError(f"{METADATA_FILE}: no statistics for layer '{name}' (distill.metadata_layers), found "
                             f"{', '.join(have)}; re-measure them by running a recipe with data for this teacher "
                             "(e.g. beamc distill recipes/lidar_kd.toml)")
        out[name] = (torch.tensor(m, dtype=torch.float32, device=device), torch.tensor(v, dtype=torch.float32, device=device))
    return out


def eval_rnn_backward(x: torch.Tensor) -> Any:
    """Context for a backward pass through an RNN held in eval mode: cuDNN refuses RNN
    backward in eval mode, so on a GPU it is switched off (a no-op on the CPU)."""
    return torch.backends.cudnn.flags(enabled=False) if x.is_cuda else nullcontext()


def frozen_teacher_forward(teacher: nn.Module, layers: tuple[str, ...]):
    """teacher(x) -> ({layer: features}, logits) with gradients flowing to x only.

    The teacher stays in eval mode (no dropout). cuDNN refuses RNN backward in eval mode,
    so on a GPU the forward runs with cuDNN off (the reference code flips the teacher to
    train mode instead, which would also change any normalisation layer)."""
    from beamc.compress.distillers import Taps

    taps = Taps(teacher, tuple(dict.fromkeys(layers)), "teacher metadata layer")

    def run(x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        with eval_rnn_backward(x):
            out = taps.run(teacher, (x,))
        return out.features, out.logits

    return run, taps


class Inversion:
    """One generator update of eq. (8) against the frozen teacher, optionally minus
    `adversarial` x the teacher-student logit gap (the generator keeps training while the
    student learns, DFAD-style; 0 is the paper: the generator is fixed after step 1)."""

    def __init__(self, gen: Generator, teacher: nn.Module, meta: dict[str, Any], cfg: Any, device: torch.device):
        self.gen, self.cfg = gen, cfg
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        layers = tuple(cfg.metadata_layers) or (meta["layer"],)
        self.stats = metadata_stats(meta, layers, device)
        self.layer = meta["layer"]
        # per-sample pull towards the predicted beam's statistics (beyond the paper; off at 0)
        self.class_stats = class_metadata_stats(meta, device) if cfg.class_metadata_loss > 0 else None
        extra = (self.class_stats[0],) if self.class_stats else ()
        self.forward, self.taps = frozen_teacher_forward(teacher, (self.layer, *layers, *extra))
        self.opt = torch.optim.Adam(gen.parameters(), lr=cfg.generator_lr)

    def losses(self, x: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        feats, logits = self.forward(x)
        meta = layered_metadata_loss({k: feats[k] for k in self.stats}, self.stats)
        losses = generator_loss(feats[self.layer], logits, None, None, use_metadata=self.cfg.metadata_loss, use_activation=self.cfg.activation_loss,
                                use_entropy=self.cfg.entropy_loss, alpha=self.cfg.alpha, beta=self.cfg.beta, meta=meta)
        if self.cfg.smoothness > 0:
            losses["tv"] = temporal_variation(x[:, :self.gen.frames])
            losses["loss"] = losses["loss"] + self.cfg.smoothness * losses["tv"]
        if targets is not None and self.cfg.targets > 0:
            losses["target"] = target_loss(logits, targets)
            losses["loss"] = losses["loss"] + self.cfg.targets * losses["target"]
        if self.class_stats is not None:
            layer, mean, var = self.class_stats
            losses["class"] = class_atypicality(feats[layer], logits, mean, var).mean()
            losses["loss"] = losses["loss"] + self.cfg.class_metadata_loss * losses["class"]
        return losses, logits

    def step(self, noise: torch.Generator, student: nn.Module | None = None, adversarial: float = 0.0
             ) -> dict[str, torch.Tensor]:
        self.gen.train()
        x, targets = self.gen.sample_with_targets(self.cfg.generator_batch_size, noise)
        losses, t_logits = self.losses(x, targets)
        total = losses["loss"]
        if student is not None and adversarial > 0:
            with eval_rnn_backward(x):  # the student runs in eval mode here
                losses["gap"] = adversarial_gap(t_logits, student(x))
            total = total - adversarial * losses["gap"]
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        return losses

    def close(self) -> None:
        self.taps.close()


def train_generator(teacher: nn.Module, meta: dict[str, Any], cfg: Any, *, seed: int, device: torch.device,
                    history_path: Path | None = None, progress: Any = None) -> tuple[Generator, list[dict[str, Any]]]:
    """Step 1 of Alg. 1: `cfg.generator_steps` Adam steps, each on a fresh noise batch."""
    torch.manual_seed(seed)
    gen = build_generator(cfg, meta, teacher_classes(teacher, meta)).to(device)
    inv = Inversion(gen, teacher, meta, cfg, device)
    noise = torch.Generator().manual_seed(seed)
    history: list[dict[str, Any]] = []
    task_id = progress.add_task("generator", total=cfg.generator_steps) if progress else None
    try:
        for step in range(1, cfg.generator_steps + 1):
            losses = inv.step(noise)
            if step == 1 or step % max(1, cfg.generator_steps // 50) == 0 or step == cfg.generator_steps:
                history.append({"step": step, **{k: float(v.detach()) for k, v in losses.items()}})
            if not math.isfinite(float(losses["loss"].detach())):
                raise BeamcError(f"generator training diverged at step {step} (loss {float(losses['loss'])}); "
                                 "lower distill.generator_lr")
            if progress:
                progress.update(task_id, advance=1, description=f"generator loss {float(losses['loss'].detach()):.4f}")
    finally:
        inv.close()
    if history_path is not None:
        atomic_write_csv(history_path, history)
    return gen.eval(), history


def atypicality(features: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Per sample: mean over feature units of (f - mu)^2 / sigma^2, the squared distance of
    the sample's teacher features to the saved training statistics in units of their
    standard deviation (a diagonal Mahalanobis distance; real windows score about 1 per unit).
    Eq. 5 fits these statistics over a batch; this scores each sample by them."""
    f = features.reshape(len(features), -1)
    return ((f - mean) ** 2 / var.clamp_min(1e-8)).mean(dim=1)


def step_classes(logits: torch.Tensor, steps: int) -> torch.Tensor:
    """The teacher's beam each of `steps` feature time steps is scored under ([B, S, C] logits ->
    [B, steps]): the last S steps, the ones the logits are read from, their own predicted beam;
    the steps before them (the past frames) the first predicted step's, the current beam."""
    beams = logits.argmax(dim=-1)
    out = beams[:, :1].expand(-1, steps).clone()
    out[:, steps - beams.shape[1]:] = beams
    return out


def class_metadata_stats(meta: dict[str, Any], device: torch.device) -> tuple[str, torch.Tensor, torch.Tensor]:
    """The saved per-beam statistics (`meta["by_class"]`): the layer and its mean and
    variance [C, T, U] over the training windows the teacher gives each beam."""
    by_class = meta.get("by_class")
    if not by_class:
        raise BeamcError(f"{METADATA_FILE}: no per-beam statistics ('by_class', needed by distill.keep_by = "
                         '"class_metadata"); re-measure them by running a recipe with data for this teacher '
                         "(e.g. beamc distill recipes/lidar_teacher.toml)")
    steps = int(by_class["steps"])
    mean, var = (torch.tensor(by_class[k], dtype=torch.float32, device=device) for k in ("mean", "var"))
    return by_class["layer"], mean.reshape(len(mean), steps, -1), var.reshape(len(var), steps, -1)


def class_atypicality(features: torch.Tensor, logits: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Per sample: `atypicality` against the statistics of the beam the teacher predicts, per
    time step (`step_classes`), averaged over steps and units. Eq. 5 matches one Gaussian per
    unit over the whole batch, which generated samples meet while lying far from every real
    window; the real windows of one beam sit in a much tighter cluster (benchmarks/results/
    lidar_dfkd.md, round 9)."""
    steps = mean.shape[1]
    f = features.reshape(len(features), steps, -1)
    beam = step_classes(logits, steps)                                  # [B, T]
    t = torch.arange(steps, device=features.device)
    return ((f - mean[beam, t]) ** 2 / var[beam, t].clamp_min(1e-8)).mean(dim=(1, 2))


def mix_samples(x: torch.Tensor, fraction: float, noise: torch.Generator) -> torch.Tensor:
    """Replace the first round(fraction x B) samples of a batch by convex mixtures
    lam x_i + (1 - lam) x_j of two samples of the batch, lam ~ U(0, 1) per sample (mixup of
    generator samples, beyond the paper: a prior that needs no data). The teacher labels
    the mixed input itself, so the student sees the teacher between the generator's modes.
    `noise` draws the partners and weights, so a batch mixes the same way on every run."""
    n = round(fraction * len(x))
    if n == 0:
        return x
    partner = torch.randint(len(x), (n,), generator=noise).to(x.device)
    lam = torch.rand(n, *([1] * (x.dim() - 1)), generator=noise).to(x.device, x.dtype)
    return torch.cat([lam * x[:n] + (1 - lam) * x[partner], x[n:]])


def inherit_layers(student: nn.Module, teacher: nn.Module, names: tuple[str, ...], freeze: bool) -> int:
    """Copy the parameters of the teacher's modules `names` into the student's modules of the
    same name (beyond the paper; weight inheritance as in DistilBERT's initialisation from
    its teacher). Returns the number of parameters copied. A data-free student learns its
    first layer only in the directions the generator's samples excite; the teacher's layer
    was fitted on real inputs. `freeze` keeps the copies fixed while the student trains."""
    t_mods, s_mods = dict(teacher.named_modules()), dict(student.named_modules())
    copied = 0
    for name in names:
        if name not in t_mods or name not in s_mods:
            where = "teacher" if name not in t_mods else "student"
            raise BeamcError(f"distill.inherit: the {where} has no module '{name}'")
        t_params, s_params = dict(t_mods[name].named_parameters()), dict(s_mods[name].named_parameters())
        if not s_params or {k: v.shape for k, v in t_params.items()} != {k: v.shape for k, v in s_params.items()}:
            raise BeamcError(f"distill.inherit: module '{name}': expected the teacher's parameters "
                             f"{ {k: list(v.shape) for k, v in t_params.items()} }, the student has "
                             f"{ {k: list(v.shape) for k, v in s_params.items()} }")
        with torch.no_grad():
            for key, p in s_params.items():
                p.copy_(t_params[key])
                p.requires_grad_(not freeze)
                copied += p.numel()
    return copied


def synthesize(gen: Generator, n: int, seed: int, batch: int = 1024) -> torch.Tensor:
    """The student's fixed training set: `n` generator samples from noise drawn with `seed`
    (the reference code draws 5000 once and trains the student epochs over them)."""
    noise = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for i in range(0, n, batch):
            out.append(gen.sample(min(batch, n - i), noise).cpu())
    return torch.cat(out)
