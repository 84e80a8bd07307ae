"""Loss functions of the papers, each small enough to check by hand (tests do).

Logits may carry extra leading dimensions (e.g. [B, steps, C] for beam tracking): every
loss flattens them so each (sample, step) counts once.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def _flat(logits: torch.Tensor) -> torch.Tensor:
    return logits.reshape(-1, logits.shape[-1])


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(_flat(logits), y.reshape(-1))


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """tau^2 * KL(softmax(t/tau) || softmax(s/tau)), averaged over samples (Hinton et al.).

    The sub-6 paper writes the soft term as CE(p~S, p~T); the two differ by the teacher's
    entropy, a constant for the student, so gradients are identical. KL is reported because
    it is 0 when the student matches the teacher."""
    s = F.log_softmax(_flat(student_logits) / temperature, dim=-1)
    t = F.log_softmax(_flat(teacher_logits) / temperature, dim=-1)
    return F.kl_div(s, t, reduction="batchmean", log_target=True) * temperature**2


def focal_loss(logits: torch.Tensor, y: torch.Tensor, alpha: float = 1.0, gamma: float = 2.0) -> torch.Tensor:
    """alpha * (1 - p_y)^gamma * (-log p_y), averaged over samples and steps (Lin et al.)."""
    logp = F.log_softmax(_flat(logits), dim=-1).gather(1, y.reshape(-1, 1)).squeeze(1)
    return (alpha * (1 - logp.exp()) ** gamma * -logp).mean()


def huber(a: torch.Tensor, b: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Mean Huber loss, eq. (10) of the sub-6 paper for delta = 1."""
    return F.huber_loss(a, b, reduction="mean", delta=delta)


def pairwise_distances(f: torch.Tensor) -> torch.Tensor:
    """[M, D] -> [M, M] Euclidean distances from the Gram matrix (no M x M x D tensor; exact
    zeros on the diagonal; gradients safe where two samples coincide)."""
    f = f - f.mean(dim=0, keepdim=True)  # distances are translation invariant; centring keeps this precise
    g = f @ f.T
    sq = (g.diagonal()[:, None] + g.diagonal()[None, :] - 2 * g).clamp_min(1e-12)
    eye = torch.eye(len(f), dtype=torch.bool, device=f.device)
    return sq.sqrt().masked_fill(eye, 0.0)


def rkd_distance_potentials(f: torch.Tensor) -> torch.Tensor:
    """psi_dist (eq. 7) for all unordered pairs i < j, normalised by their mean distance mu."""
    f = f.reshape(len(f), -1)
    d = pairwise_distances(f)
    iu = torch.triu_indices(len(f), len(f), offset=1, device=f.device)
    pairs = d[iu[0], iu[1]]
    return pairs / pairs.mean().clamp_min(1e-12)


@functools.lru_cache(maxsize=8)
def _distinct_triples(m: int, device: str) -> torch.Tensor:
    """[M, M, M] bool: j, i, k pairwise distinct (cached per batch size)."""
    idx = torch.arange(m, device=device)
    return ((idx[:, None, None] != idx[None, :, None]) & (idx[:, None, None] != idx[None, None, :])
            & (idx[None, :, None] != idx[None, None, :]))


def _angle_cosines(f: torch.Tensor) -> torch.Tensor:
    """cos[j, i, k] of the angle at vertex j between f_i - f_j and f_k - f_j (0 where undefined)."""
    f = f.reshape(len(f), -1)
    f = f - f.mean(dim=0, keepdim=True)  # angles are translation invariant; centring keeps the Gram form precise
    # (f_i - f_j).(f_k - f_j) = G_ik - G_ij - G_jk + G_jj from the Gram matrix G: O(M^2 D + M^3)
    # instead of materialising the M x M x D difference vectors (17 GFLOP per batch of 256
    # with a 1024-wide teacher layer).
    g = f @ f.T
    diag = g.diagonal()
    dot = g.unsqueeze(0) - g.unsqueeze(2) - g.unsqueeze(1) + diag[:, None, None]  # dot[j, i, k]
    norm = pairwise_distances(f).clamp_min(1e-12)                                 # norm[j, i] = |f_i - f_j|
    return dot / (norm.unsqueeze(2) * norm.unsqueeze(1))


def rkd_angle_potentials(f: torch.Tensor) -> torch.Tensor:
    """psi_angl (eq. 8): cos of the angle at vertex j between x_i - x_j and x_k - x_j, for
    every ordered triple of distinct indices (each of the 3*C(M,3) angles appears twice)."""
    return _angle_cosines(f)[_distinct_triples(len(f), str(f.device))]


def rkd_loss(f_teacher: torch.Tensor, f_student: torch.Tensor, delta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance-wise, angle-wise) RKD losses of eq. (9)-(11): Huber between teacher and
    student potentials, averaged over pairs and ordered distinct triples respectively
    (the same means as over `rkd_*_potentials`, computed without gathering M^3 entries)."""
    with torch.no_grad():
        t_dist = rkd_distance_potentials(f_teacher)
        t_cos = _angle_cosines(f_teacher)
    dist = huber(rkd_distance_potentials(f_student), t_dist, delta)
    mask = _distinct_triples(len(f_student), str(f_student.device))
    per_triple = F.huber_loss(_angle_cosines(f_student), t_cos, reduction="none", delta=delta)
    angle = (per_triple * mask).sum() / mask.sum()
    return dist, angle
