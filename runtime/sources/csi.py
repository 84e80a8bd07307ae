"""Sub-6 CSI streams: recordings (`csi:FILE.npz`, `csi:DIR` of .mat frames) and the embedded
street simulator as a live generator (`synth:sub6`).

Recording format "beamc-csi/1" (one .npz written with numpy.savez; `write_recording`)::

    csi     complex64 [T, A, K]   uplink sub-6 CSI of one user per snapshot (antennas x subcarriers),
                                  as the receiver estimates it: not normalised (the bundle's
                                  preprocessing state does that)
    t       float64   [T]         timestamps in seconds (any origin, finite, non-decreasing); a
                                  recording that breaks this is refused when opened, naming the
                                  first offending frame (a replay paces on t, so one bad value
                                  would stall or end it)
    user    int64     [T]         optional: the user a snapshot belongs to (sequence key)
    label   int64     [T]         optional: best mmWave beam, 0-based; -1 where unknown (any other
                                  value outside the model's beams is counted "bad label": the
                                  frame is predicted, not scored)
    power   float32   [T, B]      optional: received mmWave power per codebook beam (linear), for
                                  the power loss of sweeping only the predicted top-K beams
    format  str                   "beamc-csi/1"
    meta    str                   optional: JSON saying how the recording was made

A folder of per-frame MATLAB v5 files (`csi:DIR`, files sorted by name) holds the same
fields per frame: variables `csi` [A, K] complex, optional `t`, `user`, `label`, `power` [B].
A file that cannot be read (truncated, not v5) is a bad frame; the stream goes on. So is a
file whose `t` is not finite ("bad timestamp"); .mat frames are released one per 20 ms in
file-name order, so their `t` is only reported, never waited on.

In both layouts a snapshot with NaN or inf in `csi` is a bad frame "non-finite input" (checked
by the pipeline for every source).

`beamc data record csi OUT --run RUN` writes a recording from the embedded simulator: the
run's test users at the task's reference SNR with the same noise `TaskData.arrays` draws, so a
replay through the bundle reproduces the offline test accuracy exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from beamc.errors import BeamcError
from beamc.registry import SOURCES
from beamc.runtime.frames import BAD_TIMESTAMP, UNREADABLE_MAT, BadFrame, Frame, FrameError
from beamc.runtime.sources import Source, SourceContext

FORMAT = "beamc-csi/1"
DEFAULT_INTERVAL_S = 0.02  # one snapshot per 20 ms SSB period (the sub-6 task's default slot)


def write_recording(path: str | Path, csi: np.ndarray, t: np.ndarray | None = None, *, user: np.ndarray | None = None,
                    label: np.ndarray | None = None, power: np.ndarray | None = None,
                    meta: dict[str, Any] | None = None) -> Path:
    """Write a beamc-csi/1 recording atomically (temporary name, then rename)."""
    import os

    from beamc.runs import temp_file_beside

    csi = np.asarray(csi)
    if csi.ndim != 3 or not np.iscomplexobj(csi):
        raise BeamcError(f"CSI recording: csi must be complex [T, antennas, subcarriers], found {csi.dtype} {csi.shape}")
    n = len(csi)
    arrays: dict[str, Any] = {"csi": csi.astype(np.complex64), "format": np.asarray(FORMAT),
                              "t": np.arange(n) * DEFAULT_INTERVAL_S if t is None else np.asarray(t, np.float64)}
    for name, value, dtype in (("user", user, np.int64), ("label", label, np.int64), ("power", power, np.float32)):
        if value is not None:
            arrays[name] = np.asarray(value, dtype)
    for name, value in arrays.items():
        if name != "format" and len(value) != n:
            raise BeamcError(f"CSI recording: {name} has {len(value)} entries, csi has {n}")
    if meta is not None:
        arrays["meta"] = np.asarray(json.dumps(meta))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path, ".npz")  # umask-respecting mode (mkstemp's 0600 hid recordings from others)
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_recording(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise BeamcError(f"CSI recording not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - zipfile/ValueError/OSError for a damaged file
        raise BeamcError(f"{path}: not a readable .npz CSI recording ({type(e).__name__}: {e})") from None
    fmt = str(arrays.get("format", ""))
    if fmt != FORMAT:
        raise BeamcError(f"{path}: key 'format': expected '{FORMAT}', found {fmt!r}")
    csi = arrays.get("csi")
    if csi is None or csi.ndim != 3 or not np.iscomplexobj(csi):
        found = "no key 'csi'" if csi is None else f"{csi.dtype} {list(csi.shape)}"
        raise BeamcError(f"{path}: key 'csi': expected complex [T, antennas, subcarriers], found {found}")
    for key in ("t", "user", "label", "power"):
        if key in arrays and len(arrays[key]) != len(csi):
            raise BeamcError(f"{path}: key '{key}': expected {len(csi)} entries (one per csi snapshot), found {len(arrays[key])}")
    if "t" in arrays:
        _check_times(path, arrays["t"])
    return arrays


def _check_times(path: Path, t: np.ndarray) -> None:
    """Timestamps drive the replay's pacing: refuse the whole file, naming the first bad frame,
    rather than stall on a NaN or silently reorder time mid-stream."""
    if t.ndim != 1 or t.dtype.kind not in "iuf":
        raise BeamcError(f"{path}: key 't': expected a 1-D array of seconds, found {t.dtype} {list(t.shape)}")
    finite = np.isfinite(t)
    if not finite.all():
        i = int(np.argmin(finite))
        raise BeamcError(f"{path}: key 't': expected finite, non-decreasing timestamps, found {t[i]} at frame {i}")
    if len(t) > 1 and (np.diff(t) < 0).any():
        i = int(np.argmax(np.diff(t) < 0)) + 1
        raise BeamcError(f"{path}: key 't': expected finite, non-decreasing timestamps, found {t[i]:g} at frame {i} "
                         f"after {t[i - 1]:g} at frame {i - 1}")


def check_csi_task(ctx: SourceContext, kind: str) -> None:
    """A CSI source gives only 'csi': refuse up front a bundle whose task needs anything else
    (otherwise every frame would become a "shape mismatch" bad frame, thousands of them)."""
    if tuple(ctx.modalities) != ("csi",):
        task = ctx.manifest.get("task", {}).get("name", "?") if ctx.manifest else "?"
        raise BeamcError(f"source {kind}: gives sub-6 CSI snapshots (modality 'csi'), the bundle's task '{task}' needs "
                         f"{', '.join(ctx.modalities) or 'nothing'}")


def _scalar(mat: dict[str, Any], key: str, kind: type) -> Any:
    return kind(np.asarray(mat[key]).ravel()[0]) if key in mat and np.asarray(mat[key]).size else None


@SOURCES.register("csi")
class CsiRecording(Source):
    kind = "csi"

    def __init__(self, target: str, options: dict[str, str], ctx: SourceContext) -> None:
        super().__init__(target, options, ctx)
        check_csi_task(ctx, "csi")
        self.path = Path(target)
        if self.path.is_dir():
            self.files = sorted(self.path.glob("*.mat"))
            if not self.files:
                raise BeamcError(f"{self.path}: no .mat CSI frames in this folder (expected e.g. frame_000000.mat)")
            self.arrays: dict[str, np.ndarray] | None = None
        else:
            self.arrays = read_recording(self.path)

    def __len__(self) -> int:
        return len(self.files) if self.arrays is None else len(self.arrays["csi"])

    def frames(self) -> Iterator[Frame | BadFrame]:
        if self.arrays is None:
            yield from self._mat_frames()
            return
        a = self.arrays
        n = len(a["csi"])
        # plain Python lists up front: per-frame numpy scalar indexing costs more than the frame
        t = a["t"].tolist()
        labels = a["label"].tolist() if "label" in a else [None] * n  # -1 and out-of-range: the pipeline's check_label
        users = a["user"].tolist() if "user" in a else [None] * n
        power = list(a["power"]) if "power" in a else [None] * n
        csi = list(a["csi"])
        for i in range(n):
            yield Frame(i, t[i], {"csi": csi[i]}, labels[i], power[i], users[i])

    def _mat_frames(self) -> Iterator[Frame]:
        for i, path in enumerate(self.files):
            frame = Frame(id=i, t=i * DEFAULT_INTERVAL_S)

            def load(frame: Frame = frame, path: Path = path) -> None:
                import scipy.io

                try:
                    mat = scipy.io.loadmat(path)
                except Exception as e:  # noqa: BLE001 - truncated, v7.3, not a .mat
                    raise FrameError(UNREADABLE_MAT, f"{path}: cannot read the .mat file ({type(e).__name__}: {e})") from None
                if "csi" not in mat:
                    found = sorted(k for k in mat if not k.startswith("__"))
                    raise FrameError(UNREADABLE_MAT, f"{path}: expected a variable 'csi', found {', '.join(found) or 'none'}")
                try:
                    t, user = _scalar(mat, "t", float), _scalar(mat, "user", int)
                except (TypeError, ValueError) as e:  # a string or struct where a number belongs
                    raise FrameError(UNREADABLE_MAT, f"{path}: variable 't' or 'user' is not a number ({e})") from None
                if t is not None and not np.isfinite(t):
                    raise FrameError(BAD_TIMESTAMP, f"{path}: variable 't': expected a finite time in seconds, found {t}")
                frame.data = {"csi": np.asarray(mat["csi"])}
                frame.t = frame.t if t is None else t
                # as stored (MATLAB saves 12 as 12.0): the pipeline's check_label decides what is a beam
                label = np.asarray(mat["label"]) if "label" in mat else None
                frame.label = label if label is not None and label.size else None
                frame.key = user
                frame.power = np.asarray(mat["power"], np.float64).ravel() if "power" in mat else None

            frame.load = load
            yield frame

    def info(self) -> dict[str, Any]:
        return {"path": str(self.path), "frames": len(self),
                "layout": "folder of .mat frames" if self.arrays is None else FORMAT}


# ------------------------------------------------------------------ embedded simulator
def run_recipe(run_dir: str | Path) -> Any:
    """The recipe a run recorded (torch-free: compress.pipeline imports torch)."""
    from beamc.recipe import read_toml, recipe_from_dict

    path = Path(run_dir) / "recipe.toml"
    raw = read_toml(path, "run recipe")
    return recipe_from_dict(raw, str(path), raw.get("name", Path(run_dir).name))


def prepare_sub6(recipe: Any) -> Any:
    from beamc.registry import TASKS

    if recipe.task.name != "sub6":
        raise BeamcError(f"recipe {recipe.name}: task.name is '{recipe.task.name}', a CSI stream needs a 'sub6' recipe")
    return TASKS.get("sub6").prepare(recipe.task, recipe.data, progress=False)


def reference_snapshots(data: Any, split: str = "test", snr_db: float | None = None) -> dict[str, np.ndarray]:
    """A split's users at one SNR with exactly the noise `Sub6Data.arrays` draws (evaluation
    seed per split and SNR), plus labels and per-beam powers."""
    from beamc.tasks.sub6 import add_noise

    if split not in data.splits:
        raise BeamcError(f"split: expected one of {', '.join(data.splits)}, found '{split}'")
    snr = float(data.cfg.reference_snr_db if snr_db is None else snr_db)
    users = data.splits[split]
    csi = add_noise(data.h[users], snr, data.preprocess_state["p_sub6"], data._eval_rng(split, snr))
    return {"csi": csi, "user": users.astype(np.int64), "label": data.labels_at(snr)[users].astype(np.int64),
            "power": data.gains[users].mean(axis=1).astype(np.float32), "snr_db": np.asarray(snr)}


def record_csi(out: str | Path, *, run_dir: str | Path | None = None, recipe_path: str | Path | None = None,
               overrides: tuple[str, ...] = (), split: str = "test", snr_db: float | None = None,
               interval_s: float = DEFAULT_INTERVAL_S, max_frames: int = 0) -> tuple[Path, int]:
    """`beamc data record csi`: the simulator's users of a split as a beamc-csi/1 recording."""
    from beamc.recipe import load_recipe

    if (run_dir is None) == (recipe_path is None):
        raise BeamcError("record csi: give exactly one of --run RUN_DIR or --recipe RECIPE")
    recipe = run_recipe(run_dir) if run_dir is not None else load_recipe(recipe_path, overrides)
    snaps = reference_snapshots(prepare_sub6(recipe), split, snr_db)
    n = len(snaps["csi"]) if max_frames <= 0 else min(max_frames, len(snaps["csi"]))
    meta = {"generator": "beamc embedded street simulator", "recipe": recipe.name, "split": split,
            "snr_db": float(snaps["snr_db"]), "run": str(run_dir) if run_dir else None,
            "note": "noise as TaskData.arrays draws it at this SNR; power = mean over label subcarriers of |h^H w|^2"}
    path = write_recording(out, snaps["csi"][:n], np.arange(n) * interval_s, user=snaps["user"][:n],
                           label=snaps["label"][:n], power=snaps["power"][:n], meta=meta)
    return path, n


