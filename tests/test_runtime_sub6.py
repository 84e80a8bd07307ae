"""The sub-6 end to end: tiny distill -> export -> CSI recording -> beamc run with the PyTorch
baseline, over a recording, over TCP on loopback (with malformed frames), the CLI with Ctrl-C,
and the runtime without torch."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from beamc.runtime.frames import MALFORMED_NETWORK, SHAPE_MISMATCH
from beamc.runtime.pipeline import RunOptions, run_stream
from beamc.runtime.sources.csi import read_recording, record_csi, write_recording
from beamc.runtime.sources.tcp import FrameSender, encode_frame
from conftest import write_tiny_sub6
from runtime_helpers import jsonl

REPO = Path(__file__).resolve().parents[1]


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def sub6(tmp_path_factory) -> dict[str, Path]:
    from beamc.compress.pipeline import distill
    from beamc.export.bundle import export_run
    from beamc.recipe import load_recipe

    folder = tmp_path_factory.mktemp("runtime-sub6")
    run = distill(load_recipe(write_tiny_sub6(folder, name="tiny_runtime")), out=folder / "runs", progress=False, log=quiet)
    bundle = export_run(run.path, "cpu", precision="fp32", out=folder / "bundle", log=quiet).path
    rec, _ = record_csi(folder / "rec.npz", run_dir=run.path)
    return {"run": run.path, "bundle": bundle, "rec": rec, "folder": folder}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_csi_recording_with_baseline_matches_offline_evaluation(sub6, tmp_path):
    rep = run_stream(RunOptions(bundle=sub6["bundle"], source=f"csi:{sub6['rec']}", baseline=sub6["run"], pace="afap",
                                topk=3, report=tmp_path / "report.json", out=tmp_path / "p.jsonl"))
    rec = read_recording(sub6["rec"])
    n = len(rec["csi"])
    assert rep["status"] == "completed" and rep["frames"]["predicted"] == n and rep["frames"]["bad"] == 0
    # fp32 ONNX Runtime agrees with PyTorch on every frame
    assert rep["agreement"]["top1_agreement"] == 1.0 and rep["agreement"]["top3_overlap"] == 1.0
    assert rep["agreement"]["max_abs_logit_error"] < 1e-4 and rep["agreement"]["frames"] == n
    assert rep["baseline"]["checkpoint_matches_bundle"] is True
    # the recording is the test split at the reference SNR with the evaluation noise: the
    # streamed accuracy is the offline test accuracy of the student at 15 dB
    metrics = json.loads((sub6["run"] / "metrics.json").read_text())
    ref = next(r for r in metrics["models"]["student"]["metrics"]["by_snr"] if r["snr_db"] == 15.0)
    assert rep["accuracy"]["top1"] == pytest.approx(ref["top1"], abs=1e-12)
    assert rep["accuracy"]["top3"] == pytest.approx(ref["top3"], abs=1e-12)
    assert rep["accuracy"]["labelled_frames"] == n
    loss = rep["power"]["loss_db"]
    assert loss["top1"]["mean"] >= loss["top3"]["mean"] >= 0.0
    assert rep["power"]["sweep_overhead_saved"]["top3"] == 1 - 3 / 64
    assert rep["deadline"] == {**rep["deadline"], "slot_ms": 20.0, "slot_from": "task default (sub6)"}
    assert set(rep["latency_ms"]) == {"read", "queue", "preprocess", "engine", "e2e"}
    assert rep["latency_ms"]["e2e"]["count"] == n
    assert [Path(p).name for p in rep["plots"]] == ["report_latency.png", "report_accuracy.png"]
    rows = jsonl(tmp_path / "p.jsonl")
    assert len(rows) == n and all(len(r["topk"]) == 3 and r["baseline_top1"] == r["topk"][0] for r in rows)
    assert [r["label"] for r in rows] == rec["label"].tolist()
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["agreement"] == rep["agreement"]


def test_csi_mat_folder_truncated_file_and_shape_mismatch(sub6, tmp_path):
    import scipy.io

    rec = read_recording(sub6["rec"])
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(6):
        csi = rec["csi"][i] if i != 4 else rec["csi"][i][:, :16]  # frame 4: 16 subcarriers instead of 32
        scipy.io.savemat(folder / f"frame_{i:06d}.mat", {"csi": csi, "label": int(rec["label"][i]), "t": i * 0.02})
    broken = folder / "frame_000002.mat"
    broken.write_bytes(broken.read_bytes()[:100])
    rep = run_stream(RunOptions(bundle=sub6["bundle"], source=f"csi:{folder}", pace="afap", report=tmp_path / "r.json",
                                plots=False))
    bad = rep["frames"]["bad_by_reason"]
    assert {k: v["frame_ids"] for k, v in bad.items()} == {"unreadable .mat": [2], SHAPE_MISMATCH: [4]}
    assert "expected shape (antennas, subcarriers) = (4, 32), found (4, 16)" in bad[SHAPE_MISMATCH]["example"]
    assert rep["frames"]["predicted"] == 4 and rep["accuracy"]["labelled_frames"] == 4


def test_recording_format_errors_name_the_key(tmp_path):
    from beamc.errors import BeamcError

    path = write_recording(tmp_path / "r.npz", np.ones((3, 4, 32), np.complex64), label=np.zeros(3))
    assert read_recording(path)["label"].dtype == np.int64
    np.savez(tmp_path / "bad.npz", csi=np.ones((3, 4, 32), np.float32), format=np.asarray("beamc-csi/1"))
    with pytest.raises(BeamcError, match="key 'csi': expected complex"):
        read_recording(tmp_path / "bad.npz")
    with pytest.raises(BeamcError, match="power has 2 entries, csi has 3"):
        write_recording(tmp_path / "x.npz", np.ones((3, 4, 32), np.complex64), power=np.ones((2, 64)))


def stream_over_tcp(sub6, tmp_path, send) -> tuple[dict, dict]:
    """Run the sub-6 bundle on a TCP source fed by `send(sender, recording)` in a thread;
    (report, recording)."""
    rec = read_recording(sub6["rec"])
    port = free_port()

    def sender() -> None:
        with FrameSender("127.0.0.1", port) as s:
            send(s, rec)

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    # queue_size: the frames arrive in one burst; a live source drops what does not fit
    rep = run_stream(RunOptions(bundle=sub6["bundle"], source=f"tcp://127.0.0.1:{port}?tolerance_ms=5", queue_size=32,
                                report=tmp_path / "r.json", out=tmp_path / "p.jsonl", plots=False))
    thread.join(5)
    return rep, rec


def test_tcp_loopback_with_malformed_frames(sub6, tmp_path):
    def send(s, rec) -> None:
        for i in range(8):
            t = i * 0.02
            s.send("label", np.int64(rec["label"][i]), frame_id=i, t=t)
            s.send("power", rec["power"][i], frame_id=i, t=t + 0.001)
            if i == 2:
                s.send_raw(b"garbage before a frame")  # bad magic: skipped to the next message
            if i == 3:  # payload length that does not match dtype and shape
                msg = bytearray(encode_frame("csi", rec["csi"][i], frame_id=i, t=t))
                msg[28:36] = (100).to_bytes(8, "little")
                s.send_raw(bytes(msg[:36 + 3 + 3 + 8]) + bytes(100))
                continue
            if i == 5:
                s.send("csi", rec["csi"][i][:2], frame_id=i, t=t + 0.002)  # 2 antennas: shape mismatch
                continue
            s.send("csi", rec["csi"][i], frame_id=i, t=t + 0.002)

    rep, rec = stream_over_tcp(sub6, tmp_path, send)
    bad = rep["frames"]["bad_by_reason"]
    assert bad[MALFORMED_NETWORK]["count"] == 2 and bad[MALFORMED_NETWORK]["frame_ids"] == [-1, 3]
    assert "expected magic b'BMCF'" in bad[MALFORMED_NETWORK]["example"]
    assert bad[SHAPE_MISMATCH]["frame_ids"] == [5]
    # frame 3 lost its csi: its label and power wait in an incomplete frame until frame 4 completes
    assert bad["missing modality"]["frame_ids"] == [3]
    assert rep["source"]["alignment"]["missing"] == {"csi": 1}
    rows = [r for r in jsonl(tmp_path / "p.jsonl") if "bad" not in r]
    assert [r["id"] for r in rows] == [0, 1, 2, 4, 6, 7]
    assert [r["label"] for r in rows] == rec["label"][[0, 1, 2, 4, 6, 7]].tolist()
    assert rep["power"]["frames"] == 6 and rep["status"] == "completed" and rep["frames"]["dropped"] == 0


def test_tcp_sender_dying_mid_message_ends_the_run_with_a_report(sub6, tmp_path):
    rec = read_recording(sub6["rec"])
    port = free_port()

    def sender() -> None:
        s = FrameSender("127.0.0.1", port)
        for i in range(3):
            s.send("csi", rec["csi"][i], frame_id=i, t=i * 0.02)
        s.send_raw(encode_frame("csi", rec["csi"][3], frame_id=3, t=0.06)[:500])
        s.close(end_of_stream=False)

    threading.Thread(target=sender, daemon=True).start()
    rep = run_stream(RunOptions(bundle=sub6["bundle"], source=f"tcp://127.0.0.1:{port}", report=tmp_path / "r.json",
                                queue_size=32, plots=False))
    assert rep["status"] == "source_failed"
    assert "closed the connection in the middle of a message" in rep["message"]
    assert rep["frames"]["predicted"] == 3
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "source_failed"


def test_cli_ctrl_c_mid_stream_leaves_a_valid_report(sub6, tmp_path):
    report, preds = tmp_path / "report.json", tmp_path / "p.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "beamc.cli", "run", str(sub6["bundle"]), "--source", "synth:sub6",
                             "--rate", "200", "--report", str(report), "--out", str(preds), "--no-live"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ})
    deadline = time.monotonic() + 60
    while (not preds.exists() or len(preds.read_text().splitlines()) < 20) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    rep = json.loads(report.read_text())
    assert rep["status"] == "interrupted" and rep["frames"]["predicted"] >= 20
    assert rep["frames"]["predicted"] == len(jsonl(preds))
    assert rep["latency_ms"]["e2e"]["count"] == rep["frames"]["predicted"]
    assert rep["source"]["kind"] == "synth:sub6" and rep["accuracy"]["labelled_frames"] == rep["frames"]["predicted"]


BLOCK_TORCH = """
import sys, importlib.abc
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch.") or name.startswith("beamc.compress"):
            raise ImportError(f"{name} is hidden in this test")
