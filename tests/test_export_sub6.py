"""beamc export on a tiny sub-6 run: ONNX parity with PyTorch, dynamic batch, int8 Q/DQ and
its calibration cache, fp16 per build path, manifest and hashes, device files, Triton text.

Every number is recomputed here from the files (ONNX Runtime and torch run again), so the
bundle's own parity.json is checked, not trusted.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from beamc.compress.modeling import load_model
from beamc.compress.pipeline import distill
from beamc.errors import BeamcError
from beamc.export import trt_build
from beamc.export.bundle import export_run, read_bundle
from beamc.export.profiles import load_profile
from beamc.export.quantize import QuantizedOnnx, calibration_key, quant_settings, stratified_indices
from beamc.export.verify import Golden
from beamc.recipe import load_recipe
from beamc.registry import TASKS
from conftest import write_tiny_sub6

REPO = Path(__file__).resolve().parents[1]


def quiet(_: str) -> None:
    pass


def tensorrt_installed() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export-run")
    run = distill(load_recipe(write_tiny_sub6(folder, name="tiny_export")), out=folder / "runs", progress=False, log=quiet)
    return run.path


@pytest.fixture(scope="module")
def data(run_dir):
    from beamc.compress.pipeline import load_run_recipe

    _, recipe = load_run_recipe(run_dir)
    return recipe, TASKS.get("sub6").prepare(recipe.task, recipe.data, progress=False)


@pytest.fixture(scope="module")
def student(run_dir):
    return load_model(run_dir / "student.pt")[0]


@pytest.fixture(scope="module")
def out_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bundles")


@pytest.fixture(scope="module")
def fp32_cpu(run_dir, out_root):
    return export_run(run_dir, "cpu", precision="fp32", out=out_root / "cpu-fp32", log=quiet)


@pytest.fixture(scope="module")
def int8_orin(run_dir, out_root):
    return export_run(run_dir, "jetson-orin", precision="int8", out=out_root / "orin-int8", fmt="triton", log=quiet)


def torch_logits(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(logits.argmax(-1) == labels) * 100)


# ------------------------------------------------------------------------------ fp32
def test_fp32_onnx_matches_pytorch_on_golden_and_any_batch(fp32_cpu, student, data):
    bundle, m = fp32_cpu.path, fp32_cpu.manifest
    assert sorted(m["files"]) == ["README.md", "golden/inputs.npy", "golden/labels.npy", "golden/outputs.npy",
                                  "model.onnx", "parity.json"]
    assert not list(bundle.rglob("*.data")) and not list(bundle.parent.rglob("*.onnx.data"))
    proto = onnx.load(str(bundle / "model.onnx"))
    assert not any(onnx.external_data_helper.uses_external_data(t) for t in proto.graph.initializer)
    assert next(o.version for o in proto.opset_import if o.domain == "") == m["onnx"]["opset"] == 20
    assert [i.name for i in proto.graph.input] == ["csi"] and [o.name for o in proto.graph.output] == ["logits"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"

    # the golden set is the test split at the recorded indices, and its outputs are PyTorch's
    recipe, d = data
    (x_test,), y_test = d.arrays("test")
    idx = np.asarray(m["golden"]["test_indices"])
    x = np.load(bundle / "golden" / "inputs.npy")
    assert len(idx) == min(256, len(y_test)) == m["golden"]["count"]
    np.testing.assert_array_equal(x, x_test[idx])
    np.testing.assert_array_equal(np.load(bundle / "golden" / "labels.npy"), y_test[idx])
    ref = torch_logits(student, x)
    np.testing.assert_allclose(np.load(bundle / "golden" / "outputs.npy"), ref, rtol=0, atol=1e-5)

    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"csi": x})[0]
    err = float(np.abs(out - ref).max())
    assert err <= 1e-4 and np.array_equal(out.argmax(1), ref.argmax(1))
    golden = fp32_cpu.parity["fp32"]["golden"]
    assert golden["top1_agreement"] == 1.0 and golden["max_abs_error"] <= 1e-4
    assert golden["accuracy"]["top1"] == pytest.approx(top1(out, y_test[idx]))
    for b in (1, 7):  # the batch axis is really dynamic (a batch-1 example would have fixed it)
        o = sess.run(None, {"csi": x[:b]})[0]
        assert o.shape == (b, 64)
        np.testing.assert_allclose(o, ref[:b], rtol=0, atol=1e-4)
    test = fp32_cpu.parity["fp32"]["test"]
    assert test["samples"] == len(y_test)
    assert test["onnxruntime"]["top1"] == pytest.approx(top1(sess.run(None, {"csi": x_test})[0], y_test))
    assert test["pytorch"]["top1"] == pytest.approx(top1(torch_logits(student, x_test), y_test))
    assert set(fp32_cpu.parity["task_metrics"]["fp32"]["headline"]) == {"Top-1 @15 dB", "Top-3 @15 dB", "SE @15 dB"}


def test_manifest_fields_and_file_hashes(fp32_cpu, run_dir):
    bundle, m = fp32_cpu.path, fp32_cpu.manifest
    assert json.loads((bundle / "manifest.json").read_text()) == json.loads(json.dumps(m))
    assert (m["format"], m["status"], m["target"], m["precision"], m["model_file"]) == \
           ("beamc-bundle/1", "ok", "cpu", "fp32", "model.onnx")
    assert m["inputs"] == [{"name": "csi", "shape": [256], "dtype": "float32", "onnx_shape": ["batch", 256]}]
    assert m["outputs"] == [{"name": "logits", "shape": [64], "dtype": "float32", "onnx_shape": ["batch", 64]}]
    assert m["labels"]["num_classes"] == 64 and m["labels"]["steps"] is None and m["labels"]["classes"] == "0..63"
    assert m["task"]["name"] == "sub6"
    assert m["task"]["preprocess"] == json.loads((run_dir / "preprocess.json").read_text())["state"]
    assert m["run"]["checkpoint_sha256"] == hashlib.sha256((run_dir / "student.pt").read_bytes()).hexdigest()
    assert m["run"]["student"]["params"] == 256 * 8 + 8 + 8 * 64 + 64
    assert m["versions"]["torch"] == torch.__version__ and m["versions"]["onnxruntime"] == ort.__version__
    assert m["versions"]["onnx"] == onnx.__version__
    assert m["profile"]["name"] == "cpu" and m["engine"]["built"] is False
    for rel, info in m["files"].items():
        blob = (bundle / rel).read_bytes()
        assert info == {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    assert read_bundle(bundle)["files"] == m["files"]


def test_read_bundle_rejects_a_changed_file(fp32_cpu, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(fp32_cpu.path, copy)
    labels = np.load(copy / "golden" / "labels.npy")
    np.save(copy / "golden" / "labels.npy", labels[::-1])
    with pytest.raises(BeamcError) as e:
        read_bundle(copy)
    assert str(e.value) == f"{copy}: files missing or changed since export: golden/labels.npy"


# ------------------------------------------------------------------------------ int8
def test_int8_has_qdq_nodes_and_is_verified(int8_orin, data):
    bundle, m = int8_orin.path, int8_orin.manifest
    proto = onnx.load(str(bundle / "model_int8.onnx"))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 0
    assert m["quantization"]["qdq_nodes"] == ops.count("QuantizeLinear") + ops.count("DequantizeLinear")
    # symmetric int8 activations and weights, float biases: what TensorRT's explicit quantization takes
    zps = [onnx.numpy_helper.to_array(t) for t in proto.graph.initializer if t.name.endswith("zero_point")]
    assert {z.dtype for z in zps} == {np.dtype(np.int8)} and not any(z.any() for z in zps)
    biases = [t for t in proto.graph.initializer if t.name.endswith("bias")]
    assert biases and {t.data_type for t in biases} == {onnx.TensorProto.FLOAT}
    assert m["models"] == {"fp32": "model.onnx", "int8": "model_int8.onnx"} and m["model_file"] == "model_int8.onnx"

    x = np.load(bundle / "golden" / "inputs.npy")
    int8 = ort.InferenceSession(str(bundle / "model_int8.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(np.load(bundle / "golden" / "outputs_int8.npy"), int8.run(None, {"csi": x})[0])
    recipe, d = data
    (x_test,), y_test = d.arrays("test")
    fp32 = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    a32, a8 = top1(fp32.run(None, {"csi": x_test})[0], y_test), top1(int8.run(None, {"csi": x_test})[0], y_test)
    test = int8_orin.parity["int8"]["test"]
    assert (test["fp32"]["top1"], test["int8"]["top1"]) == (pytest.approx(a32), pytest.approx(a8))
    assert test["top1_drop_points"] == pytest.approx(a32 - a8)
    assert test["gates"][0]["limit"] == 1.0 and test["gates"][0]["passed"] == (a32 - a8 <= 1.0)


def test_calibration_is_stratified_and_cache_keyed_by_model_and_data(int8_orin, data):
    m = int8_orin.manifest
    cal = m["quantization"]["calibration"]
    recipe, d = data
    (x_train,), y_train = d.arrays("train")
    idx = stratified_indices(y_train, 512)
    assert cal["samples"] == len(idx) == min(512, len(y_train))
    assert cal["classes_sampled"] == cal["classes_in_split"] == len(np.unique(y_train))
    settings = quant_settings(load_profile("jetson-orin").int8)
    key = calibration_key((int8_orin.path / "model.onnx").read_bytes(), (x_train[idx],), settings)
    assert cal["cache_key"] == key and cal["settings"] == settings and cal["cache_hit"] is False
    assert (int8_orin.path / "calibration.json").read_bytes() == Path(cal["cache_file"]).read_bytes()


def test_calibration_cache_hit_only_when_model_and_data_match(int8_orin, data, tmp_path):
    bundle = int8_orin.path
    recipe, d = data
    (x_train,), y_train = d.arrays("train")
    x = np.load(bundle / "golden" / "inputs.npy")
    golden = Golden((x,), np.load(bundle / "golden" / "labels.npy"), np.load(bundle / "golden" / "outputs.npy"))
    cfg = load_profile("jetson-orin").int8

    def quantize(source: Path, calib: np.ndarray, name: str):
        return QuantizedOnnx(source, tmp_path / name / "q.onnx", golden, (calib,), cfg, cache_dir=tmp_path / "cache")()

    calib = x_train[stratified_indices(y_train, 64)]
    first = quantize(bundle / "model.onnx", calib, "a")
    again = quantize(bundle / "model.onnx", calib, "b")
    other_data = quantize(bundle / "model.onnx", calib[1:], "c")
    retrained = tmp_path / "retrained.onnx"
    proto = onnx.load(str(bundle / "model.onnx"))
    proto.graph.initializer[0].raw_data = (onnx.numpy_helper.to_array(proto.graph.initializer[0]) * 1.01).astype(np.float32).tobytes()
    onnx.save(proto, str(retrained))
    other_model = quantize(retrained, calib, "d")
    hits = [q.calibration["cache_hit"] for q in (first, again, other_data, other_model)]
    keys = [q.calibration["cache_key"] for q in (first, again, other_data, other_model)]
    assert hits == [False, True, False, False]
    assert keys[0] == keys[1] and len({keys[0], keys[2], keys[3]}) == 3
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(f"{k}.json" for k in set(keys))
    assert (tmp_path / "a" / "q.onnx").read_bytes() == (tmp_path / "b" / "q.onnx").read_bytes()


# ---------------------------------------------------------------------- device files
def test_build_engine_script_is_self_contained_and_reads_the_manifest(int8_orin):
    bundle, m = int8_orin.path, int8_orin.manifest
    script = bundle / "build_engine.py"
    assert script.read_text() == Path(trt_build.__file__).read_text()
    compile(script.read_text(), str(script), "exec")
    imports = {line.split()[1].split(".")[0] for line in script.read_text().splitlines()
               if line.strip().startswith(("import ", "from ")) and not line.startswith("from __future__")}
    assert imports <= {"argparse", "json", "os", "sys", "time", "pathlib", "numpy", "tensorrt", "cuda", "pycuda"}
    shown = subprocess.run([sys.executable, str(script), "--show"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["settings"] == m["engine"]["settings"]
    s = info["settings"]
    assert (s["onnx"], s["build"], s["flags"], s["tf32"], s["dla_core"], s["workspace_mib"]) == \
           ("model_int8.onnx", "strongly_typed", [], True, -1, 2048)
    assert s["shapes"] == {"csi": {"min": [1, 256], "opt": [8, 256], "max": [32, 256]}}
    assert s["verify"]["reference"] == "golden/outputs_int8.npy" and s["verify"]["max_abs_error"] is None
    cmd = ("trtexec --onnx=model_int8.onnx --saveEngine=model.plan --minShapes=csi:1x256 --optShapes=csi:8x256 "
           "--maxShapes=csi:32x256 --memPoolSize=workspace:2048 --stronglyTyped")
    assert info["trtexec"] == m["engine"]["trtexec"] == cmd
    assert (bundle / "build.sh").read_text().splitlines()[4:] == [cmd, "python3 build_engine.py --verify-only",
                                                                   "trtexec --loadEngine=model.plan --shapes=csi:1x256"]
    assert cmd in (bundle / "README.md").read_text()
    if not tensorrt_installed():
        res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        assert res.returncode == 3
        assert res.stderr.strip() == f"error: {trt_build.TENSORRT_HINT}"
        assert m["engine"]["built"] is False and "will be built on the device" in m["engine"]["reason"]


def test_missing_tensorrt_says_what_to_install():
    if tensorrt_installed():
        pytest.skip("TensorRT is installed here")
    from beamc.export.tensorrt import require_tensorrt, tensorrt_status

    with pytest.raises(BeamcError) as e:
        require_tensorrt()
    assert str(e.value) == ("TensorRT is not installed. On a Jetson it comes with JetPack (sudo apt install "
                            "nvidia-jetpack, or python3-libnvinfer); elsewhere: pip install tensorrt --extra-index-url "
                            "https://pypi.nvidia.com (NVIDIA's package index)")
    assert tensorrt_status() == {"available": False, "tensorrt": None, "reason": str(e.value)}


def test_triton_repository_config_text(int8_orin):
    bundle, m = int8_orin.path, int8_orin.manifest
    model = bundle / "triton" / "tiny_export"
    assert (model / "config.pbtxt").read_text() == """\
