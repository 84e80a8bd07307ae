"""DeepSense 6G scenario folders (scenarios 8 and 9): read the real on-disk format exactly.

Public API (numpy, scipy and Pillow only: the runtime replays folders with it on devices
that have no torch)::

    sc = open_scenario(root, *, csv_name=None, lenient=False) -> Scenario
    sc.n, sc.line[i], sc.index[i], sc.seq[i], sc.segment[i], sc.time_s[i], sc.beam[i] (0-based),
    sc.paths["rgb"][i], sc.modalities, sc.meta["unit2_HDOP"][i], sc.summary
    read_image(sc, i)  -> uint8 [540, 960, 3]          read_power(sc, i) -> float64 [64]
    read_lidar(sc, i)  -> float64 [216] (lidar_SCR)    read_lidar_raw(sc, i) -> float64 [N, C]
    read_radar(sc, i)  -> complex64 [4, 256, 128]      read_gps(sc, i, which="gps") -> [2] lat, lon
    read(sc, modality, i)                              -> the frame of any modality by name
    check_file(sc, modality, i)                        -> None; a fast validity check (inspect)

    from beamc.data.windows import windows, beam_labels, split_sequences
    w = windows(sc, past=8, future=6)   -> Windows(past [N, 8] rows, beams [N, 7] rows, seq [N])
    y = beam_labels(sc, w)              -> [N, 7] 0-based beams, -100 where padded
    split_sequences(sc, train=0.8)      -> SequenceSplit(train, val, test) of seq_index values

    from beamc.data.frame_cache import frame_cache
    frames = frame_cache(sc, "rgb", my_numpy_preprocess, key="vision.gray224-v1", params={...})
    frames.data[w.past]                 -> preprocessed inputs from a memory-mapped .npy, decoded once

Modality names: rgb, power, lidar (the 216-range lidar_SCR scan), lidar_raw, radar, gps
(unit 2), gps_cal (unit 2, calibrated), gps_bs (unit 1).

On-disk format, and where each fact comes from
----------------------------------------------
* ``scenarioN.csv`` at the scenario root, 20 columns in this order (header of the public
  scenario9.csv in WillysMa/Sensing-Assisted-Beam-Tracking, file ``scenario9.csv``)::

      index, unit1_rgb, unit1_pwr_60ghz, unit1_loc, unit1_lidar, unit1_lidar_SCR, unit1_radar,
      unit2_loc, unit2_loc_cal, <empty name>, unit1_beam_index, seq_index, time_stamp[UTC],
      unit2_direction, unit2_num_sat, unit2_sat_used, unit2_fix_type, unit2_DGPS, unit2_PDOP,
      unit2_HDOP

  with CRLF line endings, an unnamed empty column, ``index`` counting from 1, rows of a
  sequence contiguous, ``seq_index`` from 1, and ``time_stamp[UTC]`` written as
  ``['HH-MM-SS-mmm']`` (same file). Consecutive rows of a sequence are 111 ms apart (median
  of that file; 5-95 % range 110-112 ms), i.e. about 9 frames per second; the vision paper
  quotes 128 ms slots. 5964 rows, 136 sequences of 30-65 rows.
* ``unit1_beam_index`` is 1-based: labels are ``argmax(power) + 1`` (beam indices 2..63 in
  that file; the DeepSense challenge baseline DeepSense6G/Multi-Modal-Beam-Prediction-
  Challenge-2022-Baseline, ``position_only_baseline.py``, subtracts 1 from the CSV beam; the
  vision reference ``MyFunc.py`` uses ``np.argmax(np.loadtxt(power_file))`` as the 0-based
  label). We expose 0-based ``Scenario.beam``.
* Paths are relative to the folder holding the CSV and start with ``./`` (scenario9.csv;
  the challenge baseline joins ``path[2:]`` to the CSV's folder).
* ``unit1_pwr_60ghz``: a text file of 64 received powers, one per beam, read with
  ``np.loadtxt`` (WillysMa/Sensing-Assisted-Beam-Tracking ``MyFunc.py``; the DeepSense
  scenario-9 visualisation script plots ``np.loadtxt`` of it against beams 1..64).
* ``unit1_rgb``: JPEG camera frames (``./unit1/camera_data/image_BS2_<k>_<HH>_<MM>_<SS>.jpg``
  in scenario9.csv), RGB. We write 960 x 540, the resolution of the DeepSense testbed
  camera frames; none of the reference code we read states it (it resizes to 224 x 224
  and converts to grayscale: ``MyFunc.py``, ``transf.Resize((224, 224))``, ``rgb2gray``),
  so the reader accepts any size.
* ``unit1_lidar_SCR``: MATLAB v5 ``.mat`` with variable ``data`` whose first column holds
  216 ranges over -90..90 degrees (AZakeri94/DF-KD-for-LiDAR-aided-Beam-Tracking
  ``utils/data_feed.py``: ``loadmat(path)['data'][:, 0]``, divided by 10 for the network;
  the DeepSense scenario-9 visualisation script: ``lidar_sample_size = 216``,
  ``angle_lims = [-90, 90]``). ``unit1_lidar`` holds the raw scan in the same container;
  its inner layout is not used by any reference code we found, so we return ``data`` as a
  2-D float array unchanged.
* ``unit1_radar``: MATLAB v5 ``.mat`` with variable ``data``, complex, 4 Rx x 256 samples
  x 128 chirps (umut-demirhan/Radar-aided-beam-prediction ``dataset.py`` and
  ``radar_preprocessing.py``: range FFT on axis 1, Doppler on axis 2, angle on axis 0;
  theTJCloudWalker/Radar-Aided-Beam-Prediction-Based-on-Deep-Learning-Algorithms
  ``README.md``: scenario 9 radar is [5964, 4, 256, 128], 15.015 MHz/us chirps of 60 us).
  All reference readers use ``scipy.io.loadmat``, which reads v5 (not v7.3/HDF5) files, so
  the real files are v5 and that is what we read and write.
* ``unit1_loc`` / ``unit2_loc`` / ``unit2_loc_cal``: text files with latitude and longitude
  in decimal degrees read with ``np.loadtxt`` (challenge baseline ``position_only_baseline.py``);
  ``unit1_loc`` is one file shared by every row (the base station does not move).

Errors name the CSV, the line (1-based, the header is line 1) and data row, the column, what
was expected and what was found. ``lenient=True`` skips bad rows instead and counts them
per reason in ``Scenario.summary``; a skipped row splits its sequence into two segments so
windows never join frames across the hole.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from beamc.errors import BeamcError

N_BEAMS = 64
LIDAR_RANGES = 216
RADAR_SHAPE = (4, 256, 128)
IMAGE_SIZE = (960, 540)  # width, height
FRAME_INTERVAL_S = 0.111
EMPTY_COLUMN = ""

# Column order of the public scenario9.csv (see module docstring).
COLUMNS = ("index", "unit1_rgb", "unit1_pwr_60ghz", "unit1_loc", "unit1_lidar", "unit1_lidar_SCR",
           "unit1_radar", "unit2_loc", "unit2_loc_cal", EMPTY_COLUMN, "unit1_beam_index", "seq_index",
           "time_stamp[UTC]", "unit2_direction", "unit2_num_sat", "unit2_sat_used", "unit2_fix_type",
           "unit2_DGPS", "unit2_PDOP", "unit2_HDOP")

# Our short modality names -> CSV columns holding a file path.
MODALITY_COLUMNS = {
    "rgb": "unit1_rgb",
    "power": "unit1_pwr_60ghz",
    "lidar": "unit1_lidar_SCR",
    "lidar_raw": "unit1_lidar",
    "radar": "unit1_radar",
    "gps_bs": "unit1_loc",
    "gps": "unit2_loc",
    "gps_cal": "unit2_loc_cal",
}
REQUIRED_COLUMNS = ("index", "unit1_pwr_60ghz", "seq_index", "time_stamp[UTC]")
META_COLUMNS = ("unit2_direction", "unit2_num_sat", "unit2_sat_used", "unit2_fix_type", "unit2_DGPS",
                "unit2_PDOP", "unit2_HDOP")



def lidar_bearings_deg(n: int = LIDAR_RANGES) -> np.ndarray:
    """Bearing (deg) of each lidar_SCR bin centre: 216 bins over 180 deg, index 0 at +90 deg
    (the DeepSense scenario-9 visualisation flips the scan left-right before drawing it over
    -90..90 deg), positive towards the camera's right."""
    return 90.0 - (np.arange(n) + 0.5) * 180.0 / n