sys.meta_path.insert(0, NoTorch())
"""


def test_runtime_runs_without_torch(sub6, tmp_path):
    code = BLOCK_TORCH + f"""
import json
from pathlib import Path
import beamc.runtime.pipeline, beamc.runtime.report, beamc.runtime.align
from beamc.registry import SOURCES, ENGINES
print(sorted(SOURCES.names()), sorted(ENGINES.names()))
from beamc.runtime.pipeline import RunOptions, run_stream
rep = run_stream(RunOptions(bundle=Path({str(sub6['bundle'])!r}), source="csi:{sub6['rec']}", pace="afap",
                            report=Path({str(tmp_path / 'r.json')!r}), plots=False))
print(rep["frames"]["predicted"], rep["status"])
try:
    run_stream(RunOptions(bundle=Path({str(sub6['bundle'])!r}), source="csi:{sub6['rec']}", engine="torch",
                          report=Path({str(tmp_path / 'r2.json')!r})))
except Exception as e:
    print(type(e).__name__, e)
print("torch" in sys.modules)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0] == "{} {}".format(sorted(["csi", "deepsense", "synth:sub6", "synth:deepsense", "video", "camera", "rtsp",
                                              "gst", "tcp"]), ["ort", "torch", "trt"])
    assert lines[1] == f"{len(read_recording(sub6['rec'])['csi'])} completed"
    assert lines[2].startswith("BeamcError the torch engine (and --baseline) needs PyTorch")
    assert lines[3] == "False"