@SOURCES.register("synth:sub6")
class Sub6Simulator(Source):
    """Random users of a split with fresh receiver noise per snapshot, forever (stop it with
    --max-frames or Ctrl-C). The street comes from the bundle's run recipe when that run
    directory is here, else from `recipe=PATH`, else the task defaults."""

    kind = "synth:sub6"
    options_known = ("recipe", "split", "snr_db", "interval_ms", "seed")

    def __init__(self, target: str, options: dict[str, str], ctx: SourceContext) -> None:
        super().__init__(target, options, ctx)
        check_csi_task(ctx, "synth:sub6")
        from beamc.recipe import load_recipe

        recipe_opt = self.opt("recipe", "")
        run_path = Path(str(ctx.manifest.get("run", {}).get("path", "")))
        if recipe_opt:
            recipe = load_recipe(recipe_opt)
        elif (run_path / "recipe.toml").is_file():
            recipe = run_recipe(run_path)
        else:
            from beamc.recipe import builtin_recipes_dir

            recipe = load_recipe(builtin_recipes_dir() / "sub6_ikd.toml")
        self.recipe_name = recipe.name
        self.data = prepare_sub6(recipe)
        self.split = self.opt("split", "test")
        if self.split not in self.data.splits:
            raise BeamcError(f"source synth:sub6: option split: expected one of {', '.join(self.data.splits)}, found '{self.split}'")
        self.snr = self.opt("snr_db", float(self.data.cfg.reference_snr_db), float)
        self.interval = self.opt("interval_ms", DEFAULT_INTERVAL_S * 1e3, float) / 1e3
        self.seed = self.opt("seed", ctx.seed, int)

    def frames(self) -> Iterator[Frame]:
        from beamc.tasks.sub6 import add_noise

        d = self.data
        users = d.splits[self.split]
        labels, power = d.labels_at(self.snr), d.gains.mean(axis=1)
        rng = np.random.default_rng([self.seed, 17])
        i = 0
        while True:
            u = int(users[rng.integers(len(users))])
            csi = add_noise(d.h[u:u + 1], self.snr, d.preprocess_state["p_sub6"], rng)[0]
            yield Frame(id=i, t=i * self.interval, data={"csi": csi}, label=int(labels[u]), power=power[u], key=u)
            i += 1

    def info(self) -> dict[str, Any]:
        return {"recipe": self.recipe_name, "split": self.split, "snr_db": self.snr, "interval_s": self.interval,
                "users": int(len(self.data.splits[self.split]))}
