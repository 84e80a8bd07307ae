"""Data-free distillation (`method = "datafree"`) and its generator settings.

The student sees generator samples only and learns the teacher's outputs on them, with
no labels (there are none): eq. (9), T^2 KL(softmax(z_T / T) || softmax(z_S / T)) averaged
over samples and predicted steps, or eq. (10), the MSE between raw logits. The pipeline
runs such a method without ever preparing the task's data for the student stage
(`compress.pipeline.train_students_data_free`); the generator is trained there first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch.nn.functional as F

from beamc.registry import DISTILLERS
from beamc.schema import SchemaError, opt
from beamc.compress.distillers.base import Distiller, ModelOut
from beamc.compress.losses import kd_kl


@dataclass(frozen=True)
class DataFreeConfig:
    method: Literal["datafree"] = opt("datafree", doc="data-free KD from a generator trained against the teacher")
    student_loss: Literal["kl", "mse"] = opt("kl", doc='"kl": T^2 KL at `temperature` (eq. 9); "mse": MSE between logits (eq. 10)')
    temperature: float = opt(5.0, gt=0, doc="softening temperature T of the KL loss")
    metadata_loss: bool = opt(True, doc="generator: match the teacher's feature mean / variance (eq. 5)")
    activation_loss: bool = opt(True, doc="generator: maximise the teacher's feature norm (eq. 6), weight alpha")
    entropy_loss: bool = opt(True, doc="generator: minimise the teacher's prediction entropy (eq. 7), weight beta")
    alpha: float = opt(1e-4, ge=0, doc="weight of the activation loss (eq. 8)")
    beta: float = opt(1e-2, ge=0, doc="weight of the entropy loss (eq. 8)")
    noise_dim: int = opt(500, ge=1, doc="generator input (noise) size")
    generator_hidden: int = opt(64, ge=1, doc="generator hidden layer width")
    generator_output: Literal["tanh", "relu", "segments", "objects"] = opt(
        "tanh", doc='squashing into the input range: "tanh" (paper), "relu" clamped at the maximum (reference code; '
        'exact zeros), "segments" (beyond the paper): the last layer gives `generator_segments` runs of bins, '
        'each a position, drift, width, range and presence, drawn as a clutter-removed scan, or "objects" (beyond '
        "the paper): `generator_segments` boxes moving along a straight street (position, speed, distance, length, "
        "width, presence within the site_* / object_* bands), seen by the scan's rays, nearest face first")
    generator_segments: int = opt(4, ge=1, doc='runs of bins (generator_output = "segments") or objects ("objects") '
                                  "per generated window")
    segment_max_drift: float = opt(0.0, ge=0, doc='fastest a generated segment may move, in bins per frame '
                                   '(generator_output = "segments"): the sensor geometry bounds it, e.g. top speed x '
                                   "frame interval / nearest range in radians x bins per radian; 0 = the field of "
                                   "view over the window")
    segment_render: Literal["blend", "occlude"] = opt(
        "blend", doc='how segments become a scan (generator_output = "segments"): "blend" (soft edges, overlapping '
        'segments averaged; rounds 5-9) or "occlude" (what a LiDAR measures: the nearest covering segment\'s range up '
        "to a hard edge, straight-through gradients)")
    segment_max_slope: float = opt(0.0, ge=0, doc='> 0 (generator_output = "segments"): each segment also tilts, its '
                                   "range changing across the run by up to this fraction of itself per bin, as a flat "
                                   "surface seen obliquely does: tan(largest incidence angle) x radians per bin; 0 = "
                                   "every run at one range (rounds 5-10)")
    site_distance_m: tuple[float, ...] = opt((2.0, 13.0), doc='[min, max] distance (m) across the street from the '
                                              "sensor to the near faces of traffic and pedestrians, sidewalk to far lane "
                                              '(generator_output = "objects"; the operator\'s knowledge of the site)')
    site_max_speed_kmh: float = opt(18.0, gt=0, doc='top speed along the street (generator_output = "objects")')
    site_frame_interval_s: float = opt(0.111, gt=0, doc='time between scans (generator_output = "objects"; DeepSense '
                                       "scenario 8/9: 111 ms)")
    object_length_m: tuple[float, ...] = opt((0.4, 11.0), doc='[min, max] length (m) along the street of a generated '
                                             'object, pedestrian to bus (generator_output = "objects")')
    object_width_m: tuple[float, ...] = opt((0.4, 2.5), doc='[min, max] width (m) across the street of a generated '
                                            'object (generator_output = "objects")')
    scan_fov_deg: float = opt(180.0, gt=0, le=180, doc='field of view the scan\'s bins spread evenly over, bin 0 at '
                              '+fov/2 (generator_output = "objects"; DeepSense lidar_SCR: 216 bins over 180 deg)')
    scan_range_scale: float = opt(0.1, gt=0, doc='input units per metre of range (generator_output = "objects"; '
                                  "the LiDAR task divides ranges by 10)")
    generator_steps: int = opt(500, ge=1, doc="generator updates, each on a fresh noise batch (the paper's 500 epochs)")
    generator_batch_size: int = opt(64, ge=2, doc="noise samples per generator update")
    generator_lr: float = opt(1e-3, gt=0, doc="generator Adam learning rate")
    samples: int = opt(5000, ge=1, doc='synthetic samples per student epoch: drawn once (student_samples = "pool") '
                       'or anew every epoch ("fresh")')
    metadata_layers: tuple[str, ...] = opt(("hidden",), doc="teacher layers whose saved mean / variance the generator "
                                           'matches (eq. 5 summed): "hidden" = the last hidden state (paper); for the '
                                           'LiDAR GRU also "gru" and "embed", per time step (empty = the paper\'s layer)')
    student_samples: Literal["pool", "fresh"] = opt("pool", doc='"pool": `samples` drawn once, the student runs epochs over '
                                                    'them (reference code); "fresh": new noise for every student batch '
                                                    "(Alg. 1 line 10), `samples` per epoch")
    smoothness: float = opt(0.0, ge=0, doc="weight of a temporal total-variation prior on the generated frames "
                            "(mean absolute change between consecutive frames, added to eq. 8; 0 = paper)")
    adversarial: float = opt(0.0, ge=0, doc="> 0: the generator keeps training during the student stage, one step per "
                             "student batch on eq. 8 minus this weight x the teacher-student logit gap (needs "
                             'student_samples = "fresh"); 0: fixed after step 1 (paper)')
    adversarial_schedule: Literal["constant", "student"] = opt(
        "constant", doc='learning rate of the adversarial generator steps: "constant" (generator_lr throughout) or '
        '"student" (generator_lr scaled by the student\'s [train] schedule, e.g. cosine to 0, so the generator settles '
        "with the student instead of running away from a student that can no longer follow)")
    keep: float = opt(1.0, gt=0, le=1, doc="share of generator samples the student sees: round(batch / keep) are drawn "
                      "and the batch keeps those whose teacher features (the metadata layer) lie closest to the saved "
                      'mean / variance (student_samples = "fresh"; beyond the paper; 1 = all), or by keep_by')
    keep_by: Literal["metadata", "confidence", "class_metadata"] = opt(
        "metadata", doc='what `keep` < 1 ranks the drawn samples by: "metadata" (teacher features closest to the saved '
        'statistics), "confidence" (lowest entropy of the teacher\'s prediction, mean over the predicted steps: '
        'scans the teacher answers with certainty look like the ones it was trained on) or "class_metadata" (teacher '
        "features closest to the saved statistics of the beam the teacher predicts, per time step; needs the "
        "metadata's per-beam statistics)")
    class_metadata_loss: float = opt(0.0, ge=0, doc="> 0: this weight x the mean distance of each generated sample's "
                                     "teacher features to the saved statistics of the beam the teacher predicts for it "
                                     "(class_atypicality, the metadata's per-beam statistics) is added to eq. 8, so samples "
                                     "move onto the clusters real windows of each beam form; beyond the paper, 0 = off")
    mixup: float = opt(0.0, ge=0, le=1, doc="share of every student batch replaced by mixtures lam x_i + (1 - lam) x_j "
                       'of two generator samples, lam ~ U(0, 1), labelled by the teacher (student_samples = "fresh"; '
                       "beyond the paper; 0 = off)")
    inherit: tuple[str, ...] = opt((), doc="student modules initialised with the same-named teacher module's parameters "
                                   '(shapes must match; beyond the paper), e.g. ["embed"]: the LiDAR input embedding '
                                   "216 -> 64, the same size in teacher and student; empty = the paper (random init)")
    freeze_inherited: bool = opt(False, doc="keep the inherited parameters fixed while the student trains")
    targets: float = opt(0.0, ge=0, doc="> 0: conditional generator (beyond the paper): a target class drawn uniformly "
                         "per sample is appended to the noise and this weight x the cross-entropy of the teacher's "
                         "first predicted step towards it is added to eq. 8 (DAFL / data impressions), so the samples "
                         "cover every beam; 0: unconditional (paper)")


@DISTILLERS.register("datafree")
class DataFree(Distiller):
    Config = DataFreeConfig
    needs_teacher = True
    # the pipeline must not prepare the task's data for the student stage of this method
    data_free: ClassVar[bool] = True
    # options that act on every fresh student batch, with why a fixed pool cannot serve them
    FRESH_ONLY: ClassVar[tuple[tuple[str, float, str], ...]] = (
        ("adversarial", 0.0, " (a fixed pool cannot follow a generator that keeps training)"),
        ("mixup", 0.0, ""), ("keep", 1.0, ""))

    @classmethod
    def check_recipe(cls, cfg, teacher, student) -> None:
        if cfg.student_samples == "fresh":
            return
        for key, off, why in cls.FRESH_ONLY:
            if getattr(cfg, key) != off:
                raise SchemaError(f"distill.{key}", f'distill.{key} = {getattr(cfg, key)} needs distill.student_samples = '
                                                    f'"fresh", found "{cfg.student_samples}"{why}')

    def loss(self, batch, student_out: ModelOut, teacher_out: ModelOut | None):
        s, t = student_out.logits, teacher_out.logits
        if self.cfg.student_loss == "mse":
            kd = F.mse_loss(s, t)
        else:
            kd = kd_kl(s, t, self.cfg.temperature)
        return {"loss": kd, f"kd_{self.cfg.student_loss}": kd}