@pytest.mark.gpu
def test_trt_engine_built_on_first_use_agrees_with_the_baseline(sub6, tmp_path):
    from beamc.export.bundle import export_run

    bundle = export_run(sub6["run"], "h100", precision="fp32", out=tmp_path / "h100", engine="skip", log=quiet).path
    assert not (bundle / "model.plan").exists()
    rep = run_stream(RunOptions(bundle=bundle, source=f"csi:{sub6['rec']}", engine="trt", baseline=sub6["run"],
                                pace="afap", micro_batch=4, report=tmp_path / "r.json", plots=False))
    assert rep["engine"]["built_on_first_use"] is True and (bundle / "model.plan").exists()
    assert rep["agreement"]["top1_agreement"] == 1.0 and rep["agreement"]["max_abs_logit_error"] < 1e-3
    assert rep["frames"]["predicted"] == len(read_recording(sub6["rec"])["csi"])


def test_live_source_drops_frames_when_the_engine_falls_behind(sub6, tmp_path):
    """A live source never waits for the engine: what does not fit in the queue is dropped
    (counted with ids), and every frame that waited behind a 200 ms engine misses a 10 ms slot."""
    from beamc.registry import ENGINES
    from beamc.runtime.engines.ort import OrtEngine

    class SlowEngine(OrtEngine):
        name = "test_slow"

        def run(self, inputs):
            time.sleep(0.2)
            return super().run(inputs)

    ENGINES.add("test_slow", SlowEngine)
    rec = read_recording(sub6["rec"])
    port = free_port()

    def sender() -> None:
        with FrameSender("127.0.0.1", port) as s:
            for i in range(20):
                s.send("csi", rec["csi"][i], frame_id=i, t=i * 0.02)

    try:
        threading.Thread(target=sender, daemon=True).start()
        rep = run_stream(RunOptions(bundle=sub6["bundle"], source=f"tcp://127.0.0.1:{port}", engine="test_slow",
                                    queue_size=2, slot_ms=10.0, report=tmp_path / "r.json", plots=False))
    finally:
        ENGINES._items.pop("test_slow", None)
    f = rep["frames"]
    assert f["received"] == 20 and f["predicted"] + f["dropped"] == 20 and f["dropped"] >= 10
    assert 0 not in f["dropped_ids"] and set(f["dropped_ids"]) < set(range(20))  # the first frame finds the queue empty
    assert rep["deadline"]["misses"] == f["predicted"] and rep["deadline"]["slot_from"] == "--slot-ms"


