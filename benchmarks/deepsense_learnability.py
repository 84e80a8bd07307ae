"""Can a model learn beam tracking from the embedded V2I simulator? Train a small baseline on
simulated data and print held-out Top-1 / Top-5 for the current and future beams.

LiDAR (default): the LiDAR paper's setting and teacher (AZakeri94/DF-KD-for-LiDAR-aided-Beam-
Tracking, ``model.py`` GruModel: Linear(216, 64) -> dropout -> GRU(128) -> Linear(64), 96,640
parameters): 8 lidar_SCR scans / 10, three zero frames appended, current + 3 future beams
read off the last 4 outputs, padded future beams ignored.
Camera: 8 frames -> grayscale, blurred, 64 x 64 -> 7 motion masks (the vision paper's
preprocessing, threshold 0.1 of the max difference) -> a small CNN per frame -> GRU; same
output layout with 6 future beams.

Data are split by sequence (first 80 % train, as the vision reference). Chance Top-5 is
5/64 = 7.8 %. Everything goes through the real-format loader and the frame cache.

    python benchmarks/deepsense_learnability.py                      # LiDAR, 60 sequences
    python benchmarks/deepsense_learnability.py --modality camera --sequences 40 --epochs 12
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def lidar_div10(scan: np.ndarray) -> np.ndarray:
    return (scan / 10.0).astype(np.float32)


def gray64(img: np.ndarray) -> np.ndarray:
    """RGB 540 x 960 -> grayscale 0..1, Gaussian-blurred, block-averaged to 64 x 64."""
    from scipy.ndimage import gaussian_filter, zoom

    gray = img.astype(np.float32).mean(axis=2) / 255.0
    small = zoom(gray, (64 / gray.shape[0], 64 / gray.shape[1]), order=1)
    return gaussian_filter(small, sigma=1.0).astype(np.float32)


def motion_masks(frames: np.ndarray, eps: float = 0.1) -> np.ndarray:
    """[N, L, H, W] blurred gray frames -> [N, L-1, H, W] masks |diff| >= eps * max (vision paper, eq. 13)."""
    diff = np.abs(np.diff(frames, axis=1))
    peak = diff.max(axis=(2, 3), keepdims=True)
    return (diff >= eps * np.maximum(peak, 1e-6)).astype(np.float32)


def build(modality: str, sequences: int, seed: int):
    from dataclasses import replace

    from beamc.data import deepsense as ds
    from beamc.data.frame_cache import frame_cache
    from beamc.data.synth import cached_deepsense
    from beamc.data.synth.v2i import DeepSenseSynthConfig
    from beamc.data.windows import beam_labels, split_sequences, windows

    cfg = replace(DeepSenseSynthConfig(), sequences=sequences, seed=seed, radar=False, camera=modality == "camera")
    t0 = time.perf_counter()
    sc = ds.open_scenario(cached_deepsense(cfg))
    if modality == "lidar":
        frames = frame_cache(sc, "lidar", lidar_div10, key="bench.lidar_div10", progress=True)
        w = windows(sc, past=8, future=3, pad_future=True, valid=frames.ok)
    else:
        frames = frame_cache(sc, "rgb", gray64, key="bench.gray64", progress=True)
        w = windows(sc, past=8, future=6, pad_future=True, valid=frames.ok)
    data_s = time.perf_counter() - t0
    split = split_sequences(sc)
    y = beam_labels(sc, w)
    x = np.asarray(frames.data)[w.past]
    if modality == "camera":
        x = motion_masks(x)
    train, test = np.isin(w.seq, split.train), np.isin(w.seq, split.test)
    return x[train], y[train], x[test], y[test], {"rows": sc.n, "windows": len(w), "data_seconds": data_s}


def model(modality: str, n_out_steps: int):
    import torch
    from torch import nn

    class LidarGru(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(216, 64)
            self.drop = nn.Dropout(0.3)
            self.gru = nn.GRU(64, 128, batch_first=True)
            self.fc = nn.Linear(128, 64)

        def forward(self, x):  # [B, 8, 216]
            x = torch.cat([x, torch.zeros_like(x[:, :3])], dim=1)
            out, _ = self.gru(self.drop(self.embed(x)))
            return self.fc(out)[:, -4:]

    class CameraGru(nn.Module):
        def __init__(self):
            super().__init__()
            self.cnn = nn.Sequential(
                nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(16 * 8 * 8, 64))
            self.gru = nn.GRU(64, 64, batch_first=True)
            self.fc = nn.Linear(64, 64)

        def forward(self, x):  # [B, 7, 64, 64]
            b, t = x.shape[:2]
            f = self.cnn(x.reshape(b * t, 1, *x.shape[2:])).reshape(b, t, -1)
            f = torch.cat([f, torch.zeros_like(f[:, :n_out_steps - 1])], dim=1)
            out, _ = self.gru(f)
            return self.fc(out)[:, -n_out_steps:]

    return LidarGru() if modality == "lidar" else CameraGru()


def topk(logits: np.ndarray, y: np.ndarray, k: int) -> list[float]:
    top = np.argsort(-logits, axis=-1)[..., :k]
    hit = (top == y[..., None]).any(axis=-1)
    valid = y >= 0
    return [float(hit[:, s][valid[:, s]].mean()) for s in range(y.shape[1])]


def run(modality: str = "lidar", sequences: int = 60, seed: int = 0, epochs: int = 20, batch: int = 32) -> dict:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    xtr, ytr, xte, yte, info = build(modality, sequences, seed)
    net = model(modality, ytr.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss(ignore_index=-100)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    t0 = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(xt)).split(batch):
            opt.zero_grad()
            loss = loss_fn(net(xt[idx]).reshape(-1, 64), yt[idx].reshape(-1))
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(torch.from_numpy(xte[i:i + 256])) for i in range(0, len(xte), 256)]).numpy()
    return {"modality": modality, "sequences": sequences, "seed": seed, "epochs": epochs,
            "params": sum(p.numel() for p in net.parameters()), "train_windows": len(xtr), "test_windows": len(xte),
            "top1": topk(logits, yte, 1), "top5": topk(logits, yte, 5), "chance_top5": 5 / 64,
            "train_seconds": time.perf_counter() - t0, **info}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modality", choices=["lidar", "camera"], default="lidar")
    ap.add_argument("--sequences", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args()
    res = run(args.modality, args.sequences, args.seed, args.epochs)
    if args.json:
        print(json.dumps(res))
        return
    steps = ["current"] + [f"t+{i}" for i in range(1, len(res["top1"]))]
    print(f"{res['modality']} baseline ({res['params']:,} parameters), {res['sequences']} simulated sequences, "
          f"{res['train_windows']} train / {res['test_windows']} held-out windows, {res['epochs']} epochs "
          f"({res['train_seconds']:.0f} s training)")
    print("step     " + "  ".join(f"{s:>8}" for s in steps))
    print("Top-1 %  " + "  ".join(f"{100 * v:8.1f}" for v in res["top1"]))
    print("Top-5 %  " + "  ".join(f"{100 * v:8.1f}" for v in res["top5"]) + f"   (chance {100 * 5 / 64:.1f})")


if __name__ == "__main__":
    main()
