"""beamc run on DeepSense-format streams with a test-only LiDAR window task: the predictions
equal ONNX Runtime on windows built offline from the folder, history resets at sequence
boundaries and at bad frames, and undecodable JPEGs / truncated .mat files are counted per
reason with their frame ids while the stream goes on."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from beamc.data import deepsense as ds
from beamc.errors import BeamcError
from beamc.data.synth.v2i import DeepSenseSynthConfig, generate
from beamc.runtime.frames import UNDECODABLE_IMAGE, UNREADABLE_MAT
from beamc.runtime.pipeline import RunOptions, run_stream
from beamc.runtime.sources import SourceContext, open_source
from runtime_helpers import WINDOW, jsonl, make_window_bundle, registered_window_task, unregister_window_task


@pytest.fixture(autouse=True)
def window_task():
    registered_window_task()
    yield
    unregister_window_task()


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("v2i") / "scenario"
    cfg = replace(DeepSenseSynthConfig(), seed=1, sequences=2, min_frames=5, max_frames=6, radar=False)
    generate(cfg, out)
    return out


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("window-bundles")
    return {"lidar": make_window_bundle(root / "lidar"), "camera": make_window_bundle(root / "camera", use_camera=True)}


def expected_windows(root: Path, bad_rows: set[int] = frozenset(), use_camera: bool = False):
    """(ids, inputs, labels) of every window the runtime should predict, built offline."""
    sc = ds.open_scenario(root)
    runs, current, last_seg = [], [], None
    for i in range(sc.n):
        if sc.segment[i] != last_seg or i in bad_rows:
            runs.append(current)
            current = []
        last_seg = sc.segment[i]
        if i not in bad_rows:
            current.append(i)
    runs.append(current)
    ids, xs, labels = [], [], []
    for run in runs:
        frames = []
        for i in run:
            x = ds.read_lidar(sc, i).astype(np.float32) / np.float32(10.0)
            if use_camera:
                x = x + np.float32(ds.read_image(sc, i).astype(np.float32).mean() / 255.0)
            frames.append(x)
        for j in range(WINDOW - 1, len(run)):
            ids.append(int(sc.index[run[j]]))
            xs.append(np.stack(frames[j - WINDOW + 1:j + 1]))
            labels.append(int(sc.beam[run[j]]))
    return ids, np.stack(xs), np.asarray(labels)


def test_replay_equals_offline_windows(scenario, bundles, tmp_path):
    rep = run_stream(RunOptions(bundle=bundles["lidar"], source=f"deepsense:{scenario}", pace="afap",
                                report=tmp_path / "r.json", out=tmp_path / "p.jsonl", topk=3, plots=False))
    ids, x, labels = expected_windows(scenario)
    logits = ort.InferenceSession(str(bundles["lidar"] / "model.onnx")).run(None, {"lidar": x})[0]
    rows = jsonl(tmp_path / "p.jsonl")
    assert [r["id"] for r in rows] == ids
    assert [r["topk"][0] for r in rows] == logits.argmax(axis=1).tolist()
    assert [r["label"] for r in rows] == labels.tolist()
    sc = ds.open_scenario(scenario)
    assert rep["status"] == "completed"
    assert rep["frames"] == {**rep["frames"], "received": sc.n, "predicted": len(ids), "bad": 0, "dropped": 0,
                             "warmup": (WINDOW - 1) * len(sc.sequences())}
    assert rep["accuracy"]["top1"] == pytest.approx(float(np.mean(logits.argmax(1) == labels)))
    assert rep["accuracy"]["labelled_frames"] == len(ids)
    # power loss from the 64 beam powers of the same rows
    power = np.stack([ds.read_power(sc, int(np.flatnonzero(sc.index == i)[0])) for i in ids])
    loss = 10 * np.log10(power.max(1) / power[np.arange(len(ids)), logits.argmax(1)])
    assert rep["power"]["loss_db"]["top1"]["mean"] == pytest.approx(loss.mean())
    assert rep["power"]["sweep_overhead_saved"] == {"top1": 1 - 1 / 64, "top3": 1 - 3 / 64}
    assert rep["deadline"]["slot_ms"] == 100.0 and rep["deadline"]["slot_from"].startswith("fallback")


def test_bad_jpeg_and_truncated_mat_are_counted_and_the_stream_goes_on(scenario, bundles, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(scenario, root)
    sc = ds.open_scenario(root)
    jpeg_row, mat_row = 2, 8
    sc.paths["rgb"][jpeg_row].write_bytes(b"\xff\xd8 this is not a JPEG")
    mat = sc.paths["lidar"][mat_row]
    mat.write_bytes(mat.read_bytes()[: mat.stat().st_size // 3])
    rep = run_stream(RunOptions(bundle=bundles["camera"], source=f"deepsense:{root}", pace="afap",
                                report=tmp_path / "r.json", out=tmp_path / "p.jsonl", plots=False))
    bad = rep["frames"]["bad_by_reason"]
    assert set(bad) == {UNDECODABLE_IMAGE, UNREADABLE_MAT}
    assert bad[UNDECODABLE_IMAGE]["count"] == 1 and bad[UNDECODABLE_IMAGE]["frame_ids"] == [int(sc.index[jpeg_row])]
    assert bad[UNREADABLE_MAT]["count"] == 1 and bad[UNREADABLE_MAT]["frame_ids"] == [int(sc.index[mat_row])]
    assert "cannot decode the image" in bad[UNDECODABLE_IMAGE]["example"]
    ids, x, _ = expected_windows(root, {jpeg_row, mat_row}, use_camera=True)
    logits = ort.InferenceSession(str(bundles["camera"] / "model.onnx")).run(None, {"lidar": x})[0]
    rows = [r for r in jsonl(tmp_path / "p.jsonl") if "bad" not in r]
    assert [r["id"] for r in rows] == ids  # no window joins frames across a bad one
    assert [r["topk"][0] for r in rows] == logits.argmax(1).tolist()
    assert rep["frames"]["predicted"] == len(ids) and rep["status"] == "completed"


def test_replay_timeline_shortens_the_pauses_between_passes(scenario):
    src = open_source(f"deepsense:{scenario}", SourceContext(modalities=("lidar",)))
    sc = src.sc
    gaps = np.diff(sc.time_s)
    assert gaps.max() > 3.0  # the simulator leaves 3-40 s between vehicle passes
    t = src.timeline()
    assert np.diff(t).max() <= 0.2
    assert np.allclose(np.diff(t)[gaps <= 1.0], gaps[gaps <= 1.0])
    with pytest.raises(Exception, match="needs modality 'csi'"):
        open_source(f"deepsense:{scenario}", SourceContext(modalities=("csi",)))


def test_synth_deepsense_live_generator(bundles, tmp_path):
    rep = run_stream(RunOptions(bundle=bundles["lidar"], source="synth:deepsense?seed=2&sequences=1&min_frames=4&max_frames=4",
                                pace="afap", report=tmp_path / "r.json", plots=False))
    assert rep["frames"]["received"] == 4 and rep["frames"]["predicted"] == 4 - (WINDOW - 1)
    assert rep["accuracy"]["labelled_frames"] == 2 and rep["power"]["frames"] == 2


def test_preprocessing_that_does_not_fit_the_model_ends_the_run_with_a_clear_message(scenario, tmp_path):
    import json

    bundle = make_window_bundle(tmp_path / "b")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["task"]["config"]["window"] = WINDOW + 1  # the task now builds 4-frame windows, the model takes 3
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    rep = run_stream(RunOptions(bundle=bundle, source=f"deepsense:{scenario}", pace="afap", report=tmp_path / "r.json",
                                plots=False))
    assert rep["status"] == "engine_failed" and rep["frames"]["predicted"] == 0
    assert rep["message"] == ("task 'test_lidar_window' stream preprocessing gives inputs [([4, 216], 'float32')] (shape "
                              "without batch, dtype), the bundle's model takes [([3, 216], 'float32')] (manifest inputs)")
    manifest["inputs"][0]["shape"] = [WINDOW + 1, 216]  # a manifest that contradicts its own model
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BeamcError, match=r"the ort engine rejects the manifest's inputs \[\('lidar', \[4, 216\]\)\]"):
        run_stream(RunOptions(bundle=bundle, source=f"deepsense:{scenario}", report=tmp_path / "r2.json"))
    assert not (tmp_path / "r2.json").exists()  # nothing ran: the error is the whole answer


def test_bad_csv_rows_are_numbered_by_their_index_and_delivered_in_csv_order(scenario, bundles, tmp_path):
    root = tmp_path / "rows"
    shutil.copytree(scenario, root)
    csv_path = next(root.glob("*.csv"))
    lines = csv_path.read_bytes().decode().split("\r\n") if b"\r\n" in csv_path.read_bytes() else \
        csv_path.read_text().split("\n")
    sep = "\r\n" if b"\r\n" in csv_path.read_bytes() else "\n"
    header = lines[0].split(",")
    beam_col, index_col = header.index("unit1_beam_index"), header.index("index")
    for line, col, value in ((4, beam_col, "x"), (9, index_col, "nine")):  # data rows 3 and 8
        fields = lines[line - 1].split(",")
        fields[col] = value
        lines[line - 1] = ",".join(fields)
    csv_path.write_bytes(sep.join(lines).encode())
    rep = run_stream(RunOptions(bundle=bundles["lidar"], source=f"deepsense:{root}", pace="afap",
                                report=tmp_path / "r.json", out=tmp_path / "p.jsonl", plots=False))
    bad = rep["frames"]["bad_by_reason"]["bad CSV row"]
    assert bad["frame_ids"] == [3, -1]  # the CSV index of data row 3; data row 8's index is unreadable
    assert bad["example"].startswith(f"{csv_path}: line 4 (data row 3), column 'unit1_beam_index'")
    ids = [r["id"] for r in jsonl(tmp_path / "p.jsonl")]
    at3, at8 = ids.index(3), ids.index(-1)
    assert all(i < 3 for i in ids[:at3]) and all(i > 3 for i in ids[at3 + 1:] if i != -1)
    assert all(i < 8 for i in ids[:at8]) and all(i > 8 for i in ids[at8 + 1:])
    f = rep["frames"]
    assert f["received"] == f["predicted"] + f["warmup"] + f["bad"] + f["dropped"] == 12