def test_send_recording_over_tcp_equals_the_file_replay(sub6, tmp_path):
    from beamc.runtime.sources.tcp import send_recording

    port = free_port()
    sent = []
    threading.Thread(target=lambda: sent.append(send_recording(str(sub6["rec"]), "127.0.0.1", port)), daemon=True).start()
    net = run_stream(RunOptions(bundle=sub6["bundle"], source=f"tcp://127.0.0.1:{port}?tolerance_ms=1", queue_size=4096,
                                report=tmp_path / "net.json", out=tmp_path / "net.jsonl", plots=False))
    disk = run_stream(RunOptions(bundle=sub6["bundle"], source=f"csi:{sub6['rec']}", pace="afap",
                                 report=tmp_path / "disk.json", out=tmp_path / "disk.jsonl", plots=False))
    assert sent == [net["frames"]["predicted"]] and net["frames"]["dropped"] == 0
    assert net["accuracy"] == disk["accuracy"] and net["power"] == disk["power"]
    strip = lambda rows: [{k: r[k] for k in ("id", "key", "topk", "label")} for r in rows]  # noqa: E731
    assert strip(jsonl(tmp_path / "net.jsonl")) == strip(jsonl(tmp_path / "disk.jsonl"))


def test_cli_record_csi(sub6, tmp_path):
    from typer.testing import CliRunner

    from beamc.cli import app

    out = tmp_path / "r.npz"
    res = CliRunner().invoke(app, ["data", "record", "csi", str(out), "--run", str(sub6["run"]), "--snr-db", "5",
                                   "--max-frames", "7", "--interval-ms", "10"])
    assert res.exit_code == 0, res.output
    rec = read_recording(out)
    assert rec["csi"].shape == (7, 4, 32) and np.allclose(rec["t"], np.arange(7) * 0.01)
    assert json.loads(str(rec["meta"]))["snr_db"] == 5.0 and rec["power"].shape == (7, 64)
    full = read_recording(sub6["rec"])  # 15 dB: same users and labels at the reference SNR, other noise
    assert rec["user"].tolist() == full["user"][:7].tolist() and not np.allclose(rec["csi"], full["csi"][:7])
    res = CliRunner().invoke(app, ["data", "record", "csi", str(out)])
    assert str(res.exception) == "record csi: give exactly one of --run RUN_DIR or --recipe RECIPE"  # main() exits 2


