"""Run directories, atomic writes, resume and the `latest` pointer.

A run lives in runs/<recipe>-<YYYYmmdd-HHMMSS>/ and holds the resolved recipe, checkpoints,
history.csv, metrics.json and plots. Every file is written to a temporary name and renamed
into place, so a run killed at any instant leaves either the old or the new file, never a
torn one; `run.json` says which stages are complete so `--resume` can continue.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from beamc.errors import BeamcError

RUN_FILE = "run.json"
# what every run writes before its first stage; a folder holding only these has no results
RECORD_FILES = (RUN_FILE, "recipe.toml", "preprocess.json")


def temp_file_beside(path: str | Path, suffix: str = ".tmp") -> tuple[int, str]:
    """A new file `.<name>.<random><suffix>` next to `path`, created exclusively and open for
    writing, to be renamed onto `path`. Its mode is the one plain open() gives (0666 less the
    umask): tempfile.mkstemp's 0600 survives the rename and left every checkpoint, metrics and
    bundle file unreadable to other users and to a serving container."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(tmp, flags, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name next to {path}")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def atomic_write_json(path: str | Path, data: Any, *, allow_nan: bool = True) -> Path:
    """`allow_nan=False` refuses NaN/inf (ValueError): strict JSON readers reject the bare NaN tokens."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=_json_default, allow_nan=allow_nan) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    rows = list(rows)
    buf = io.StringIO()
    if rows:
        cols: list[str] = []
        for r in rows:
            cols.extend(k for k in r if k not in cols)
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def read_json(path: str | Path, what: str = "file") -> Any:
    p = Path(path)
    if not p.exists():
        raise BeamcError(f"{what} not found: {p}")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise BeamcError(f"{p}: invalid JSON ({e})") from None


def _timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


class Run:
    """A run directory and its status file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # -- status -------------------------------------------------------------------------
    @property
    def status(self) -> dict[str, Any]:
        p = self.path / RUN_FILE
        return json.loads(p.read_text()) if p.exists() else {}

    def update_status(self, **changes: Any) -> None:
        status = self.status
        status.update(changes)
        atomic_write_json(self.path / RUN_FILE, status)

    def stage_done(self, stage: str) -> bool:
        return stage in self.status.get("stages_done", [])

    def mark_stage(self, stage: str) -> None:
        done = self.status.get("stages_done", [])
        if stage not in done:
            done.append(stage)
        self.update_status(stages_done=done)
        # `latest` moves here, once the run has something to show, and not when its folder is
        # made: a start that fails (a missing data folder, a bad teacher checkpoint) must not
        # take `latest` from the last good run that export and evaluate default to
        set_latest(self.path.parent, self.path)

    @property
    def has_progress(self) -> bool:
        """A finished stage or any checkpoint (*.pt, training states included) in the folder."""
        return bool(self.status.get("stages_done")) or any(self.path.glob("*.pt"))

    def discard_if_empty(self) -> bool:
        """Remove the folder of a run that produced nothing but its own records (recipe.toml,
        run.json, preprocess.json); True if removed. Anything else in it keeps the folder."""
        if self.has_progress:
            return False
        entries = list(self.path.iterdir())
        if any(p.name not in RECORD_FILES and not (p.name.startswith(".") and p.name.endswith(".tmp")) for p in entries):
            return False
        for p in entries:
            p.unlink(missing_ok=True)
        try:
            self.path.rmdir()
        except OSError:  # something appeared meanwhile: keep it
            return False
        return True

    @property
    def complete(self) -> bool:
        return self.status.get("state") == "complete"

    def file(self, name: str) -> Path:
        return self.path / name


def new_run(out_root: str | Path, recipe_name: str) -> Run:
    root = Path(out_root)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{recipe_name}-{_timestamp()}"
    path = root / base
    n = 1
    while path.exists():
        n += 1
        path = root / f"{base}-{n}"
    path.mkdir()
    run = Run(path)
    run.update_status(recipe=recipe_name, state="running", stages_done=[], created=_dt.datetime.now().isoformat())
    return run  # `latest` moves when its first stage is done (Run.mark_stage)


def set_latest(out_root: str | Path, run_path: str | Path) -> None:
    """Point <out_root>/latest at run_path (a relative symlink, replaced atomically)."""
    root = Path(out_root)
    link = root / "latest"
    tmp = root / f".latest.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        os.symlink(Path(run_path).name, tmp)
        os.replace(tmp, link)
    except OSError:  # filesystems without symlinks: a one-line text pointer
        tmp.unlink(missing_ok=True)
        atomic_write_text(root / "latest.txt", Path(run_path).name + "\n")


def resolve_run_dir(path: str | Path) -> Path:
    """A run directory given by the user: 'runs/latest' and 'latest.txt' pointers resolved."""
    p = Path(path)
    if not p.exists() and p.name == "latest" and (p.parent / "latest.txt").exists():
        p = p.parent / (p.parent / "latest.txt").read_text().strip()
    if not p.exists():
        raise BeamcError(f"run directory not found: {path}")
    p = p.resolve()
    if not (p / RUN_FILE).exists():
        raise BeamcError(f"{path} is not a beamc run directory (no {RUN_FILE})")
    return p


def unfinished_runs(out_root: str | Path, recipe_name: str) -> list[Run]:
    """Runs of this recipe under out_root that --resume may continue, most recently active
    first: not complete, and not a run that failed before producing anything (a bad data
    folder): resuming that would only start over, and it must not hide an interrupted run."""
    root = Path(out_root)
    if not root.exists():
        return []
    candidates = sorted((p for p in root.glob(f"{recipe_name}-*") if (p / RUN_FILE).exists()),
                        key=lambda p: p.stat().st_mtime, reverse=True)
    runs = []
    for p in candidates:
        run = Run(p)
        status = run.status
        if status.get("recipe") != recipe_name or status.get("state") == "complete":
            continue
        if status.get("state") == "failed" and not run.has_progress:
            continue
        runs.append(run)
    return runs


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: its folder keeps what was done and can be resumed. A
    KeyboardInterrupt still, so whatever stops on Ctrl-C stops on it."""

    def __init__(self, path: str | Path):
        super().__init__(str(path))
        self.path = Path(path)


def cache_root() -> Path:
    """Shared cache for generated data and reusable teachers ($BEAMC_CACHE, default ~/.cache/beamc)."""
    env = os.environ.get("BEAMC_CACHE")
    root = Path(env) if env else Path.home() / ".cache" / "beamc"
    root.mkdir(parents=True, exist_ok=True)
    return root
