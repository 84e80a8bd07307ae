"""Decoded and preprocessed DeepSense frames, cached on disk and memory-mapped.

Decoding 960 x 540 JPEGs every epoch would dominate training time, so each task decodes a
modality once, applies its own numpy preprocessing to every frame and keeps the result as
one ``.npy`` array ``[n_frames, ...]`` that later runs open with ``mmap_mode='r'``::

    frames = frame_cache(sc, "rgb", gray224, key="vision.gray224", params={"size": 224})
    x = frames.data[w.past]          # [N, L, 224, 224] without decoding anything again

The cache lives under ``cache_root()/deepsense/<scenario folder name>-<hash of its path>/``
and its file name carries a fingerprint of (the CSV's bytes, every referenced file's path,
size and modification time, the modality, `key` and `params`): editing a file, changing
the preprocessing parameters or bumping `key` builds a new array; anything else reuses it.
`key` must name the preprocessing function and its version (the cache cannot see code
changes). Frames that fail to decode raise BeamcError, or with a lenient scenario are zero
in `data`, False in `ok` and listed in `failures` (pass `ok` to `windows(valid=...)`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from beamc.data import deepsense
from beamc.errors import BeamcError
from beamc.progress import track
from beamc.runs import atomic_write_json, cache_root

Preprocess = Callable[[np.ndarray], np.ndarray]


@dataclass
class FrameArray:
    data: np.ndarray                 # [n, ...] memory-mapped, read-only
    ok: np.ndarray                   # [n] bool: False where the frame failed to decode
    path: Path
    failures: list[str] = field(default_factory=list)
    built: bool = False              # True when this call decoded the frames (False: reused)

    def __len__(self) -> int:
        return len(self.ok)


def scenario_cache_dir(sc: deepsense.Scenario) -> Path:
    tag = hashlib.sha256(str(sc.root).encode()).hexdigest()[:8]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", sc.root.name) or "scenario"
    return cache_root() / "deepsense" / f"{name}-{tag}"


def fingerprint(sc: deepsense.Scenario, modality: str, key: str, params: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(sc.csv_path.read_bytes())
    h.update(json.dumps({"modality": modality, "key": key, "params": params, "rows": sc.line.tolist()},
                        sort_keys=True, default=str).encode())
    for p in sc.paths.get(modality, []):
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def frame_cache(sc: deepsense.Scenario, modality: str, preprocess: Preprocess | None = None, *, key: str,
                params: dict[str, Any] | None = None, lenient: bool | None = None, progress: bool = False) -> FrameArray:
    """Every frame of `modality` read, passed through `preprocess` (identity when None) and
    stored as one array; reused when nothing it depends on changed."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
        raise BeamcError(f"frame_cache: key must be letters, digits, '.', '_' or '-', found {key!r}")
    params = dict(params or {})
    lenient = sc.lenient if lenient is None else lenient
    fp = fingerprint(sc, modality, key, params)
    folder = scenario_cache_dir(sc)
    npy, meta_path = folder / f"{modality}-{key}-{fp}.npy", folder / f"{modality}-{key}-{fp}.json"
    if npy.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        return FrameArray(np.load(npy, mmap_mode="r"), np.asarray(meta["ok"], dtype=bool), npy, meta["failures"])
    folder.mkdir(parents=True, exist_ok=True)
    ok, failures = np.ones(sc.n, dtype=bool), []
    tmp = folder / f".{npy.name}.{os.getpid()}.tmp"
    out = None
    try:
        for i in track(range(sc.n), f"decoding {modality} ({sc.n} frames)", progress):
            try:
                frame = deepsense.read(sc, modality, i)
                frame = np.asarray(preprocess(frame) if preprocess is not None else frame)
            except BeamcError as e:
                if not lenient:
                    raise
                ok[i] = False
                failures.append(str(e))
                continue
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=frame.dtype, shape=(sc.n, *frame.shape))
            elif frame.shape != out.shape[1:]:
                raise BeamcError(f"{sc.where(i, deepsense.MODALITY_COLUMNS[modality])}: preprocessing '{key}' "
                                 f"returned shape {frame.shape}, the first frame had {out.shape[1:]}")
            out[i] = frame
        if out is None:
            raise BeamcError(f"{sc.csv_path}: no {modality} frame could be decoded ({len(failures)} failures; "
                             f"first: {failures[0] if failures else 'none'})")
        out.flush()
        del out
        os.replace(tmp, npy)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_json(meta_path, {"modality": modality, "key": key, "params": params, "scenario": str(sc.root),
                                  "ok": ok.tolist(), "failures": failures})
    return FrameArray(np.load(npy, mmap_mode="r"), ok, npy, failures, built=True)


__all__ = ["FrameArray", "frame_cache", "fingerprint", "scenario_cache_dir"]