def test_micro_batching_predicts_what_batch_one_predicts(sub6, tmp_path):
    one = run_stream(RunOptions(bundle=sub6["bundle"], source=f"csi:{sub6['rec']}", pace="afap", baseline=sub6["run"],
                                report=tmp_path / "one.json", out=tmp_path / "one.jsonl", plots=False))
    four = run_stream(RunOptions(bundle=sub6["bundle"], source=f"csi:{sub6['rec']}", pace="afap", micro_batch=4,
                                 baseline=sub6["run"], report=tmp_path / "four.json", out=tmp_path / "four.jsonl",
                                 plots=False))
    assert four["micro_batch"] == 4 and four["frames"]["predicted"] == one["frames"]["predicted"]
    assert four["engine_batch"]["max"] == 4 and one["engine_batch"] == {"mean": 1.0, "max": 1}
    assert four["accuracy"] == one["accuracy"] and four["agreement"]["top1_agreement"] == 1.0
    a, b = jsonl(tmp_path / "one.jsonl"), jsonl(tmp_path / "four.jsonl")
    assert [r["topk"] for r in a] == [r["topk"] for r in b]
    assert np.allclose([r["scores"] for r in a], [r["scores"] for r in b], atol=1e-6)


def test_inline_replay_and_source_thread_predict_the_same_frames(sub6, tmp_path):
    # --as-fast-as-possible on a recording is read by the worker itself; the threaded reader
    # (paced and live sources) must give the same predictions, frame for frame
    runs = {}
    for inline in (True, False):
        runs[inline] = run_stream(RunOptions(bundle=sub6["bundle"], source=f"csi:{sub6['rec']}", pace="afap",
                                             inline_replay=inline, report=tmp_path / f"{inline}.json",
                                             out=tmp_path / f"{inline}.jsonl", plots=False))
    assert runs[True]["source"]["read_by"] == "worker (inline replay)"
    assert runs[False]["source"]["read_by"] == "source thread"
    n = len(read_recording(sub6["rec"])["csi"])
    assert runs[True]["frames"]["predicted"] == runs[False]["frames"]["predicted"] == n
    assert runs[True]["accuracy"] == runs[False]["accuracy"]
    a, b = jsonl(tmp_path / "True.jsonl"), jsonl(tmp_path / "False.jsonl")
    assert [(r["id"], r["topk"]) for r in a] == [(r["id"], r["topk"]) for r in b]


def test_ort_bound_buffers_return_each_frame_its_own_logits(sub6):
    # batch 1 runs on IOBinding buffers bound once; every call must still return a fresh array
    # equal to session.run on the same input (not a view the next frame overwrites)
    from beamc.export.bundle import read_bundle
    from beamc.runtime.engines import open_engine

    manifest = read_bundle(sub6["bundle"])
    shape = (1, *manifest["inputs"][0]["shape"])
    xs = [np.random.default_rng(i).standard_normal(shape).astype(np.float32) for i in range(5)]
    with open_engine("ort", sub6["bundle"], manifest) as bound, \
            open_engine("ort", sub6["bundle"], manifest, iobinding=False) as plain:
        assert bound.describe()["batch1_iobinding"] is True and plain.describe()["batch1_iobinding"] is False
        outs = [bound.run((x,)) for x in xs]
        for x, y in zip(xs, outs):
            assert np.array_equal(y, plain.run((x,)))
        assert not np.array_equal(outs[0], outs[1])
        batch = np.concatenate(xs)  # other batches take session.run
        assert np.allclose(bound.run((batch,)), np.concatenate(outs), atol=1e-6)
        # float64 frames are cast into the float32 buffer as session.run would reject them
        assert np.allclose(bound.run((xs[0].astype(np.float64),)), outs[0], atol=1e-6)


