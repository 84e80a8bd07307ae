"""DeepMIMO v4 scenarios on disk: read channels through the `deepmimo` package, and write
scenarios in the same format (used by our embedded street simulator).

On-disk format (as read by deepmimo 4.0.5, `deepmimo/datasets/load.py` and
`deepmimo/utils/scenarios.py`): a scenario is a folder `<scenarios_folder>/<name>/` holding

    params.json                      version, rt_params (frequency, ...), scene, materials,
                                     txrx_sets {"txrx_set_<id>": TxRxSet fields}
    objects.json, vertices.npz       the scene geometry (may be empty)
    <key>_t<TXSET:03>_tx<TX:03>_r<RXSET:03>.npz   one array per key and tx/rx pair:
        power [U,P] dBW, phase [U,P] deg, delay [U,P] s, aoa_az/aoa_el/aod_az/aod_el [U,P]
        deg (elevation measured from zenith, 90 = horizon), rx_pos [U,3] m, tx_pos [1,3] m,
        inter [U,P] interaction digits (0 LOS, 1 reflection, 2 diffraction, 3 scattering,
        4 transmission), inter_pos [U,P,I,3] m. Missing paths are NaN.

`deepmimo.load` asks on stdin to download a scenario that is not on disk, so we always
check the folder first and fail with a message saying where we looked. The package prints
progress to stdout; we silence it so `beamc` output stays readable.

Array convention (checked against deepmimo 4.0.5's generator): a BS antenna of shape
[N, 1] is a ULA along the y axis with half-wavelength spacing, response
exp(j*pi*m*sin(el)*sin(az)); we build our codebooks on the same axis.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from beamc.errors import BeamcError

MATRIX_KEYS = ("power", "phase", "delay", "aoa_az", "aoa_el", "aod_az", "aod_el", "rx_pos", "tx_pos",
               "inter", "inter_pos")
DOWNLOAD_HINT = "download the DeepMIMO v4 scenario from https://www.deepmimo.net/scenarios/ (or `deepmimo.download(name)` on a machine with internet) and unpack it there"


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _import_deepmimo():
    try:
        with _quiet():
            import deepmimo  # noqa: PLC0415 - heavy and optional
    except ImportError as e:
        raise BeamcError("reading DeepMIMO scenarios needs the `deepmimo` package: pip install 'beamc[train]'") from e
    return deepmimo


def mat_filename(key: str, tx_set: int, tx_index: int, rx_set: int) -> str:
    return f"{key}_t{tx_set:03}_tx{tx_index:03}_r{rx_set:03}.npz"


def scenario_params(folder: str | Path, name: str) -> dict:
    path = Path(folder) / name / "params.json"
    if not path.exists():
        where = Path(folder) / name
        state = "exists but has no params.json" if where.exists() else "does not exist"
        raise BeamcError(f"DeepMIMO scenario '{name}' not found: {where} {state}; {DOWNLOAD_HINT}, "
                         f"or point data.folder at the folder that contains it")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BeamcError(f"{path}: invalid JSON ({e})") from None


def check_matrix_file(path: Path, key: str) -> None:
    """Check that the file dm.load reads for `key` holds that array, reading only its index
    (zip directory, .mat variable headers, .npy header), not the data. deepmimo looks for
    <stem>.mat, .npz, .npy in that order; a truncated or mislabelled file made it fail with a
    BadZipFile or KeyError traceback that named neither the file nor the array."""
    found = next((path.with_suffix(s) for s in (".mat", ".npz", ".npy") if path.with_suffix(s).exists()), None)
    if found is None:
        raise BeamcError(f"{path.parent}: missing {path.name} (array '{key}'); the scenario folder is incomplete")
    try:
        if found.suffix == ".npz":
            with np.load(found) as z:
                names = list(z.files)
        elif found.suffix == ".mat":
            import scipy.io

            names = [name for name, _, _ in scipy.io.whosmat(found)]
        else:
            np.load(found, mmap_mode="r")
            names = [key]  # a .npy file is one unnamed array
    except Exception as e:  # noqa: BLE001 - zipfile, numpy and scipy raise several types for a damaged file
        raise BeamcError(f"{found}: expected a {found.suffix} file holding array '{key}', cannot read it "
                         f"({type(e).__name__}: {e})") from None
    if key not in names:
        raise BeamcError(f"{found}: expected array '{key}', found {', '.join(repr(n) for n in names) or 'no arrays'}")


@dataclass
class Channels:
    """Frequency-domain channels of one BS to the users of one scenario."""

    h: np.ndarray        # [U, N_ant, K] complex64 (single-antenna UE)
    rx_pos: np.ndarray   # [U, 3] float32
    los: np.ndarray      # [U] int8: 1 LOS, 0 NLOS, -1 no path
    frequency: float


def read_channels(folder: str | Path, name: str, *, tx_set: int, tx_index: int, rx_sets: tuple[int, ...] | None,
                  n_ant: int, n_subcarriers: int, selected: np.ndarray, bandwidth: float,
                  num_paths: int = 25) -> Channels:
    """Channels of BS (tx_set, tx_index) to every user of `rx_sets` (all RX sets when None),
    users concatenated in RX-set id order."""
    params = scenario_params(folder, name)
    sets = params.get("txrx_sets", {})
    tx_ids = sorted(int(s["id"]) for s in sets.values() if s.get("is_tx"))
    rx_ids = sorted(int(s["id"]) for s in sets.values() if s.get("is_rx"))
    where = Path(folder) / name
    if tx_set not in tx_ids:
        raise BeamcError(f"{where}: data.bs_tx_set = {tx_set} is not a TX set of this scenario; TX sets: {tx_ids}")
    n_tx = int(sets[f"txrx_set_{tx_set}"]["num_points"])
    if not 0 <= tx_index < n_tx:
        raise BeamcError(f"{where}: data.bs_index = {tx_index} out of range; TX set {tx_set} has {n_tx} transmitters (0..{n_tx - 1})")
    wanted = rx_ids if rx_sets is None else list(rx_sets)
    for r in wanted:
        if r not in rx_ids:
            raise BeamcError(f"{where}: data.rx_sets contains {r}, which is not an RX set; RX sets: {rx_ids}")
    for r in wanted:
        f = where / mat_filename("power", tx_set, tx_index, r)
        if not f.exists():
            raise BeamcError(f"{where}: missing {f.name} (TX set {tx_set}, BS {tx_index}, RX set {r}); the scenario folder is incomplete")

    loaded_keys = [k for k in MATRIX_KEYS if k != "inter_pos"]
    for r in wanted:
        for key in loaded_keys:
            check_matrix_file(where / mat_filename(key, tx_set, tx_index, r), key)

    dm = _import_deepmimo()
    dm.config.set("scenarios_folder", str(Path(folder).resolve()))
    ch_params = dm.ChannelParameters(
        bs_antenna={"shape": [n_ant, 1], "spacing": 0.5},
        num_paths=num_paths,
        ofdm={"subcarriers": n_subcarriers, "selected_subcarriers": np.asarray(selected), "bandwidth": bandwidth},
    )
    hs, pos, los = [], [], []
    with _quiet():
        try:
            loaded = dm.load(name, tx_sets={tx_set: [tx_index]}, rx_sets={r: "all" for r in wanted},
                             matrices=loaded_keys, max_paths=num_paths)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
            # damage inside an array's compressed data, which check_matrix_file does not decompress
            raise BeamcError(f"{where}: cannot read the scenario's ray-tracing arrays ({type(e).__name__}: {e}); "
                             "the scenario folder is damaged") from None
        datasets = list(loaded.datasets) if isinstance(loaded, dm.MacroDataset) else [loaded]
        for ds in datasets:
            h = ds.compute_channels(ch_params)  # [U, 1, N, K]
            hs.append(np.asarray(h)[:, 0].astype(np.complex64))
            pos.append(np.asarray(ds.rx_pos, dtype=np.float32))
            los.append(np.asarray(ds.los, dtype=np.int8))
    frequency = float(params.get("rt_params", {}).get("frequency", float("nan")))
    return Channels(np.concatenate(hs), np.concatenate(pos), np.concatenate(los), frequency)


def write_scenario(folder: str | Path, name: str, *, frequency: float, tx_pos: np.ndarray, rx_pos: np.ndarray,
                   paths: dict[str, np.ndarray], raytracer: str = "beamc street simulator",
                   extra_rt_params: dict | None = None) -> Path:
    """Write a one-BS scenario (TX set 0, RX set 1) in the DeepMIMO v4 layout."""
    root = Path(folder) / name
    root.mkdir(parents=True, exist_ok=True)
    n_users = int(rx_pos.shape[0])
    matrices = dict(paths)
    matrices["rx_pos"] = rx_pos.astype(np.float32)
    matrices["tx_pos"] = np.asarray(tx_pos, dtype=np.float32).reshape(1, 3)
    missing = [k for k in MATRIX_KEYS if k not in matrices]
    if missing:
        raise ValueError(f"write_scenario: missing matrices {missing}")
    for key in MATRIX_KEYS:
        np.savez_compressed(root / mat_filename(key, 0, 0, 1), **{key: matrices[key]})

    def txrx(set_id: int, set_name: str, is_tx: bool, n: int) -> dict:
        # Field names of deepmimo.core.txrx.TxRxSet (to_dict()).
        return {"name": set_name, "id_orig": set_id, "id": set_id, "is_tx": is_tx, "is_rx": not is_tx,
                "num_points": n, "num_active_points": n, "num_ant": 1, "dual_pol": False,
                "ant_rel_positions": [[0, 0, 0]], "array_orientation": [0, 0, 0], "grid_spacing": None}

    n_active = int(np.sum(~np.all(np.isnan(paths["power"]), axis=1)))
    rx_set = txrx(1, "users", False, n_users)
    rx_set["num_active_points"] = n_active
    max_inter = int(paths["inter_pos"].shape[2]) if paths["inter_pos"].ndim == 4 else 0
    params = {
        "version": "4.0.5",
        "rt_params": {"frequency": float(frequency), "raytracer_name": raytracer, "raytracer_version": "1",
                      "max_path_depth": max_inter, "max_reflections": max_inter, "max_diffractions": 0,
                      "max_scattering": 1, "max_transmissions": 0, **(extra_rt_params or {})},
        "scene": {"num_scenes": 1, "n_objects": 0},
        "materials": {},
        "txrx_sets": {"txrx_set_0": txrx(0, "bs", True, 1), "txrx_set_1": rx_set},
    }
    (root / "params.json").write_text(json.dumps(params, indent=2) + "\n")
    (root / "objects.json").write_text("[]\n")
    np.savez_compressed(root / "vertices.npz", vertices=np.zeros((0, 3), dtype=np.float32))
    return root