name: "tiny_export"
platform: "onnxruntime_onnx"
max_batch_size: 32
input [
  {
    name: "csi"
    data_type: TYPE_FP32
    dims: [ 256 ]
  }
]
output [
  {
    name: "logits"
    data_type: TYPE_FP32
    dims: [ 64 ]
  }
]
dynamic_batching {
  preferred_batch_size: [ 8 ]
  max_queue_delay_microseconds: 100
}
instance_group [
  {
    count: 1
    kind: KIND_GPU
  }
]
"""
    assert (model / "1" / "model.onnx").read_bytes() == (bundle / "model_int8.onnx").read_bytes()
    assert m["triton"]["tensorrt_model"] == "tiny_export_trt"
    assert m["triton"]["tensorrt_config"].startswith('name: "tiny_export_trt"\nplatform: "tensorrt_plan"\nmax_batch_size: 32\n')
    assert not (bundle / "triton" / "tiny_export_trt").exists()  # written next to the engine, on the device
    assert "triton/tiny_export/config.pbtxt" in m["files"]


# ------------------------------------------------------------------------- fp16 paths
def test_fp16_strongly_typed_exports_fp16_compute_with_fp32_io(run_dir, out_root, student):
    res = export_run(run_dir, "jetson-orin", out=out_root / "orin-fp16", log=quiet)  # fp16 is the default here
    bundle, m = res.path, res.manifest
    assert m["precision"] == "fp16" and m["models"] == {"fp32": "model.onnx", "fp16": "model_fp16.onnx"}
    proto = onnx.load(str(bundle / "model_fp16.onnx"))
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert [i.type.tensor_type.elem_type for i in proto.graph.input] == [f32]
    assert [o.type.tensor_type.elem_type for o in proto.graph.output] == [f32]
    floats = [t.data_type for t in proto.graph.initializer if t.data_type in (f32, f16)]
    assert floats and set(floats) == {f16}
    x = np.load(bundle / "golden" / "inputs.npy")
    out = ort.InferenceSession(str(bundle / "model_fp16.onnx"), providers=["CPUExecutionProvider"]).run(None, {"csi": x})[0]
    ref = torch_logits(student, x)
    golden = res.parity["fp16"]["golden"]
    assert golden["max_abs_error"] == pytest.approx(float(np.abs(out - ref).max()))
    assert golden["top1_agreement"] == pytest.approx(float(np.mean(out.argmax(1) == ref.argmax(1))))
    assert 0 < golden["max_abs_error"] < 0.05 * np.abs(ref).max()
    s = m["engine"]["settings"]
    assert (s["onnx"], s["flags"], s["tf32"]) == ("model_fp16.onnx", [], True)
    assert "--stronglyTyped" in m["engine"]["trtexec"] and "--fp16" not in m["engine"]["trtexec"]


def test_fp16_on_tensorrt_8_5_is_a_builder_flag_on_opset_17(run_dir, out_root):
    res = export_run(run_dir, "xavier-nx", precision="fp16", out=out_root / "xavier-fp16", log=quiet)
    m = res.manifest
    proto = onnx.load(str(res.path / "model.onnx"))
    assert next(o.version for o in proto.opset_import if o.domain == "") == 17 == m["onnx"]["opset"]
    assert m["models"] == {"fp32": "model.onnx"} and m["model_file"] == "model.onnx"
    s = m["engine"]["settings"]
    assert (s["onnx"], s["build"], s["flags"]) == ("model.onnx", "builder_flags", ["FP16"])
    assert m["engine"]["trtexec"].endswith("--memPoolSize=workspace:512 --fp16")
    assert res.parity["fp16"]["checked"] is False
    assert res.parity["fp32"]["golden"]["top1_agreement"] == 1.0


def test_dla_profile_uses_builder_flags_with_gpu_fallback(fp32_cpu, int8_orin):
    manifest = dict(int8_orin.manifest, profile=load_profile("jetson-orin-dla").to_dict())
    s = trt_build.build_settings(manifest, "int8")
    assert (s["onnx"], s["flags"], s["dla_core"]) == ("model_int8.onnx", ["INT8", "FP16", "GPU_FALLBACK"], 0)
    assert trt_build.trtexec_command(s).endswith("--int8 --fp16 --useDLACore=0 --allowGPUFallback")
    with pytest.raises(ValueError) as e:
        trt_build.build_settings(manifest, "fp32")
    assert str(e.value) == "target 'jetson-orin-dla' supports fp16, int8, not fp32"
    with pytest.raises(ValueError) as e:
        trt_build.build_settings(fp32_cpu.manifest)
    assert str(e.value) == "target 'cpu' runs ONNX Runtime; there is no TensorRT engine to build"


# ------------------------------------------------------------------------------- CLI
def beamc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "beamc.cli", *args], capture_output=True, text=True, cwd=REPO)


def test_cli_export_errors_are_one_line(run_dir):
    res = beamc("export", str(run_dir), "--target", "jetson-orin", "--precision", "fp8")
    assert res.returncode == 2 and res.stderr.strip() == "error: --precision: expected one of fp32, fp16, int8, found 'fp8'"
    res = beamc("export", str(run_dir), "--target", "cpu", "--precision", "fp16")
    assert res.returncode == 2
    assert res.stderr.strip() == "error: target 'cpu' runs fp32, int8; --precision fp16 is not one of them"
    res = beamc("export", str(run_dir / "nope"), "--target", "cpu")
    assert res.returncode == 2 and res.stderr.strip() == f"error: run directory not found: {run_dir / 'nope'}"


def test_a_garbage_student_checkpoint_is_one_complete_line(run_dir, tmp_path):
    import shutil
    from fractions import Fraction

    from beamc.compress.modeling import read_checkpoint

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    ckpt = run / "student.pt"
    ckpt.write_bytes(b"\x80\x04garbage" * 40)
    res = beamc("export", str(run), "--target", "cpu", "--out", str(tmp_path / "b"))
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {ckpt}: not a beamc checkpoint (not a torch.save archive)"
    ckpt.write_bytes(b"")
    with pytest.raises(BeamcError, match=r"student.pt: not a beamc checkpoint \(empty file\)$"):
        read_checkpoint(ckpt)
    torch.save({"model": Fraction(1, 3)}, ckpt)  # an object of a class: refused by weights_only loading
    with pytest.raises(BeamcError) as e:
        read_checkpoint(ckpt)
    assert str(e.value) == (f"{ckpt}: not a beamc checkpoint (holds objects other than tensors and plain data: "
                            "Unsupported global: GLOBAL fractions.Fraction)")
    torch.save({"state_dict": {}}, ckpt)
    with pytest.raises(BeamcError) as e:
        read_checkpoint(ckpt)
    assert str(e.value) == f"{ckpt}: not a beamc checkpoint (expected format 'beamc-model/1', found None)"


def test_out_folder_that_is_not_a_bundle_is_never_replaced(run_dir, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BeamcError) as e:
        export_run(run_dir, "cpu", precision="fp32", out=tmp_path, log=quiet)
    assert str(e.value) == f"--out {tmp_path} exists and is not a beamc bundle; choose an empty or new folder"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_exporting_again_replaces_the_bundle(run_dir, fp32_cpu, tmp_path):
    import shutil

    out = tmp_path / "again"
    shutil.copytree(fp32_cpu.path, out)
    (out / "stale.txt").write_text("from an older export")
    res = export_run(run_dir, "cpu", precision="fp32", out=out, log=quiet)
    assert not (out / "stale.txt").exists() and read_bundle(out)["files"] == res.manifest["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]  # no staging folders left behind


def test_cli_export_prints_summary_and_next_steps(run_dir, tmp_path):
    out = tmp_path / "b"
    res = beamc("export", str(run_dir), "--target", "jetson-orin", "--precision", "fp32", "--out", str(out))
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert f"bundle: {out}" in text and "python3 build_engine.py" in text and "100.00 %" in text
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert "manifest.json" in on_disk and f"files: {', '.join(on_disk)} " in text  # every file, the manifest too
    assert json.loads((out / "manifest.json").read_text())["status"] == "ok"


# ------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_engine_is_built_and_verified(run_dir, tmp_path, precision):
    pytest.importorskip("tensorrt")
    res = export_run(run_dir, "h100", precision=precision, out=tmp_path / precision, log=quiet)
    engine = res.manifest["engine"]
    assert engine["built"] is True and (res.path / "model.plan").exists()
    assert engine["verification"]["passed"] is True
    assert json.loads((res.path / "engine.json").read_text())["verification"]["passed"] is True