# ------------------------------------------------------------------ hardening: bad values in streams
def strict_jsonl(path: Path) -> list[dict]:
    """JSON lines as a strict reader takes them: a bare NaN / Infinity token fails."""
    def reject(token: str):
        raise ValueError(f"non-standard JSON token {token}")

    return [json.loads(line, parse_constant=reject) for line in Path(path).read_text().splitlines()]


def small_recording(sub6, path: Path, n: int = 20, **changes) -> Path:
    rec = read_recording(sub6["rec"])
    arrays = {k: rec[k][:n].copy() for k in ("csi", "t", "user", "label", "power")}
    for key, edit in changes.items():
        edit(arrays[key])
    return write_recording(path, arrays["csi"], arrays["t"], user=arrays["user"], label=arrays["label"],
                           power=arrays["power"])


def nan_at(i):
    def edit(a):
        a[i] = np.nan
    return edit


def test_non_finite_csi_is_a_bad_frame_and_the_predictions_are_strict_json(sub6, tmp_path):
    def edits(csi):
        csi[5] = np.nan
        csi[6, 0, 0] = np.inf

    def unknown(label):
        label[2] = -1  # the format's "no label": null in the predictions, not scored

    path = small_recording(sub6, tmp_path / "r.npz", csi=edits, label=unknown)
    rep = run_stream(RunOptions(bundle=sub6["bundle"], source=f"csi:{path}", pace="afap", report=tmp_path / "r.json",
                                out=tmp_path / "p.jsonl", plots=False))
    f = rep["frames"]
    assert (f["received"], f["predicted"], f["bad"]) == (20, 18, 2)
    assert f["bad_by_reason"] == {"non-finite input": {
        "count": 2, "frame_ids": [5, 6],
        "example": "frame 5: csi has 128 non-finite values (NaN or inf) of 128; expected finite numbers"}}
    rows = strict_jsonl(tmp_path / "p.jsonl")
    assert [r["id"] for r in rows if "bad" in r] == [5, 6]
    assert rows[6]["message"] == "frame 6: csi has 1 non-finite value (NaN or inf) of 128; expected finite numbers"
    scored = [r for r in rows if "bad" not in r]
    assert [r["id"] for r in scored] == [i for i in range(20) if i not in (5, 6)]
    assert scored[2]["label"] is None
    labelled = [r for r in scored if r["label"] is not None]
    assert rep["accuracy"]["labelled_frames"] == 17
    assert rep["accuracy"]["top1"] == sum(r["topk"][0] == r["label"] for r in labelled) / 17
    json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda t: pytest.fail(f"{t} in report.json"))


def test_out_of_range_labels_are_unscored_not_counted_in_accuracy(sub6, tmp_path):
    def labels(label):
        label[3], label[4], label[7] = 64, 1000, -5

    path = small_recording(sub6, tmp_path / "r.npz", label=labels)
    rep = run_stream(RunOptions(bundle=sub6["bundle"], source=f"csi:{path}", pace="afap", report=tmp_path / "r.json",
                                out=tmp_path / "p.jsonl", plots=False))
    f = rep["frames"]
    assert (f["predicted"], f["bad"], f["unscored"]) == (20, 0, 3)
    assert f["unscored_by_reason"] == {"bad label": {
        "count": 3, "frame_ids": [3, 4, 7],
        "example": "frame 3: label: expected one integer beam index 0..63 (or -1: unknown), found 64; predicted, not scored"}}
    rows = strict_jsonl(tmp_path / "p.jsonl")
    assert [r["label"] for r in rows if r["id"] in (3, 4, 7)] == [None, None, None]
    good = [r for r in rows if r["label"] is not None]
    assert rep["accuracy"]["labelled_frames"] == 17
    assert rep["accuracy"]["top1"] == sum(r["topk"][0] == r["label"] for r in good) / 17


