"""`beamc data inspect DIR`: what a DeepSense scenario folder holds and whether it loads.

Counts rows, sequences and modalities, the frame interval, the beam histogram, checks every
referenced file (JPEGs decoded at 1/8 scale and .mat headers by default, every file read
in full with `full=True`) and draws a contact sheet: a few frames of the first sequence,
one row each, with the camera frame, the LiDAR scan, the radar range-angle map and the 64
beam powers side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from beamc.data import deepsense as ds
from beamc.errors import BeamcError
from beamc.progress import track

SHEET_FRAMES = 4


def range_angle_map(cube: np.ndarray, fft_size: int = 64) -> np.ndarray:
    """[fft_size angle bins, 256 range bins] magnitude, the reference processing
    (umut-demirhan/Radar-aided-beam-prediction ``radar_preprocessing.py``: range FFT on the
    samples, static clutter removed by subtracting the mean over chirps, angle FFT over the
    4 Rx zero-padded to `fft_size`, magnitude summed over chirps) with the angle axis
    fftshifted so bin j looks at sin(theta) = 2 (j - fft_size/2) / fft_size."""
    x = np.fft.fft(cube, axis=1)
    x = x - x.mean(axis=2, keepdims=True)
    x = np.fft.fftshift(np.fft.fft(x, n=fft_size, axis=0), axes=0)
    return np.abs(x).sum(axis=2)


def angle_bins_deg(fft_size: int = 64) -> np.ndarray:
    return np.degrees(np.arcsin(np.clip(2 * (np.arange(fft_size) - fft_size / 2) / fft_size, -1, 1)))


def inspect_scenario(root: str | Path, *, lenient: bool = False, csv_name: str | None = None, full: bool = False,
                     sheet: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    sc = ds.open_scenario(root, csv_name=csv_name, lenient=lenient)
    failures: list[str] = []
    per_modality: dict[str, int] = {}
    jobs = [(m, i) for m in sc.modalities for i in range(sc.n)]
    seen_bs = set()
    for m, i in track(jobs, f"checking {len(jobs)} files", progress):
        if m == "gps_bs":  # one shared file: check it once
            if sc.paths[m][i] in seen_bs:
                continue
            seen_bs.add(sc.paths[m][i])
        try:
            ds.read(sc, m, i) if full else ds.check_file(sc, m, i)
        except BeamcError as e:
            failures.append(str(e))
            per_modality[m] = per_modality.get(m, 0) + 1
    beam = sc.beam
    if (beam < 0).all() and "power" in sc.paths:
        beam = np.array([int(np.argmax(ds.read_power(sc, i))) for i in range(sc.n)])
    lengths = np.bincount(sc.segment)
    same = sc.segment[1:] == sc.segment[:-1]
    gaps = np.diff(sc.time_s)[same]
    info: dict[str, Any] = {
        "folder": str(sc.root), "csv": sc.csv_path.name, "columns": list(sc.columns),
        "rows": sc.summary.rows, "kept": sc.n, "skipped": dict(sc.summary.skipped),
        "skipped_lines": [msg for _, msg in sc.summary.skipped_lines],
        "sequences": int(len(np.unique(sc.seq))), "segments": int(len(lengths)),
        "sequence_length": {"min": int(lengths.min()), "median": float(np.median(lengths)), "max": int(lengths.max())},
        "frame_interval_ms": float(np.median(gaps) * 1000) if gaps.size else None,
        "modalities": list(sc.modalities),
        "beam_histogram": np.bincount(beam[beam >= 0], minlength=ds.N_BEAMS).tolist(),
        "failed_files": failures, "failed_per_modality": per_modality, "checked": "full read" if full else "headers",
    }
    if sheet is not None:
        info["contact_sheet"] = str(contact_sheet(sc, Path(sheet)))
    return info


def contact_sheet(sc: ds.Scenario, path: Path) -> Path:
    """PNG: SHEET_FRAMES frames of the first sequence (rows) x camera / LiDAR / radar / beam powers."""
    from beamc.plots import _plt, save

    plt = _plt()
    first = np.flatnonzero(sc.segment == sc.segment[0])
    picks = first[np.round(np.linspace(0.1, 0.9, min(SHEET_FRAMES, len(first))) * (len(first) - 1)).astype(int)]
    panels = [m for m in ("rgb", "lidar", "radar", "power") if m in sc.paths]
    fig, axes = plt.subplots(len(picks), len(panels), figsize=(4.2 * len(panels), 2.6 * len(picks)), squeeze=False)
    for r, i in enumerate(picks):
        for c, m in enumerate(panels):
            ax = axes[r][c]
            try:
                _panel(ax, sc, m, int(i))
            except BeamcError as e:
                ax.text(0.5, 0.5, "failed to load:\n" + str(e)[-80:], ha="center", va="center", fontsize=6, wrap=True)
                ax.set_axis_off()
            if r == 0:
                ax.set_title({"rgb": "camera", "lidar": "LiDAR (SCR)", "radar": "radar range-angle",
                              "power": "beam power"}[m])
        axes[r][0].set_ylabel(f"line {int(sc.line[i])}\nseq {int(sc.seq[i])}", fontsize=8)
    fig.suptitle(f"{sc.root.name}: {sc.n} frames, {len(np.unique(sc.seq))} sequences")
    return save(fig, path)


def _panel(ax, sc: ds.Scenario, modality: str, i: int) -> None:
    if modality == "rgb":
        ax.imshow(ds.read_image(sc, i))
        ax.set_xticks([])
        ax.set_yticks([])
    elif modality == "lidar":
        scan = ds.read_lidar(sc, i)
        ax.plot(ds.lidar_bearings_deg(len(scan)), scan, ".", ms=2)
        ax.set_xlim(-90, 90)
        ax.set_xlabel("bearing (deg)", fontsize=7)
        ax.set_ylabel("range (m)", fontsize=7)
    elif modality == "radar":
        ra = range_angle_map(ds.read_radar(sc, i))[:, :128]  # first 25 m
        ax.imshow(ra.T, origin="lower", aspect="auto", extent=[-1, 1, 0, 128 * 0.195])
        ax.set_xlabel("sin(bearing)", fontsize=7)
        ax.set_ylabel("range (m)", fontsize=7)
    else:
        p = ds.read_power(sc, i)
        ax.bar(np.arange(1, ds.N_BEAMS + 1), p, width=1.0)
        if sc.beam[i] >= 0:
            ax.axvline(sc.beam[i] + 1, color="r", lw=1, label=f"unit1_beam_index {sc.beam[i] + 1}")
            ax.legend(fontsize=6)
        ax.set_xlabel("beam (1-based)", fontsize=7)
    ax.tick_params(labelsize=6)