_TIMESTAMP = re.compile(r"^\[?\s*'?(\d{1,2})-(\d{1,2})-(\d{1,2})-(\d{1,6})'?\s*\]?$")


@dataclass
class Summary:
    """What `open_scenario` kept and skipped (lenient mode) and what failed to decode later."""

    rows: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)       # reason -> count
    skipped_lines: list[tuple[int, str]] = field(default_factory=list)  # (line, message)
    # the skipped rows' CSV 'index' values, aligned with skipped_lines (None where the index
    # field itself is unreadable): the runtime numbers bad rows like good ones
    skipped_index: list[int | None] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "kept": self.kept, "skipped": dict(self.skipped),
                "skipped_lines": [{"line": ln, "error": msg} for ln, msg in self.skipped_lines]}


@dataclass
class Scenario:
    """Parsed rows of one scenario CSV (only the rows that passed validation)."""

    root: Path
    csv_path: Path
    columns: tuple[str, ...]
    line: np.ndarray          # [n] 1-based line of the row in the CSV (header = line 1)
    row: np.ndarray           # [n] 1-based data row (line - 1 unless a field spans lines)
    index: np.ndarray         # [n] the CSV 'index' column
    seq: np.ndarray           # [n] seq_index
    segment: np.ndarray       # [n] contiguous runs: a new segment at each seq change or skipped row
    time_s: np.ndarray        # [n] seconds since midnight UTC
    beam: np.ndarray          # [n] 0-based best beam (-1 where the CSV has no unit1_beam_index)
    rel: dict[str, list[str]]     # modality -> path as written in the CSV
    paths: dict[str, list[Path]]  # modality -> resolved absolute path
    meta: dict[str, list[str]]    # other columns, verbatim
    summary: Summary
    lenient: bool = False

    @property
    def n(self) -> int:
        return len(self.seq)

    def __len__(self) -> int:
        return self.n

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITY_COLUMNS if m in self.paths)

    def sequences(self) -> np.ndarray:
        """seq_index values in order of first appearance."""
        _, first = np.unique(self.seq, return_index=True)
        return self.seq[np.sort(first)]

    def where(self, i: int, column: str) -> str:
        return f"{self.csv_path}: line {int(self.line[i])} (data row {int(self.row[i])}), column '{column}'"