def test_csi_recording_timestamps_are_checked_when_opened(sub6, tmp_path):
    from beamc.errors import BeamcError
    from beamc.runtime.pipeline import Pipeline

    path = small_recording(sub6, tmp_path / "nan.npz", t=nan_at(10))
    with pytest.raises(BeamcError) as e:
        run_stream(RunOptions(bundle=sub6["bundle"], source=f"csi:{path}", report=tmp_path / "r.json"))
    assert str(e.value) == f"{path}: key 't': expected finite, non-decreasing timestamps, found nan at frame 10"
    assert not (tmp_path / "r.json").exists()

    def back(t):
        t[4] = -1.0

    path = small_recording(sub6, tmp_path / "back.npz", t=back)
    with pytest.raises(BeamcError) as e:
        read_recording(path)
    assert str(e.value) == (f"{path}: key 't': expected finite, non-decreasing timestamps, found -1 at frame 4 "
                            f"after 0.06 at frame 3")
    # the pacing of other recorded sources: a frame without a usable time is due now (was ValueError)
    assert Pipeline(RunOptions(bundle=sub6["bundle"], source="csi:x"))._sleep_until(float("nan")) is None


def test_csi_mat_frames_with_non_finite_values_and_bad_labels(sub6, tmp_path):
    import scipy.io

    rec = read_recording(sub6["rec"])
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(5):
        csi = rec["csi"][i].copy()
        fields = {"csi": csi, "label": int(rec["label"][i]), "t": i * 0.02}
        if i == 1:
            csi[0, 3] = np.nan
        if i == 2:
            fields["label"] = 999
        if i == 3:
            fields["t"] = np.nan
        if i == 4:
            fields["label"] = 12.5
        scipy.io.savemat(folder / f"frame_{i:06d}.mat", fields)
    rep = run_stream(RunOptions(bundle=sub6["bundle"], source=f"csi:{folder}", pace="afap", report=tmp_path / "r.json",
                                out=tmp_path / "p.jsonl", plots=False))
    f = rep["frames"]
    assert {k: v["frame_ids"] for k, v in f["bad_by_reason"].items()} == {"non-finite input": [1], "bad timestamp": [3]}
    assert f["bad_by_reason"]["bad timestamp"]["example"] == \
        f"{folder / 'frame_000003.mat'}: variable 't': expected a finite time in seconds, found nan"
    assert f["unscored_by_reason"]["bad label"]["frame_ids"] == [2, 4]
    assert [r["label"] for r in strict_jsonl(tmp_path / "p.jsonl") if r["id"] in (2, 4)] == [None, None]
    assert f["unscored_by_reason"]["bad label"]["example"].endswith("found 999; predicted, not scored")
    assert (f["received"], f["predicted"]) == (5, 3) and rep["accuracy"]["labelled_frames"] == 1


