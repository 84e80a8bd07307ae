"""Runtime pieces on their own: source specs, OpenCV video frames, timestamp alignment,
metrics formulas, engines' interface and the CLI help."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from beamc.errors import BeamcError
from beamc.runtime import metrics
from beamc.runtime.align import Aligner
from beamc.runtime.frames import MISSING_MODALITY, BadFrame, Frame
from beamc.runtime.sources import SourceContext, open_source, parse_spec


def test_parse_spec():
    assert parse_spec("deepsense:/data/s9") == ("deepsense", "/data/s9", {})
    assert parse_spec("synth:deepsense?seed=3&sequences=2") == ("synth:deepsense", "", {"seed": "3", "sequences": "2"})
    assert parse_spec("tcp://0.0.0.0:5555?tolerance_ms=30") == ("tcp", "0.0.0.0:5555", {"tolerance_ms": "30"})
    assert parse_spec("rtsp://cam/live?x=1") == ("rtsp", "rtsp://cam/live?x=1", {})
    assert parse_spec("v4l2src ! videoconvert ! appsink") == ("gst", "v4l2src ! videoconvert ! appsink", {})
    assert parse_spec("camera:0") == ("camera", "0", {})
    with pytest.raises(BeamcError, match="unknown source kind 'deepsens' \\(did you mean 'deepsense'\\?\\)"):
        open_source("deepsens:/x", SourceContext(modalities=("lidar",)))
    with pytest.raises(BeamcError, match="option 'sed' is not key=value|unknown option 'sed'"):
        open_source("synth:deepsense?sed=3", SourceContext(modalities=("lidar",)))
    with pytest.raises(BeamcError, match="tcp://HOST:PORT"):
        open_source("tcp://localhost", SourceContext(modalities=("csi",)))


def test_video_file_frames_are_rgb_in_order(tmp_path):
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
    for i in range(12):
        bgr = np.zeros((24, 32, 3), np.uint8)
        bgr[..., 2] = 200             # red in OpenCV's BGR order
        bgr[:, : i + 1, 1] = 120      # a green bar growing one column per frame
        writer.write(bgr)
    writer.release()
    src = open_source(f"video:{path}", SourceContext(modalities=("camera",)))
    frames = list(src.frames())
    src.close()
    assert [f.id for f in frames] == list(range(12))
    assert all(isinstance(f, Frame) and f.data["camera"].shape == (24, 32, 3) for f in frames)
    rgb = frames[5].data["camera"]
    assert abs(int(rgb[..., 0].mean()) - 200) <= 6 and rgb[..., 2].mean() < 8  # channel 0 is red: converted to RGB
    assert [int((f.data["camera"][12, :, 1] > 60).sum()) for f in frames] == [i + 1 for i in range(12)]
    assert np.allclose([f.t for f in frames], np.arange(12) / 10.0, atol=1e-3)
    with pytest.raises(BeamcError, match="file not found"):
        open_source(f"video:{tmp_path / 'none.avi'}", SourceContext(modalities=("camera",)))
    with pytest.raises(BeamcError, match="delivers camera frames, the task needs csi"):
        open_source(f"video:{path}", SourceContext(modalities=("csi",)))


def test_aligner_joins_within_tolerance_and_reports_missing_and_late():
    a = Aligner(("camera", "lidar"), tolerance_s=0.02)
    cam, lid = np.zeros((2, 2, 3), np.uint8), np.ones(216)
    assert a.push("label", np.int64(7), 0, 0.000) == []
    assert a.push("camera", cam, 10, 0.004) == []
    out = a.push("lidar", lid, 20, 0.011)          # 11 ms after the label: same frame
    assert len(out) == 1 and isinstance(out[0], Frame)
    assert out[0].id == 0 and out[0].label == 7 and set(out[0].data) == {"camera", "lidar"}
    assert a.push("power", np.ones(64), 0, 0.005) == [] and a.late == {"power": 1}  # frame already out
    # next instant: camera only; the one after completes -> the camera-only frame is missing lidar
    assert a.push("camera", cam, 11, 0.111) == []
    out = a.push("camera", cam, 12, 0.222) + a.push("lidar", lid, 22, 0.230)
    assert isinstance(out[0], BadFrame) and out[0].reason == MISSING_MODALITY and out[0].id == 11
    assert "no lidar within 20 ms" in out[0].message
    assert isinstance(out[1], Frame) and out[1].id == 12
    # frames closer together than the tolerance are separate frames, not late duplicates
    b = Aligner(("csi",), tolerance_s=0.05)
    assert [f.id for t, i in ((0.0, 0), (0.01, 1), (0.02, 2)) for f in b.push("csi", np.ones(1), i, t)] == [0, 1, 2]
    assert a.push("lidar", lid, 23, 0.5) == [] and [f.id for f in a.flush()] == [23]
    assert a.info()["missing"] == {"lidar": 1, "camera": 1}


def test_metrics_formulas():
    logits = np.array([[0.0, 3.0, 2.0, 1.0], [5.0, 0.0, 1.0, 2.0]])
    labels = np.array([2, 3])
    m = metrics.label_metrics(logits, labels, [0, 1], topk=3)
    assert m["top1"] == 0.0 and m["top3"] == 1.0
    # DBA with delta 5 on beams: sample 0 top [1, 2, 3] vs 2 -> penalties .2, 0, .2; sample 1 top [0, 3, 2] vs 3 -> .6, 0, .2
    y1 = 1 - (0.2 + 0.6) / 2
    y2 = y3 = 1 - 0.0
    assert m["dba"] == pytest.approx((y1 + y2 + y3) / 3)
    power = np.array([[1.0, 10.0, 100.0, 1.0], [1.0, 2.0, 4.0, 8.0]])
    pw = metrics.power_metrics(logits, power, topk=3)
    assert pw["loss_db"]["top1"]["mean"] == pytest.approx((10.0 + 10 * np.log10(8.0)) / 2)
    assert pw["loss_db"]["top3"]["max"] == 0.0 and pw["sweep_overhead_saved"]["top3"] == 0.25
    ag = metrics.agreement(logits, logits + np.array([0, 0, 0, 2.5]), topk=2)
    assert ag["top1_agreement"] == 0.5 and ag["top2_overlap"] == 0.75 and ag["max_abs_logit_error"] == 2.5
    # multi-step outputs: step s of frame t is scored against the label of frame t+s of the same sequence
    steps = np.zeros((3, 2, 4))
    steps[:, 0, 1] = 1.0      # step 0 predicts beam 1
    steps[:, 1, 2] = 1.0      # step 1 predicts beam 2
    ms = metrics.label_metrics(steps, np.array([1, 2, 2]), ["a", "a", "b"], topk=1)
    assert ms["per_step"][0]["frames"] == 3 and ms["per_step"][0]["top1"] == 1 / 3
    assert ms["per_step"][1]["frames"] == 1 and ms["per_step"][1]["top1"] == 1.0  # frame 1 -> frame 2 is another sequence


def test_latency_summary_and_slot_defaults():
    from beamc.runtime.pipeline import default_slot_ms

    s = metrics.latency_summary(np.arange(1, 101, dtype=float))
    assert (s["count"], s["p50"], s["max"]) == (100, 50.5, 100.0) and s["p99"] == pytest.approx(99.01)
    assert default_slot_ms("vision") == (128.0, "task default (vision)")
    assert default_slot_ms("unknown")[0] == 100.0


def test_run_help_lists_sources_with_examples():
    from typer.testing import CliRunner

    from beamc.cli import app

    res = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for spec in ("deepsense:DIR", "csi:FILE", "synth:sub6", "synth:deepsense", "video:FILE", "camera:N", "rtsp://",
                 "gst:PIPELINE", "tcp://HOST:PORT", "--baseline", "--as-fast-as-possible", "--slot-ms", "--max-frames"):
        assert spec in res.output, spec


def test_video_file_through_the_pipeline(tmp_path):
    """OpenCV frames -> a camera window task -> ONNX Runtime: predictions equal the model on
    windows of the same decoded frames."""
    import cv2
    import onnxruntime as ort

    from beamc.runtime.pipeline import RunOptions, run_stream
    from runtime_helpers import (WINDOW, camera_columns, jsonl, make_window_bundle, registered_window_task,
                                 unregister_window_task)

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (224, 16))
    rng = np.random.default_rng(0)
    for _ in range(8):
        writer.write(np.repeat(rng.integers(0, 255, (1, 224, 3), dtype=np.uint8), 16, axis=0))
    writer.release()
    bundle = make_window_bundle(tmp_path / "bundle", camera_only=True)
    registered_window_task()
    try:
        rep = run_stream(RunOptions(bundle=bundle, source=f"video:{path}", pace="afap", report=tmp_path / "r.json",
                                    out=tmp_path / "p.jsonl", plots=False))
    finally:
        unregister_window_task()
    src = open_source(f"video:{path}", SourceContext(modalities=("camera",)))
    cols = [camera_columns(f.data) for f in src.frames()]
    src.close()
    x = np.stack([np.stack(cols[i - WINDOW + 1:i + 1]) for i in range(WINDOW - 1, len(cols))])
    logits = ort.InferenceSession(str(bundle / "model.onnx")).run(None, {"lidar": x})[0]
    rows = jsonl(tmp_path / "p.jsonl")
    assert [r["id"] for r in rows] == list(range(WINDOW - 1, 8))
    assert [r["topk"][0] for r in rows] == logits.argmax(1).tolist()
    assert rep["frames"]["predicted"] == 8 - (WINDOW - 1) and rep["source"]["kind"] == "video"
    assert "accuracy" not in rep  # a plain video has no labels