# ----------------------------------------------------------------------------- CSV parsing
def find_csv(root: Path) -> Path:
    if not root.is_dir():
        raise BeamcError(f"DeepSense scenario folder not found: {root}")
    found = sorted(p for p in root.glob("*.csv") if p.is_file())
    named = [p for p in found if re.fullmatch(r"scenario\d+\.csv", p.name)]
    if len(named) == 1:
        return named[0]
    if len(found) == 1:
        return found[0]
    if not found:
        raise BeamcError(f"{root}: no scenario CSV (expected e.g. scenario9.csv next to the unit1/ folder)")
    raise BeamcError(f"{root}: several CSV files ({', '.join(p.name for p in found)}); "
                     f"say which one with csv=... (CLI: --csv)")


def parse_timestamp(text: str) -> float | None:
    """"['16-45-05-799']" -> 60305.799 seconds since midnight; None when malformed."""
    m = _TIMESTAMP.match(text.strip())
    if not m:
        return None
    h, mi, s, frac = m.groups()
    if int(h) > 23 or int(mi) > 59 or int(s) > 60:
        return None
    return int(h) * 3600 + int(mi) * 60 + int(s) + int(frac) / 10 ** len(frac)


def format_timestamp(seconds: float) -> str:
    """Inverse of `parse_timestamp` with millisecond resolution, in the CSV's own spelling."""
    ms_total = int(round(seconds * 1000)) % (24 * 3600 * 1000)
    h, rest = divmod(ms_total, 3600 * 1000)
    mi, rest = divmod(rest, 60 * 1000)
    s, ms = divmod(rest, 1000)
    return f"['{h:02d}-{mi:02d}-{s:02d}-{ms:03d}']"


class _RowError(Exception):
    def __init__(self, column: str, message: str, reason: str):
        super().__init__(message)
        self.column = column
        self.reason = reason


def _int_field(value: str, column: str, what: str, lo: int | None = None, hi: int | None = None) -> int:
    try:
        number = float(value)
        ok = number == int(number)
    except (ValueError, OverflowError):
        ok = False
    if ok and (lo is None or number >= lo) and (hi is None or number <= hi):
        return int(number)
    raise _RowError(column, f"expected {what}, found {value!r}", f"bad {column}")