def test_tcp_nan_timestamp_and_list_label_do_not_break_the_stream(sub6, tmp_path):
    def send(s, rec) -> None:
        for i in range(8):
            t = i * 0.02
            label = np.array([1, 2, 3]) if i == 6 else np.int64(rec["label"][i])
            s.send("label", label, frame_id=i, t=float("nan") if i == 5 else t)
            s.send("power", rec["power"][i], frame_id=i, t=t + 0.001)
            s.send("csi", rec["csi"][i], frame_id=i, t=float("nan") if i == 3 else t + 0.002)

    rep, rec = stream_over_tcp(sub6, tmp_path, send)
    f = rep["frames"]
    bad = f["bad_by_reason"]
    assert bad[MALFORMED_NETWORK]["frame_ids"] == [3, 5]
    assert bad[MALFORMED_NETWORK]["example"].endswith("frame 3 (csi): timestamp nan: expected a finite number of seconds")
    # frame 3's label and power never get their csi: one incomplete frame, as for any lost csi message
    assert bad["missing modality"]["frame_ids"] == [3] and set(bad) == {MALFORMED_NETWORK, "missing modality"}
    assert f["unscored_by_reason"]["bad label"]["frame_ids"] == [6]
    assert "found int64 array of shape [3] [1, 2, 3]" in f["unscored_by_reason"]["bad label"]["example"]
    rows = [r for r in strict_jsonl(tmp_path / "p.jsonl") if "bad" not in r]
    assert [r["id"] for r in rows] == [0, 1, 2, 4, 5, 6, 7]  # every later frame predicted once
    assert [r["label"] for r in rows] == [*rec["label"][[0, 1, 2, 4]].tolist(), None, None, int(rec["label"][7])]
    assert f["received"] == f["predicted"] + f["bad"] + f["warmup"] + f["dropped"] == 10
    assert rep["status"] == "completed" and rep["source"]["alignment"]["missing"] == {"csi": 1}


def test_csi_source_refuses_a_bundle_of_another_task(sub6):
    from beamc.errors import BeamcError
    from beamc.runtime.sources import SourceContext, open_source

    ctx = SourceContext(modalities=("lidar",), manifest={"task": {"name": "lidar"}})
    with pytest.raises(BeamcError) as e:
        open_source(f"csi:{sub6['rec']}", ctx)
    assert str(e.value) == "source csi: gives sub-6 CSI snapshots (modality 'csi'), the bundle's task 'lidar' needs lidar"
    with pytest.raises(BeamcError, match="^source synth:sub6: gives sub-6 CSI snapshots"):
        open_source("synth:sub6", ctx)


def test_topk_beyond_the_codebook_is_refused(sub6, tmp_path):
    from beamc.errors import BeamcError

    with pytest.raises(BeamcError) as e:
        run_stream(RunOptions(bundle=sub6["bundle"], source=f"csi:{sub6['rec']}", topk=100, report=tmp_path / "r.json"))
    assert str(e.value) == "--topk: expected 1..64 (the bundle's model predicts 64 beams), found 100"


def cli_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    from beamc import cli

    monkeypatch.setattr(sys, "argv", ["beamc", *args])
    with pytest.raises(SystemExit) as e:
        cli.main()
    out, err = capsys.readouterr()
    return e.value.code, out, err


def test_cli_run_exits_2_when_no_frame_was_predicted(sub6, tmp_path, monkeypatch, capsys):
    def all_nan(csi):
        csi[:] = np.nan

    path = small_recording(sub6, tmp_path / "r.npz", n=4, csi=all_nan)
    report = tmp_path / "r.json"
    code, _, err = cli_main(monkeypatch, capsys, "run", str(sub6["bundle"]), "--source", f"csi:{path}",
                            "--as-fast-as-possible", "--no-live", "--no-plots", "--report", str(report))
    assert code == 2
    assert " ".join(err.split()) == (f"error: 4 frames received, none predicted (4 bad - non-finite input: 4; 0 filling "
                                     f"history, 0 dropped); report: {report}")
    assert json.loads(report.read_text())["frames"]["bad"] == 4  # the report is still written


def test_cli_run_says_why_the_power_loss_is_skipped(sub6, tmp_path, monkeypatch, capsys):
    import io

    from rich.console import Console

    from beamc import cli

    rec = read_recording(sub6["rec"])
    path = write_recording(tmp_path / "r.npz", rec["csi"][:6], rec["t"][:6], label=rec["label"][:6],
                           power=rec["power"][:6, :32])
    buf = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buf, width=300))
    monkeypatch.setattr(sys, "argv", ["beamc", "run", str(sub6["bundle"]), "--source", f"csi:{path}",
                                      "--as-fast-as-possible", "--no-live", "--no-plots", "--report",
                                      str(tmp_path / "r.json")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 0
    line = next(ln for ln in buf.getvalue().splitlines() if "power loss" in ln)
    assert "skipped: the stream has 32 beam powers, the model predicts 64 beams" in line
