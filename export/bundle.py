"""`beamc export`: a run's student -> a verified bundle for one target device.

    bundles/<run-name>-<target>-<precision>/
      manifest.json        what the runtime needs without torch (schema below), file hashes
      parity.json          ONNX Runtime vs PyTorch on the golden set, test-split accuracy, gates
      model.onnx           fp32, dynamic batch axis 0 ("batch"), weights embedded, opset recorded
      model_fp16.onnx      --precision fp16 on strongly typed TensorRT targets: fp16 compute, fp32 I/O
      model_int8.onnx      --precision int8: explicit QuantizeLinear/DequantizeLinear nodes
      calibration.json     --precision int8: the tensor ranges used (ONNX Runtime calibration cache)
      golden/inputs.npy    real preprocessed test samples (inputs_<name>.npy per input when several)
      golden/outputs.npy   the PyTorch student's outputs on them
      golden/labels.npy    their labels (beam indices; [N, steps] for multi-step tasks)
      golden/outputs_int8.npy  (int8) ONNX Runtime int8 outputs: the reference of a TensorRT int8 engine
      build_engine.py      TensorRT targets: builds + verifies the engine on the device (needs only
                           tensorrt, numpy, cuda-python or pycuda and this folder)
      build.sh             the same build with trtexec, then verification and a latency run
      README.md            what to run on the device
      model.plan, engine.json  when TensorRT and a GPU were present at export time
      triton/              --format triton: Triton model repository (see beamc.export.triton)

manifest.json ("format": "beamc-bundle/1"): status ("ok" | "gate_failed"), created, target,
precision, run {path, name, recipe, student model/args/params, checkpoint sha256}, task {name,
config, preprocess (the run's preprocess_state), split, reference condition}, inputs/outputs
[{name, shape (without batch), dtype, onnx_shape}], labels {meaning, num_classes, steps},
models {precision: file}, model_file (the file to run at this precision), onnx {opset,
exporter, simplified, ...}, quantization (int8), golden {count, inputs, outputs, labels,
outputs_by_precision, test_indices}, profile (the full hardware profile), engine {built,
settings, trtexec, reason | report}, triton (with --format triton), versions, files {path:
{sha256, bytes}} for every file except manifest.json.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from beamc.errors import BeamcError
from beamc.runs import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json, resolve_run_dir
from beamc.export import trt_build
from beamc.export.profiles import HardwareProfile, load_profile, with_overrides
from beamc.export.verify import GateFailure, Golden, accuracy, ort_predictor, run_all

FORMAT = "beamc-bundle/1"
Log = Callable[[str], None]


@dataclass
class ExportResult:
    path: Path
    manifest: dict[str, Any]
    parity: dict[str, Any]


# ---------------------------------------------------------------------------- helpers
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_table(bundle: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file in the bundle except manifest.json (sorted paths)."""
    out = {}
    for p in sorted(bundle.rglob("*")):
        rel = p.relative_to(bundle).as_posix()
        if p.is_file() and rel != "manifest.json" and not p.name.startswith("."):
            out[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    return out


def read_bundle(path: str | Path, check_hashes: bool = True) -> dict[str, Any]:
    """The manifest of a bundle, after checking every listed file against its sha256 (the
    runtime's entry point: torch-free)."""
    bundle = Path(path)
    manifest = read_json(bundle / "manifest.json", "bundle manifest")
    if manifest.get("format") != FORMAT:
        raise BeamcError(f"{bundle}: not a beamc bundle (format {manifest.get('format')!r}, expected '{FORMAT}')")
    if check_hashes:
        bad = [rel for rel, info in manifest["files"].items()
               if not (bundle / rel).is_file() or sha256_file(bundle / rel) != info["sha256"]]
        if bad:
            raise BeamcError(f"{bundle}: files missing or changed since export: {', '.join(bad)}")
    return manifest


def golden_indices(n: int, count: int) -> np.ndarray:
    """Evenly spaced samples of a split (deterministic, covers the whole split)."""
    return np.unique(np.linspace(0, n - 1, num=min(count, n)).round().astype(np.int64)) if n else np.zeros(0, np.int64)


def golden_count(inputs: tuple[np.ndarray, ...], count: int, max_mib: int) -> int:
    """`count`, reduced so the golden inputs stay under max_mib (sequences of images are large)."""
    per_sample = sum(x[:1].nbytes for x in inputs) or 1
    return max(1, min(count, (max_mib << 20) // per_sample))


def golden_files(names: list[str]) -> dict[str, str]:
    if len(names) == 1:
        return {names[0]: "golden/inputs.npy"}
    return {n: f"golden/inputs_{n}.npy" for n in names}


def versions() -> dict[str, str | None]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import beamc

    out: dict[str, str | None] = {"beamc": beamc.__version__, "python": platform.python_version()}
    for pkg in ("torch", "numpy", "onnx", "onnxruntime", "onnxscript", "onnxslim", "tensorrt"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _npy(path: Path, array: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def _same_state(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys whose values differ (floats compared to 1e-6 relative)."""
    diff = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if isinstance(x, float) and isinstance(y, float):
            if not np.isclose(x, y, rtol=1e-6, atol=0):
                diff.append(k)
        elif x != y:
            diff.append(k)
    return diff


# ----------------------------------------------------------------------------- source
@dataclass
class Source:
    """Everything export needs from a run: recipe, task data, student and its specs."""

    path: Path
    recipe: Any
    task: Any
    data: Any
    model: Any
    checkpoint: dict[str, Any]
    inputs: list[Any]
    outputs: list[Any]
    preprocess: dict[str, Any]


def load_source(run_dir: str | Path, log: Log) -> Source:
    from beamc.compress.modeling import load_model
    from beamc.compress.pipeline import load_run_recipe
    from beamc.registry import TASKS

    path, recipe = load_run_recipe(run_dir)
    if recipe.student is None or not (path / "student.pt").exists():
        raise BeamcError(f"{path}: no student.pt; export needs a run that finished its student stage")
    task = TASKS.get(recipe.task.name)
    log(f"rebuilding the {recipe.task.name} data of {path.name} ...")
    data = task.prepare(recipe.task, recipe.data, progress=False)
    recorded = path / "preprocess.json"
    state = read_json(recorded, "preprocess.json")["state"] if recorded.exists() else data.preprocess_state
    changed = _same_state(state, data.preprocess_state)
    if changed:
        raise BeamcError(f"{path}: the data rebuilt from the run's recipe differs from the data it was trained on "
                         f"(preprocess.json key(s) {', '.join(changed)}); export would verify on other data")
    model, ckpt = load_model(path / "student.pt", expect_task=recipe.task.name)
    return Source(path, recipe, task, data, model, ckpt, task.input_spec(recipe.task, recipe.data, "student"),
                  task.output_spec(recipe.task, recipe.data, "student"), state)


def torch_outputs(model: Any, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    from beamc.compress.modeling import torch_predictor

    return run_all(torch_predictor(model, "cpu"), inputs)


# ------------------------------------------------------------------------------ steps
def _step(step: Callable[[], Any], record: Callable[[dict[str, Any]], None]) -> Any:
    """Run an exporter step; on a gate failure record its measurements, then re-raise."""
    try:
        return step()
    except GateFailure as e:
        record(e.parity)
        raise


def _export_steps(src: Source, profile: HardwareProfile, precision: str, bundle: Path, golden: Golden,
                  test: tuple[tuple[np.ndarray, ...], np.ndarray], parity: dict[str, Any], manifest: dict[str, Any],
                  log: Log) -> None:
    """OnnxFromTorch -> (QuantizedOnnx | fp16 ONNX) in order; each verifies before the next.
    Results go into `parity` and `manifest` as they arrive, so a gate failure keeps them."""
    from beamc.export.onnx import OnnxFromTorch
    from beamc.export.quantize import QuantizedOnnx, accuracy_drop, class_coverage, stratified_indices

    gates = profile.gates
    metadata = {"task": src.recipe.task.name, "run": src.path.name, "target": profile.name}
    log(f"exporting {src.checkpoint['model']} to ONNX (opset {profile.onnx_opset}) ...")
    manifest["models"]["fp32"] = "model.onnx"
    onnx_fp32 = _step(OnnxFromTorch(src.model, src.inputs, src.outputs, bundle / "model.onnx", golden,
                                    opset=profile.onnx_opset, max_abs_error=gates.max_abs_error,
                                    min_top1_agreement=gates.min_top1_agreement, metadata={**metadata, "precision": "fp32"}),
                      lambda p: parity.update(fp32={"golden": p}))
    manifest["onnx"] = onnx_fp32.describe()
    fp32 = ort_predictor(bundle / "model.onnx")
    parity["fp32"] = {"golden": onnx_fp32.parity,
                      "test": {"samples": int(len(test[1])), "pytorch": accuracy(torch_outputs(src.model, test[0]), test[1], golden.topk),
                               "onnxruntime": accuracy(run_all(fp32, test[0]), test[1], golden.topk)}}

    if precision == "int8":
        train_inputs, train_labels = src.data.arrays("train")
        idx = stratified_indices(train_labels, profile.int8.calibration_samples)
        log(f"quantizing to int8 (calibration: {len(idx)} stratified training samples) ...")
        manifest["models"]["int8"] = "model_int8.onnx"

        def record_int8(p: dict[str, Any]) -> None:
            parity["int8"] = {"golden": p["golden"], "test": p["test"]}
            manifest["quantization"] = {"qdq_nodes": p["qdq_nodes"], "calibration": p["calibration"]}

        art = _step(QuantizedOnnx(bundle / "model.onnx", bundle / "model_int8.onnx", golden,
                                  tuple(x[idx] for x in train_inputs), profile.int8, test=test,
                                  max_top1_drop=gates.max_top1_drop, calibration_info=class_coverage(train_labels, idx)),
                    record_int8)
        record_int8({"golden": art.parity, "test": art.test, "qdq_nodes": art.qdq_nodes, "calibration": art.calibration})
        _npy(bundle / "golden" / "outputs_int8.npy", run_all(ort_predictor(bundle / "model_int8.onnx"), golden.inputs))
        manifest["golden"]["outputs_by_precision"]["int8"] = "golden/outputs_int8.npy"
    elif precision == "fp16" and profile.tensorrt is not None and profile.tensorrt.build == "strongly_typed":
        log("exporting the fp16 ONNX model (fp16 compute, float32 I/O) ...")
        manifest["models"]["fp16"] = "model_fp16.onnx"
        half = OnnxFromTorch(src.model, src.inputs, src.outputs, bundle / "model_fp16.onnx", golden,
                             opset=profile.onnx_opset, half=True, metadata={**metadata, "precision": "fp16"})()
        parity["fp16"] = {"golden": half.parity}
        if half.parity.get("checked", True):
            res = accuracy_drop(ort_predictor(bundle / "model_fp16.onnx"), fp32, test, "fp16", gates.max_top1_drop, golden.topk)
            parity["fp16"]["test"] = res
            failed = [g for g in res["gates"] if not g["passed"]]
            if failed:
                raise GateFailure("fp16", failed, parity["fp16"])
    elif precision == "fp16":
        parity["fp16"] = {"checked": False, "reason": "on this build path fp16 is a TensorRT builder flag applied to "
                                                      "model.onnx; build_engine.py verifies the fp16 engine on the device"}


def _task_metrics(src: Source, bundle: Path, models: dict[str, str]) -> dict[str, Any]:
    """The task's own metrics (its paper tables) for each ONNX model, via ONNX Runtime."""
    out = {}
    for precision, file in models.items():
        try:
            metrics = src.data.evaluate(ort_predictor(bundle / file), "test", "student")
        except Exception as e:  # noqa: BLE001 - e.g. fp16 kernels missing on this CPU; reported, not fatal
            out[precision] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
            continue
        out[precision] = {"headline": src.data.headline(metrics), "metrics": metrics}
    return out


def _gates_summary(parity: dict[str, Any]) -> list[dict[str, Any]]:
    lines = []
    for key in ("fp32", "fp16", "int8"):
        section = parity.get(key, {})
        for part in ("golden", "test"):
            lines += section.get(part, {}).get("gates", []) if isinstance(section.get(part), dict) else []
    return lines


# ------------------------------------------------------------------------- device files
def device_files(bundle: Path, manifest: dict[str, Any]) -> None:
    """build_engine.py (a verbatim copy of beamc.export.trt_build), build.sh and README.md."""
    profile = manifest["profile"]
    precision = manifest["precision"]
    lines = [f"# {manifest['run']['name']} for {profile['name']} ({precision})", "",
             f"Target: {profile['device']}.", f"Task: {manifest['task']['name']}; inputs: "
             + ", ".join(f"`{i['name']}` {i['onnx_shape']} {i['dtype']}" for i in manifest["inputs"])
             + "; outputs: " + ", ".join(f"`{o['name']}` {o['onnx_shape']}" for o in manifest["outputs"]) + ".", ""]
    if profile["runtime"] == "tensorrt":
        settings = manifest["engine"]["settings"]
        atomic_write_text(bundle / "build_engine.py", Path(trt_build.__file__).read_text())
        os.chmod(bundle / "build_engine.py", 0o755)
        sh = ("#!/bin/sh\n# Build the engine with trtexec, verify it against golden/ and time batch "
              f"{settings['latency_batch']}.\nset -e\ncd \"$(dirname \"$0\")\"\n"
              f"{trt_build.trtexec_command(settings)}\npython3 build_engine.py --verify-only\n"
              f"{trt_build.latency_command(settings)}\n")
        atomic_write_text(bundle / "build.sh", sh)
        os.chmod(bundle / "build.sh", 0o755)
        trt = profile["tensorrt"]
        lines += ["## On the device", "",
                  f"TensorRT engines only load on the GPU and TensorRT version that built them: build this one on the "
                  f"{profile['name']} itself (TensorRT {trt['version_min']}-{trt['version_max']}"
                  + (f", JetPack {profile['jetpack']}" if profile.get("jetpack") else "") + ").", "",
                  "1. Install the bindings: TensorRT comes with JetPack on a Jetson (elsewhere: `pip install tensorrt "
                  "--extra-index-url https://pypi.nvidia.com`), then `pip install numpy cuda-python`.",
                  f"2. `python3 build_engine.py` builds `model.plan` from `{settings['onnx']}` ({settings['build']}"
                  + (f", flags {' '.join(settings['flags'])}" if settings["flags"] else "")
                  + ") and verifies it on `golden/` with the manifest's tolerances; it writes `engine.json`.",
                  "   Or `sh build.sh`: the same build with trtexec, then the verification:", "",
                  f"       {trt_build.trtexec_command(settings)}", ""]
        if profile.get("power_mode"):
            lines += [f"3. Latency figures assume power mode {profile['power_mode']} (`sudo nvpmodel -q` shows the mode).", ""]
    else:
        lines += ["## On the device", "", f"Run `{manifest['model_file']}` with ONNX Runtime (CPUExecutionProvider).", ""]
    lines += ["`parity.json` has the numbers measured at export; `manifest.json` lists every file with its sha256.", ""]
    atomic_write_text(bundle / "README.md", "\n".join(lines))


def triton_files(bundle: Path, manifest: dict[str, Any], plan_exists: bool) -> dict[str, Any]:
    from beamc.compress.modeling import link_or_copy
    from beamc.export.triton import configs, model_name

    plan = configs(manifest["inputs"], manifest["outputs"], manifest["profile"], model_name(manifest["run"]["recipe"]))
    root = bundle / plan["repository"]
    atomic_write_text(root / plan["onnx_model"] / "config.pbtxt", plan["onnx_config"])
    link_or_copy(bundle / manifest["model_file"], root / plan["onnx_model"] / "1" / "model.onnx")
    if plan_exists and "tensorrt_model" in plan:
        trt_build.place_in_triton(bundle, {"triton": plan}, bundle / "model.plan")
    return plan


# ------------------------------------------------------------------------------- main
def default_bundle_dir(run_path: Path, target: str, precision: str) -> Path:
    return Path("bundles") / f"{run_path.name}-{target}-{precision}"


def _check_out(out: Path) -> None:
    """An existing folder is replaced only when it is a bundle (or empty)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "manifest.json").exists())):
        raise BeamcError(f"--out {out} exists and is not a beamc bundle; choose an empty or new folder")


def _prepare_dir(out: Path) -> Path:
    """A fresh staging folder next to `out` (published by _publish when complete)."""
    staging = out.with_name(f".{out.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "golden").mkdir(parents=True)
    return staging


def _publish(staging: Path, out: Path) -> None:
    """Swap the finished staging folder into place (an old bundle is removed only now)."""
    old = out.with_name(f".{out.name}.{os.getpid()}.old")
    if out.exists():
        os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def export_run(run_dir: str | Path = "runs/latest", target: str = "jetson-orin", *, precision: str | None = None,
               out: str | Path | None = None, fmt: Literal["bundle", "triton"] = "bundle",
               calibration_samples: int | None = None, max_top1_drop: float | None = None,
               max_abs_error: float | None = None, engine: Literal["auto", "skip"] = "auto",
               log: Log = print) -> ExportResult:
    """Export a run's student for `target`; raises BeamcError (bundle kept) when a gate fails."""
    profile = with_overrides(load_profile(target), calibration_samples=calibration_samples,
                             max_top1_drop=max_top1_drop, max_abs_error=max_abs_error)
    precision = precision or profile.default_precision
    if precision not in profile.precisions:
        raise BeamcError(f"target '{profile.name}' runs {', '.join(profile.precisions)}; --precision {precision} is not one of them")
    run_path = resolve_run_dir(run_dir)
    out_dir = Path(out) if out is not None else default_bundle_dir(run_path, profile.name, precision)
    _check_out(out_dir)
    src = load_source(run_path, log)
    bundle = _prepare_dir(out_dir)
    try:
        return _export_into(bundle, out_dir, src, profile, precision, fmt, engine, log)
    finally:
        shutil.rmtree(bundle, ignore_errors=True)  # only left behind when something failed before publishing


def _draft_manifest(src: Source, profile: HardwareProfile, precision: str, idx: np.ndarray,
                    files: dict[str, str]) -> dict[str, Any]:
    out_spec = src.outputs[0]
    return {
        "format": FORMAT, "status": "ok", "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "target": profile.name, "precision": precision,
        "run": {"path": str(src.path), "name": src.path.name, "recipe": src.recipe.name,
                "student": {"model": src.checkpoint["model"], "args": src.checkpoint["args"],
                            "params": int(sum(p.numel() for p in src.model.parameters()))},
                "checkpoint_sha256": sha256_file(src.path / "student.pt")},
        "task": {"name": src.recipe.task.name, "config": src.recipe.to_dict()["task"], "preprocess": src.preprocess,
                 "golden_split": "test", "condition": "the task's reference condition (TaskData.arrays)"},
        "inputs": [{**s.to_dict(), "onnx_shape": ["batch", *s.shape]} for s in src.inputs],
        "outputs": [{**s.to_dict(), "onnx_shape": ["batch", *s.shape]} for s in src.outputs],
        "labels": {"meaning": "beam index in the task's codebook (arg-max of the logits' last axis)",
                   "num_classes": int(out_spec.shape[-1]), "classes": f"0..{int(out_spec.shape[-1]) - 1}",
                   "steps": int(out_spec.shape[0]) if len(out_spec.shape) == 2 else None},
        "models": {}, "model_file": None,
        "golden": {"count": int(len(idx)), "inputs": files, "outputs": "golden/outputs.npy", "labels": "golden/labels.npy",
                   "outputs_by_precision": {}, "test_indices": idx.tolist()},
        "profile": profile.to_dict(), "versions": versions(),
    }


def _export_into(bundle: Path, out_dir: Path, src: Source, profile: HardwareProfile, precision: str, fmt: str,
                 engine: str, log: Log) -> ExportResult:
    test_inputs, test_labels = src.data.arrays("test")
    idx = golden_indices(len(test_labels), golden_count(test_inputs, profile.golden_samples, profile.golden_max_mib))
    topk = tuple(getattr(src.recipe.task, "topk", (1, 3, 5)))
    g_inputs = tuple(x[idx] for x in test_inputs)
    golden = Golden(g_inputs, test_labels[idx], torch_outputs(src.model, g_inputs), topk)
    names = [s.name for s in src.inputs]
    files = golden_files(names)
    for n, x in zip(names, golden.inputs):
        _npy(bundle / files[n], x)
    _npy(bundle / "golden" / "outputs.npy", golden.outputs)
    _npy(bundle / "golden" / "labels.npy", golden.labels)
    manifest = _draft_manifest(src, profile, precision, idx, files)
    parity: dict[str, Any] = {"target": profile.name, "precision": precision, "golden_samples": int(len(idx)),
                              "definitions": "max_rel_error = max_abs_error / max|reference|; accuracies in percent; "
                                             "top1_drop_points = fp32 minus reduced precision Top-1 on the test split"}
    failure: GateFailure | None = None
    try:
        _export_steps(src, profile, precision, bundle, golden, (test_inputs, test_labels), parity, manifest, log)
    except GateFailure as e:
        failure = e
    manifest["model_file"] = manifest["models"].get(precision, manifest["models"].get("fp32"))
    if failure is None:
        parity["task_metrics"] = _task_metrics(src, bundle, manifest["models"])
    manifest["engine"] = {"built": False}
    if profile.runtime == "tensorrt":
        try:
            settings = trt_build.build_settings(manifest, precision)
        except ValueError:  # a gate failed before the model this precision builds from was written
            settings = None
        manifest["engine"].update(settings=settings, trtexec=settings and trt_build.trtexec_command(settings))
    else:
        manifest["engine"]["reason"] = f"target '{profile.name}' runs ONNX Runtime: no engine to build"
    device_files(bundle, manifest)
    if failure is None and manifest["engine"].get("settings"):
        failure = _engine(bundle, manifest, engine, log)
    if fmt == "triton" and manifest["model_file"]:
        manifest["triton"] = triton_files(bundle, manifest, (bundle / "model.plan").exists())
    parity["gates"] = _gates_summary(parity) + manifest["engine"].get("verification", {}).get("gates", [])
    parity["passed"] = failure is None
    if failure is not None:
        manifest["status"] = "gate_failed"
        manifest["failure"] = str(failure)
    atomic_write_json(bundle / "parity.json", parity)
    manifest["files"] = file_table(bundle)
    atomic_write_json(bundle / "manifest.json", manifest)
    _publish(bundle, out_dir)
    if failure is not None:
        raise BeamcError(f"{failure}; artifacts kept in {out_dir} for inspection") from None
    return ExportResult(out_dir, manifest, parity)


def _engine(bundle: Path, manifest: dict[str, Any], engine: str, log: Log) -> GateFailure | None:
    """Step 3 when TensorRT and a GPU are here (fills manifest["engine"]); otherwise the
    manifest says that the device builds it. Returns the engine's gate failure, if any."""
    from beamc.export.tensorrt import TrtEngineFromOnnx, tensorrt_status

    info = manifest["engine"]
    if engine == "skip":
        info["reason"] = "skipped (--no-engine): build it on the device with build_engine.py"
        return None
    status = tensorrt_status()
    if not status["available"]:
        info["reason"] = f"{status['reason']}. The engine will be built on the device: python3 build_engine.py"
        log("TensorRT engine: not built here (TensorRT/GPU not available); the device builds it with build_engine.py")
        return None
    try:
        art = TrtEngineFromOnnx(bundle, manifest, log=log)()
    except GateFailure as e:
        info.update(built=True, file="model.plan", verification=e.parity)
        return e
    except BeamcError as e:  # e.g. a TensorRT here outside the target's range: the ONNX bundle still ships
        info["reason"] = f"{e}. The engine will be built on the device: python3 build_engine.py"
        log(f"TensorRT engine: not built here ({e})")
        return None
    info.update(built=True, file=art.path.name, tensorrt=art.report["tensorrt"], device=art.report.get("device"),
                verification=art.report.get("verification"), latency_ms=art.report.get("latency_ms"))
    return None


__all__ = ["export_run", "ExportResult", "read_bundle", "file_table", "golden_indices", "golden_count", "golden_files",
           "default_bundle_dir", "FORMAT", "device_files", "load_source", "Source"]