def resolve_path(root: Path, text: str, column: str) -> Path:
    """A CSV path made absolute, refusing anything outside the scenario root."""
    if not text.strip():
        raise _RowError(column, "expected a file path, found an empty field", f"empty path ({column})")
    rel = text.strip().replace("\\", "/")
    if rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        raise _RowError(column, f"expected a path relative to the scenario root {root}, found absolute path {text!r}",
                        f"path escapes root ({column})")
    # Lexical normalisation: '..' cannot climb out, while symlinked unit folders stay allowed.
    full = Path(os.path.normpath(root / rel))
    if full != root and root not in full.parents:
        raise _RowError(column, f"path {text!r} escapes the scenario root {root}", f"path escapes root ({column})")
    if not full.is_file():
        raise _RowError(column, f"file not found: {text} (looked for {full})", f"missing file ({column})")
    return full


def open_scenario(root: str | Path, *, csv_name: str | None = None, lenient: bool = False) -> Scenario:
    """Parse a DeepSense scenario folder's CSV and check every referenced file exists.

    `csv_name` picks the CSV when the folder has several. With `lenient`, bad rows are skipped
    and counted per reason in `summary`; otherwise the first bad row raises BeamcError."""
    root = Path(os.path.abspath(root))
    csv_path = root / csv_name if csv_name else find_csv(root)
    if not csv_path.is_file():
        raise BeamcError(f"scenario CSV not found: {csv_path}")
    text = csv_path.read_bytes().decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise BeamcError(f"{csv_path}: empty file (expected a header line with {', '.join(REQUIRED_COLUMNS)}, ...)") from None
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise BeamcError(f"{csv_path}: missing column '{missing[0]}' (line 1); found columns: "
                         f"{', '.join(repr(h) for h in header)}")
    col = {name: i for i, name in enumerate(header) if name}
    modalities = {m: c for m, c in MODALITY_COLUMNS.items() if c in col}
    summary = Summary()
    out: dict[str, list] = {k: [] for k in ("line", "row", "index", "seq", "time", "beam", "gap")}
    rel: dict[str, list[str]] = {m: [] for m in modalities}
    paths: dict[str, list[Path]] = {m: [] for m in modalities}
    meta: dict[str, list[str]] = {c: [] for c in header if c and c in META_COLUMNS}
    data_row = 0
    gap = False  # a skipped row since the last kept one
    for fields in reader:
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue  # blank line (e.g. a trailing CRLF)
        data_row += 1
        summary.rows += 1
        where = f"{csv_path}: line {line} (data row {data_row})"
        try:
            if len(fields) != len(header):
                raise _RowError("", f"expected {len(header)} fields as in the header, found {len(fields)}",
                                "wrong number of fields")
            get = lambda c: fields[col[c]].strip()  # noqa: E731
            index = _int_field(get("index"), "index", "an integer row index")
            seq = _int_field(get("seq_index"), "seq_index", "an integer sequence index")
            t = parse_timestamp(get("time_stamp[UTC]"))
            if t is None:
                raise _RowError("time_stamp[UTC]", f"expected a time like ['16-45-05-799'], found {get('time_stamp[UTC]')!r}",
                                "bad time_stamp[UTC]")
            beam = -1
            if "unit1_beam_index" in col:
                beam = _int_field(get("unit1_beam_index"), "unit1_beam_index",
                                  f"an integer 1..{N_BEAMS} (1-based beam index)", 1, N_BEAMS) - 1
            resolved = {m: resolve_path(root, get(c), c) for m, c in modalities.items()}
        except _RowError as e:
            message = f"{where}{f', column {e.column!r}' if e.column else ''}: {e}"
            if not lenient:
                raise BeamcError(message) from None
            summary.skipped[e.reason] += 1
            summary.skipped_lines.append((line, message))
            try:
                summary.skipped_index.append(_int_field(fields[col["index"]].strip(), "index", ""))
            except (_RowError, IndexError):
                summary.skipped_index.append(None)
            gap = True
            continue
        for key, value in (("line", line), ("row", data_row), ("index", index), ("seq", seq), ("time", t),
                           ("beam", beam), ("gap", gap)):
            out[key].append(value)
        for m, c in modalities.items():
            rel[m].append(get(c))
            paths[m].append(resolved[m])
        for c in meta:
            meta[c].append(get(c))
        gap = False
    seq = np.asarray(out["seq"], dtype=np.int64)
    summary.kept = len(seq)
    if summary.kept == 0:
        raise BeamcError(f"{csv_path}: no usable rows ({summary.rows} data rows"
                         f"{', all skipped: ' + ', '.join(f'{k} x{v}' for k, v in summary.skipped.items()) if summary.skipped else ''})")
    new_segment = np.ones(len(seq), dtype=bool)
    new_segment[1:] = (seq[1:] != seq[:-1]) | np.asarray(out["gap"][1:], dtype=bool)
    return Scenario(root=root, csv_path=csv_path, columns=tuple(header),
                    line=np.asarray(out["line"], dtype=np.int64), row=np.asarray(out["row"], dtype=np.int64),
                    index=np.asarray(out["index"], dtype=np.int64), seq=seq,
                    segment=np.cumsum(new_segment) - 1, time_s=np.asarray(out["time"], dtype=np.float64),
                    beam=np.asarray(out["beam"], dtype=np.int64), rel=rel, paths=paths, meta=meta,
                    summary=summary, lenient=lenient)


