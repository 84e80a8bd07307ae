"""The DeepSense 6G real-format loader on hand-written miniature scenario folders.

The folders follow the public scenario9.csv exactly: the same 20 columns in the same order,
an unnamed empty column, CRLF line endings, './'-relative paths, 1-based beam indices and
['HH-MM-SS-mmm'] timestamps.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from beamc.data import deepsense as ds
from beamc.errors import BeamcError

HEADER = ("index,unit1_rgb,unit1_pwr_60ghz,unit1_loc,unit1_lidar,unit1_lidar_SCR,unit1_radar,unit2_loc,unit2_loc_cal,,"
          "unit1_beam_index,seq_index,time_stamp[UTC],unit2_direction,unit2_num_sat,unit2_sat_used,unit2_fix_type,"
          "unit2_DGPS,unit2_PDOP,unit2_HDOP")


def power_vector(best: int) -> np.ndarray:
    """64 powers whose argmax is `best` (0-based)."""
    p = 0.001 + 0.0001 * np.arange(64) % 0.003
    p[best] = 0.5
    return p


def radar_cube(k: int) -> np.ndarray:
    rng = np.random.default_rng(k)
    return (rng.normal(size=(4, 256, 128)) + 1j * rng.normal(size=(4, 256, 128))).astype(np.complex64)


def write_folder(root: Path, seqs=(3, 2), radar: bool = True) -> Path:
    """A miniature scenario: rows of `seqs[s]` frames for sequence s+1, every modality present."""
    for d in ("unit1/camera_data", "unit1/mmWave_data", "unit1/GPS_data", "unit1/lidar_data", "unit1/lidar_SCR_data",
              "unit1/radar_data", "unit2/GPS_data", "unit2/GPS_data_calibrated"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "unit1/GPS_data/gps_location.txt").write_text("33.42\n-111.928\n")
    lines, k = [HEADER], 0
    for s, n in enumerate(seqs, start=1):
        for j in range(n):
            img = np.full((18, 32, 3), 40 * k % 255, np.uint8)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=95)
            (root / f"unit1/camera_data/image_BS2_{100 + k}_16_45_0{k}.jpg").write_bytes(buf.getvalue())
            np.savetxt(root / f"unit1/mmWave_data/mmWave_power_{k}.txt", power_vector(10 + k))
            scipy.io.savemat(root / f"unit1/lidar_SCR_data/Lidar_data_{100 + k}.mat",
                             {"data": np.arange(216, dtype=float)[:, None] / 10 + k})
            scipy.io.savemat(root / f"unit1/lidar_data/Lidar_data_{100 + k}.mat", {"data": np.full((5, 2), float(k))})
            if radar:
                scipy.io.savemat(root / f"unit1/radar_data/data_{k}_16_45_0{k}.mat", {"data": radar_cube(k)})
            (root / f"unit2/GPS_data/gps_location_{k}.txt").write_text(f"33.4201\n-111.92{k}\n")
            (root / f"unit2/GPS_data_calibrated/gps_location_{k}.txt").write_text(f"33.4202\n-111.93{k}\n")
            lines.append(
                f"{k + 1},./unit1/camera_data/image_BS2_{100 + k}_16_45_0{k}.jpg,./unit1/mmWave_data/mmWave_power_{k}.txt,"
                f"./unit1/GPS_data/gps_location.txt,./unit1/lidar_data/Lidar_data_{100 + k}.mat,"
                f"./unit1/lidar_SCR_data/Lidar_data_{100 + k}.mat,./unit1/radar_data/data_{k}_16_45_0{k}.mat,"
                f"./unit2/GPS_data/gps_location_{k}.txt,./unit2/GPS_data_calibrated/gps_location_{k}.txt,,"
                f"{10 + k + 1},{s},['16-45-0{k}-{100 * k + 99:03d}'],0,13,G8 G10 R1,3D,Yes,3.3,1.{k}")
            k += 1
    (root / "scenario9.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return root


def edit_csv(root: Path, line: int, column: str, value: str) -> None:
    """Replace one field (line counted from 1 = header) of scenario9.csv, keeping CRLF."""
    text = (root / "scenario9.csv").read_bytes().decode()
    rows = text.split("\r\n")
    header = rows[0].split(",")
    fields = rows[line - 1].split(",")
    fields[header.index(column)] = value
    rows[line - 1] = ",".join(fields)
    (root / "scenario9.csv").write_bytes("\r\n".join(rows).encode())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "scenario9")


def test_reads_every_column_and_modality(folder):
    sc = ds.open_scenario(folder)
    assert sc.csv_path == folder / "scenario9.csv"
    assert sc.columns == ds.COLUMNS and sc.columns[9] == ""
    assert sc.n == 5 and sc.index.tolist() == [1, 2, 3, 4, 5]
    assert sc.line.tolist() == [2, 3, 4, 5, 6] and sc.row.tolist() == [1, 2, 3, 4, 5]
    assert sc.seq.tolist() == [1, 1, 1, 2, 2] and sc.segment.tolist() == [0, 0, 0, 1, 1]
    assert sc.sequences().tolist() == [1, 2]
    assert sc.beam.tolist() == [10, 11, 12, 13, 14]  # CSV 11..15 is 1-based
    np.testing.assert_allclose(sc.time_s, [16 * 3600 + 45 * 60 + k + (100 * k + 99) / 1000 for k in range(5)])
    assert sc.modalities == ("rgb", "power", "lidar", "lidar_raw", "radar", "gps_bs", "gps", "gps_cal")
    assert sc.paths["rgb"][2] == folder / "unit1/camera_data/image_BS2_102_16_45_02.jpg"
    assert sc.rel["power"][4] == "./unit1/mmWave_data/mmWave_power_4.txt"
    assert sc.meta["unit2_sat_used"][0] == "G8 G10 R1" and sc.meta["unit2_HDOP"][3] == "1.3"
    for i in range(sc.n):
        p = ds.read_power(sc, i)
        assert p.shape == (64,) and int(np.argmax(p)) == sc.beam[i]  # CSV beam index = argmax + 1
        img = ds.read_image(sc, i)
        assert img.shape == (18, 32, 3) and img.dtype == np.uint8 and abs(int(img.mean()) - 40 * i) <= 2
        np.testing.assert_array_equal(ds.read_lidar(sc, i), np.arange(216) / 10 + i)
        np.testing.assert_array_equal(ds.read_lidar_raw(sc, i), np.full((5, 2), float(i)))
        np.testing.assert_array_equal(ds.read_radar(sc, i), radar_cube(i))
        np.testing.assert_allclose(ds.read_gps(sc, i), [33.4201, float(f"-111.92{i}")])
        np.testing.assert_allclose(ds.read_gps(sc, i, "gps_cal"), [33.4202, float(f"-111.93{i}")])
        np.testing.assert_allclose(ds.read(sc, "gps_bs", i), [33.42, -111.928])
    assert sc.summary.to_dict() == {"rows": 5, "kept": 5, "skipped": {}, "skipped_lines": []}


def test_timestamps_parse_and_format_round_trip():
    assert ds.parse_timestamp("['16-45-05-799']") == pytest.approx(60305.799)
    assert ds.parse_timestamp("['17-52-41-022']") == pytest.approx(64361.022)
    assert ds.parse_timestamp("16-45-05-799") == pytest.approx(60305.799)
    assert ds.parse_timestamp("['16:45:05']") is None and ds.parse_timestamp("['25-00-00-000']") is None
    assert ds.format_timestamp(60305.799) == "['16-45-05-799']"


def test_scenario_without_some_modalities(tmp_path):
    """Columns that are absent are modalities that are absent; asking for one names what exists."""
    root = write_folder(tmp_path / "s", seqs=(2,), radar=False)
    text = (root / "scenario9.csv").read_bytes().decode().split("\r\n")
    keep = [i for i, c in enumerate(text[0].split(",")) if c != "unit1_radar"]
    (root / "scenario9.csv").write_bytes("\r\n".join(",".join(r.split(",")[i] for i in keep) if r else r
                                                     for r in text).encode())
    sc = ds.open_scenario(root)
    assert "radar" not in sc.modalities
    with pytest.raises(BeamcError) as e:
        ds.read_radar(sc, 0)
    assert str(e.value) == (f"{root / 'scenario9.csv'}: no column 'unit1_radar' (radar); this scenario has: "
                            "rgb, power, lidar, lidar_raw, gps_bs, gps, gps_cal")


# ----------------------------------------------------------------------------- bad input
def where(folder: Path, line: int, column: str) -> str:
    return f"{folder / 'scenario9.csv'}: line {line} (data row {line - 1}), column '{column}'"


def test_missing_file_names_row_column_and_path(folder):
    (folder / "unit1/camera_data/image_BS2_101_16_45_01.jpg").unlink()
    with pytest.raises(BeamcError) as e:
        ds.open_scenario(folder)
    assert str(e.value) == (f"{where(folder, 3, 'unit1_rgb')}: file not found: ./unit1/camera_data/image_BS2_101_16_45_01.jpg "
                            f"(looked for {folder / 'unit1/camera_data/image_BS2_101_16_45_01.jpg'})")


def test_path_escaping_the_root(folder):
    (folder.parent / "secret.txt").write_text("0\n" * 64)
    edit_csv(folder, 4, "unit1_pwr_60ghz", "./../secret.txt")
    with pytest.raises(BeamcError) as e:
        ds.open_scenario(folder)
    assert str(e.value) == f"{where(folder, 4, 'unit1_pwr_60ghz')}: path './../secret.txt' escapes the scenario root {folder}"
    edit_csv(folder, 4, "unit1_pwr_60ghz", "/etc/passwd")
    with pytest.raises(BeamcError) as e:
        ds.open_scenario(folder)
    assert str(e.value) == (f"{where(folder, 4, 'unit1_pwr_60ghz')}: expected a path relative to the scenario root "
                            f"{folder}, found absolute path '/etc/passwd'")


@pytest.mark.parametrize("column, value, expected", [
    ("unit1_beam_index", "0", "expected an integer 1..64 (1-based beam index), found '0'"),
    ("unit1_beam_index", "65", "expected an integer 1..64 (1-based beam index), found '65'"),
    ("seq_index", "two", "expected an integer sequence index, found 'two'"),
    ("time_stamp[UTC]", "['16:45:05']", "expected a time like ['16-45-05-799'], found \"['16:45:05']\""),
    ("unit1_rgb", "", "expected a file path, found an empty field"),
])
def test_bad_fields(folder, column, value, expected):
    edit_csv(folder, 5, column, value)
    with pytest.raises(BeamcError) as e:
        ds.open_scenario(folder)
    assert str(e.value) == f"{where(folder, 5, column)}: {expected}"


def test_wrong_field_count_and_missing_column(folder):
    text = (folder / "scenario9.csv").read_bytes().decode().split("\r\n")
    text[2] = text[2] + ",extra"
    (folder / "scenario9.csv").write_bytes("\r\n".join(text).encode())
    with pytest.raises(BeamcError) as e:
        ds.open_scenario(folder)
    assert str(e.value) == f"{folder / 'scenario9.csv'}: line 3 (data row 2): expected 20 fields as in the header, found 21"
    (folder / "scenario9.csv").write_bytes(b"index,unit1_pwr_60ghz,time_stamp[UTC]\r\n1,./a.txt,['16-45-05-799']\r\n")
    with pytest.raises(BeamcError) as e:
        ds.open_scenario(folder)
    assert str(e.value) == (f"{folder / 'scenario9.csv'}: missing column 'seq_index' (line 1); found columns: "
                            "'index', 'unit1_pwr_60ghz', 'time_stamp[UTC]'")


def test_missing_folder_and_ambiguous_csv(tmp_path, folder):
    with pytest.raises(BeamcError) as e:
        ds.open_scenario(tmp_path / "nope")
    assert str(e.value) == f"DeepSense scenario folder not found: {tmp_path / 'nope'}"
    (folder / "scenario8.csv").write_bytes((folder / "scenario9.csv").read_bytes())
    with pytest.raises(BeamcError) as e:
        ds.open_scenario(folder)
    assert str(e.value) == f"{folder}: several CSV files (scenario8.csv, scenario9.csv); say which one with csv=... (CLI: --csv)"
    assert ds.open_scenario(folder, csv_name="scenario8.csv").n == 5


def v73_header() -> bytes:
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    return text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM" + b"\x00" * 512


@pytest.mark.parametrize("modality, column, name, content, expected", [
    ("radar", "unit1_radar", "unit1/radar_data/data_1_16_45_01.mat", None,
     "expected variable 'data' of shape 4 x 256 x 128 (complex), found 4 x 256 x 64 (complex64)"),
    ("radar", "unit1_radar", "unit1/radar_data/data_1_16_45_01.mat", v73_header(),
     "expected a MATLAB v5 .mat file, found a v7.3 (HDF5) file"),
    ("lidar", "unit1_lidar_SCR", "unit1/lidar_SCR_data/Lidar_data_101.mat", "wrong-name",
     "expected a variable 'data', found ranges"),
    ("lidar", "unit1_lidar_SCR", "unit1/lidar_SCR_data/Lidar_data_101.mat", "short",
     "expected variable 'data' with 216 real ranges in its first column, found shape 215 x 1 (float64)"),
    ("power", "unit1_pwr_60ghz", "unit1/mmWave_data/mmWave_power_1.txt", "0.1\n" * 63,
     "expected 64 beam powers, found 63 values"),
    ("power", "unit1_pwr_60ghz", "unit1/mmWave_data/mmWave_power_1.txt", "0.1\n" * 63 + "nan\n",
     "expected 64 beam powers, found non-finite values"),
    ("gps", "unit2_loc", "unit2/GPS_data/gps_location_1.txt", "33.42\n",
     "expected latitude and longitude, found 1 values"),
])
def test_corrupt_files_name_row_column_and_path(folder, modality, column, name, content, expected):
    path = folder / name
    if content is None:
        scipy.io.savemat(path, {"data": np.zeros((4, 256, 64), np.complex64)})
    elif content == "wrong-name":
        scipy.io.savemat(path, {"ranges": np.zeros((216, 1))})
    elif content == "short":
        scipy.io.savemat(path, {"data": np.zeros((215, 1))})
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    sc = ds.open_scenario(folder)  # the file exists: opening succeeds, reading names the problem
    with pytest.raises(BeamcError) as e:
        ds.read(sc, modality, 1)
    assert str(e.value) == f"{where(folder, 3, column)}: {expected} in ./{name}"


def test_corrupt_image_and_mat(folder):
    (folder / "unit1/camera_data/image_BS2_101_16_45_01.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "unit1/radar_data/data_1_16_45_01.mat").write_bytes(b"garbage" * 30)
    sc = ds.open_scenario(folder)
    with pytest.raises(BeamcError) as e:
        ds.read_image(sc, 1)
    msg = str(e.value)
    assert msg.startswith(f"{where(folder, 3, 'unit1_rgb')}: cannot decode the image (UnidentifiedImageError: ")
    assert msg.endswith(" in ./unit1/camera_data/image_BS2_101_16_45_01.jpg")
    with pytest.raises(BeamcError) as e:
        ds.check_file(sc, "rgb", 1)
    assert str(e.value).startswith(f"{where(folder, 3, 'unit1_rgb')}: cannot decode the image (")
    with pytest.raises(BeamcError) as e:
        ds.read_radar(sc, 1)
    assert str(e.value).startswith(f"{where(folder, 3, 'unit1_radar')}: cannot read the .mat file (")
    assert str(e.value).endswith(" in ./unit1/radar_data/data_1_16_45_01.mat")
    # a truncated JPEG opens but does not decode
    good = (folder / "unit1/camera_data/image_BS2_102_16_45_02.jpg").read_bytes()
    (folder / "unit1/camera_data/image_BS2_102_16_45_02.jpg").write_bytes(good[: len(good) // 2])
    with pytest.raises(BeamcError) as e:
        ds.read_image(sc, 2)
    assert str(e.value).startswith(f"{where(folder, 4, 'unit1_rgb')}: cannot decode the image (OSError: ")
    assert str(e.value).endswith(" in ./unit1/camera_data/image_BS2_102_16_45_02.jpg")


def test_lenient_skips_and_counts_per_reason_and_splits_the_sequence(folder):
    (folder / "unit1/camera_data/image_BS2_101_16_45_01.jpg").unlink()
    edit_csv(folder, 6, "unit1_beam_index", "0")
    sc = ds.open_scenario(folder, lenient=True)
    assert sc.n == 3 and sc.line.tolist() == [2, 4, 5]
    assert sc.summary.rows == 5 and sc.summary.kept == 3
    assert dict(sc.summary.skipped) == {"missing file (unit1_rgb)": 1, "bad unit1_beam_index": 1}
    assert [ln for ln, _ in sc.summary.skipped_lines] == [3, 6]
    assert sc.summary.skipped_lines[1][1] == (f"{where(folder, 6, 'unit1_beam_index')}: expected an integer 1..64 "
                                              "(1-based beam index), found '0'")
    # the hole at line 3 splits sequence 1: rows 2 and 4 are not consecutive frames
    assert sc.seq.tolist() == [1, 1, 2] and sc.segment.tolist() == [0, 1, 2]


def test_lenient_with_nothing_left(folder):
    for k in range(5):
        edit_csv(folder, k + 2, "seq_index", "x")
    with pytest.raises(BeamcError) as e:
        ds.open_scenario(folder, lenient=True)
    assert str(e.value) == f"{folder / 'scenario9.csv'}: no usable rows (5 data rows, all skipped: bad seq_index x5)"


# ----------------------------------------------------------------------------- frame cache
def gray_small(img: np.ndarray) -> np.ndarray:
    return img.mean(axis=2)[::2, ::2].astype(np.float32)


def test_frame_cache_decodes_each_jpeg_once(folder, monkeypatch):
    from beamc.data.frame_cache import frame_cache

    calls = []
    real = ds.decode_jpeg
    monkeypatch.setattr(ds, "decode_jpeg", lambda p: calls.append(p) or real(p))
    sc = ds.open_scenario(folder)
    first = frame_cache(sc, "rgb", gray_small, key="test.gray", params={"step": 2})
    assert first.built and len(calls) == 5
    assert first.data.shape == (5, 9, 16) and first.data.dtype == np.float32 and first.ok.all()
    np.testing.assert_allclose(first.data[3], gray_small(real(sc.paths["rgb"][3])))
    again = frame_cache(ds.open_scenario(folder), "rgb", gray_small, key="test.gray", params={"step": 2})
    assert not again.built and len(calls) == 5  # second load: no JPEG decoded
    assert isinstance(again.data, np.memmap) and again.path == first.path
    np.testing.assert_array_equal(np.asarray(again.data), np.asarray(first.data))
    frame_cache(sc, "rgb", gray_small, key="test.gray", params={"step": 3})  # other params: rebuilt
    assert len(calls) == 10
    # an edited file changes the fingerprint
    img = np.zeros((18, 32, 3), np.uint8)
    Image.fromarray(img).save(folder / "unit1/camera_data/image_BS2_100_16_45_00.jpg", format="JPEG")
    rebuilt = frame_cache(ds.open_scenario(folder), "rgb", gray_small, key="test.gray", params={"step": 2})
    assert rebuilt.built and len(calls) == 15 and rebuilt.data[0].max() <= 2


def test_frame_cache_lenient_marks_bad_frames_and_windows_skip_them(folder):
    from beamc.data.frame_cache import frame_cache
    from beamc.data.windows import windows

    (folder / "unit1/lidar_SCR_data/Lidar_data_101.mat").write_bytes(b"broken")
    with pytest.raises(BeamcError) as e:
        frame_cache(ds.open_scenario(folder), "lidar", lambda x: x / 10, key="test.lidar10")
    assert str(e.value).startswith(f"{where(folder, 3, 'unit1_lidar_SCR')}: cannot read the .mat file (")
    sc = ds.open_scenario(folder, lenient=True)
    frames = frame_cache(sc, "lidar", lambda x: x / 10, key="test.lidar10")
    assert frames.ok.tolist() == [True, False, True, True, True]
    assert len(frames.failures) == 1 and frames.failures[0].startswith(where(folder, 3, "unit1_lidar_SCR"))
    np.testing.assert_allclose(frames.data[2], (np.arange(216) / 10 + 2) / 10)
    assert not frames.data[1].any()
    assert windows(sc, past=2, future=0, valid=frames.ok).past.tolist() == [[3, 4]]
    with pytest.raises(BeamcError) as e:
        frame_cache(sc, "lidar", None, key="bad key")
    assert str(e.value) == "frame_cache: key must be letters, digits, '.', '_' or '-', found 'bad key'"
