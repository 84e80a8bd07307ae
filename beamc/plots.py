"""PNG plots for runs (matplotlib, Agg backend, imported lazily)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from beamc.runs import atomic_write_bytes


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    _plt().close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def loss_curves(histories: Mapping[str, Sequence[Mapping[str, Any]]], path: Path, key: str = "val_loss",
                title: str = "Validation loss per epoch") -> Path | None:
    """One line per model (the paper's Fig. 2)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for name, rows in histories.items():
        pts = [(int(r["epoch"]), float(r[key])) for r in rows if r.get(key) not in (None, "", "nan")]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, label=name)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("epoch")
    ax.set_ylabel(key.replace("_", " "))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, path)


def sub6_curves(metrics: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Top-K accuracy and spectral efficiency vs SNR for every model (Figs. 3 and 4)."""
    plt = _plt()
    models = {n: m["metrics"] for n, m in metrics["models"].items() if m.get("metrics")}
    if not models:
        return []
    any_rows = next(iter(models.values()))["by_snr"]
    ks = sorted(int(k[3:]) for k in any_rows[0] if k.startswith("top"))
    def per_k(key: str, ylabel: str, title: str, name: str, scale: float, optimal: bool) -> Path:
        fig, axes = plt.subplots(1, len(ks), figsize=(5 * len(ks), 4), squeeze=False)
        for ax, k in zip(axes[0], ks):
            for model, m in models.items():
                rows = m["by_snr"]
                ax.plot([r["snr_db"] for r in rows], [scale * r[key.format(k=k)] for r in rows], marker="o", ms=3, label=model)
            if optimal:
                ax.plot([r["snr_db"] for r in any_rows], [r["se_optimal"] for r in any_rows], "k--", label="optimal beam")
            ax.set_xlabel("SNR (dB)")
            ax.set_ylabel(ylabel.format(k=k))
            ax.grid(alpha=0.3)
            ax.legend()
        fig.suptitle(title)
        return save(fig, out_dir / name)

    paths = [per_k("top{k}", "Top-{k} accuracy (%)", "Beam prediction accuracy vs SNR", "accuracy_vs_snr.png", 100.0, False),
             per_k("se_top{k}", "Top-{k} spectral efficiency (bits/s/Hz)", "Spectral efficiency vs SNR", "se_vs_snr.png", 1.0, True)]
    return paths


def slot_curves(models: Mapping[str, Mapping[str, Any]], path: Path,
                title: str = "Beam tracking per time slot") -> Path | None:
    """Top-K accuracy and DBA per predicted slot t .. t+J, one line per model (the vision
    paper's Figs. 7, 9 and 11). `models` maps a label to a vision task's evaluate() dict."""
    models = {n: m for n, m in models.items() if m.get("slots")}
    if not models:
        return None
    plt = _plt()
    first = next(iter(models.values()))
    keys = [k for k in first if k.startswith("top") and isinstance(first[k], list)] + ["dba", "dba_y3"]
    names = {"dba": f"DBA, eq. (21), Delta = {first.get('dba_delta', 5):g}", "dba_y3": "DBA Y3 (paper's tables)"}
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, m in models.items():
            ax.plot(range(len(m["slots"])), [100 * v for v in m[key]], marker="o", ms=3, label=name)
        ax.set_xticks(range(len(first["slots"])), first["slots"])
        ax.set_xlabel("time slot")
        ax.set_ylabel(names.get(key, f"Top-{key[3:]} accuracy") + " (%)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(title)
    return save(fig, path)