# ----------------------------------------------------------------------------- readers
def _path(sc: Scenario, modality: str, i: int) -> Path:
    if modality not in sc.paths:
        column = MODALITY_COLUMNS.get(modality, modality)
        raise BeamcError(f"{sc.csv_path}: no column '{column}' ({modality}); this scenario has: "
                         f"{', '.join(sc.modalities) or '(no file columns)'}")
    return sc.paths[modality][i]


def _fail(sc: Scenario, modality: str, i: int, message: str) -> BeamcError:
    return BeamcError(f"{sc.where(i, MODALITY_COLUMNS[modality])}: {message} in {sc.rel[modality][i]}")


def decode_jpeg(path: Path) -> np.ndarray:
    """JPEG file -> uint8 [H, W, 3] (a separate function so tests can count decodes)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def read_image(sc: Scenario, i: int) -> np.ndarray:
    path = _path(sc, "rgb", i)
    try:
        img = decode_jpeg(path)
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for a bad file
        raise _fail(sc, "rgb", i, f"cannot decode the image ({type(e).__name__}: {e})") from None
    return img


def _read_numbers(sc: Scenario, modality: str, i: int, count: int, what: str) -> np.ndarray:
    path = _path(sc, modality, i)
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=1).ravel()
    except Exception as e:  # noqa: BLE001 - loadtxt raises ValueError/IndexError/UnicodeError
        raise _fail(sc, modality, i, f"expected {what}, cannot parse the file ({type(e).__name__})") from None
    if values.size != count:
        raise _fail(sc, modality, i, f"expected {what}, found {values.size} values")
    if not np.all(np.isfinite(values)):
        raise _fail(sc, modality, i, f"expected {what}, found non-finite values")
    return values


def read_power(sc: Scenario, i: int) -> np.ndarray:
    return _read_numbers(sc, "power", i, N_BEAMS, f"{N_BEAMS} beam powers")


def read_gps(sc: Scenario, i: int, which: str = "gps") -> np.ndarray:
    """(latitude, longitude) in degrees; `which` is 'gps' (unit 2), 'gps_cal' or 'gps_bs'."""
    if which not in ("gps", "gps_cal", "gps_bs"):
        raise BeamcError(f"unknown GPS '{which}'; known: gps, gps_cal, gps_bs")
    return _read_numbers(sc, which, i, 2, "latitude and longitude")


def _load_mat(sc: Scenario, modality: str, i: int) -> np.ndarray:
    import scipy.io

    path = _path(sc, modality, i)
    try:
        mat = scipy.io.loadmat(path)
    except NotImplementedError:  # scipy's message for v7.3 (HDF5) files
        raise _fail(sc, modality, i, "expected a MATLAB v5 .mat file, found a v7.3 (HDF5) file") from None
    except Exception as e:  # noqa: BLE001 - scipy raises several types for a corrupt file
        raise _fail(sc, modality, i, f"cannot read the .mat file ({type(e).__name__}: {e})") from None
    if "data" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise _fail(sc, modality, i, f"expected a variable 'data', found {', '.join(found) or 'no variables'}")
    return np.asarray(mat["data"])


def read_lidar(sc: Scenario, i: int) -> np.ndarray:
    """The 216 ranges of the processed lidar_SCR scan (column 0 of 'data', as the reference code reads it)."""
    data = _load_mat(sc, "lidar", i)
    if data.ndim not in (1, 2) or data.shape[0] != LIDAR_RANGES or not np.isrealobj(data):
        raise _fail(sc, "lidar", i, f"expected variable 'data' with {LIDAR_RANGES} real ranges in its first column, "
                                     f"found shape {' x '.join(map(str, data.shape))} ({data.dtype})")
    column = data if data.ndim == 1 else data[:, 0]
    return column.astype(np.float64)


def read_lidar_raw(sc: Scenario, i: int) -> np.ndarray:
    data = _load_mat(sc, "lidar_raw", i)
    if data.ndim != 2 or not np.isrealobj(data):
        raise _fail(sc, "lidar_raw", i, f"expected a 2-D real array 'data', found shape "
                                         f"{' x '.join(map(str, data.shape))} ({data.dtype})")
    return data.astype(np.float64)


def read_radar(sc: Scenario, i: int) -> np.ndarray:
    data = _load_mat(sc, "radar", i)
    if data.shape != RADAR_SHAPE or not np.iscomplexobj(data):
        raise _fail(sc, "radar", i, f"expected variable 'data' of shape {' x '.join(map(str, RADAR_SHAPE))} (complex), "
                                     f"found {' x '.join(map(str, data.shape))} ({data.dtype})")
    return data.astype(np.complex64)


READERS: dict[str, Callable[[Scenario, int], np.ndarray]] = {
    "rgb": read_image,
    "power": read_power,
    "lidar": read_lidar,
    "lidar_raw": read_lidar_raw,
    "radar": read_radar,
    "gps": lambda sc, i: read_gps(sc, i, "gps"),
    "gps_cal": lambda sc, i: read_gps(sc, i, "gps_cal"),
    "gps_bs": lambda sc, i: read_gps(sc, i, "gps_bs"),
}


def check_file(sc: Scenario, modality: str, i: int) -> None:
    """Fast validity check of one file (for `beamc data inspect`): JPEGs are decoded at 1/8
    scale and .mat files only have their variable headers read; the readers' errors otherwise."""
    if modality == "rgb":
        from PIL import Image

        try:
            with Image.open(_path(sc, "rgb", i)) as im:
                im.draft("RGB", (im.width // 8, im.height // 8))
                im.load()
        except Exception as e:  # noqa: BLE001 - Pillow raises many types for a bad file
            raise _fail(sc, "rgb", i, f"cannot decode the image ({type(e).__name__}: {e})") from None
        return
    if modality in ("radar", "lidar", "lidar_raw"):
        import scipy.io

        try:
            variables = {name: (shape, kind) for name, shape, kind in scipy.io.whosmat(_path(sc, modality, i))}
        except NotImplementedError:
            raise _fail(sc, modality, i, "expected a MATLAB v5 .mat file, found a v7.3 (HDF5) file") from None
        except Exception as e:  # noqa: BLE001
            raise _fail(sc, modality, i, f"cannot read the .mat file ({type(e).__name__}: {e})") from None
        if "data" not in variables:
            raise _fail(sc, modality, i, f"expected a variable 'data', found {', '.join(sorted(variables)) or 'no variables'}")
        shape = tuple(variables["data"][0])
        if modality == "radar" and shape != RADAR_SHAPE:
            raise _fail(sc, modality, i, f"expected variable 'data' of shape {' x '.join(map(str, RADAR_SHAPE))} "
                                         f"(complex), found {' x '.join(map(str, shape))}")
        if modality == "lidar" and shape[0] != LIDAR_RANGES:
            raise _fail(sc, modality, i, f"expected variable 'data' with {LIDAR_RANGES} real ranges in its first "
                                         f"column, found shape {' x '.join(map(str, shape))}")
        return
    read(sc, modality, i)


def read(sc: Scenario, modality: str, i: int) -> np.ndarray:
    """One frame of `modality` ('rgb', 'power', 'lidar', 'lidar_raw', 'radar', 'gps', 'gps_cal', 'gps_bs')."""
    if modality not in READERS:
        from beamc.errors import unknown_choice

        raise unknown_choice("DeepSense modality", modality, READERS)
    return READERS[modality](sc, i)


__all__ = ["COLUMNS", "MODALITY_COLUMNS", "N_BEAMS", "LIDAR_RANGES", "RADAR_SHAPE", "IMAGE_SIZE", "FRAME_INTERVAL_S",
           "Scenario", "Summary", "open_scenario", "read", "check_file", "read_image", "read_power", "read_lidar",
           "read_lidar_raw", "read_radar", "read_gps", "parse_timestamp", "format_timestamp", "decode_jpeg",
           "lidar_bearings_deg"]
