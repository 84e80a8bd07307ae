#!/usr/bin/env python3
"""Build and verify a TensorRT engine from a beamc export bundle, on the target device.

This file is copied verbatim into every bundle as `build_engine.py` and is also what
`beamc export` runs when TensorRT and a GPU are present, so the engine is built the same way
everywhere. It needs only the bundle, numpy, TensorRT and a CUDA binding for device buffers
(cuda-python or pycuda), never beamc or torch.

    python3 build_engine.py                 build model.plan from the manifest's ONNX, then verify it
    python3 build_engine.py --verify-only   verify an existing model.plan (e.g. built by build.sh/trtexec)
    python3 build_engine.py --show          print the build settings and the trtexec command (no TensorRT needed)

Build paths (manifest.profile.tensorrt.build):
* strongly_typed (TensorRT >= 10): the network takes its precision from the ONNX tensor types
  and Q/DQ nodes; no precision flags. fp32 -> model.onnx, fp16 -> model_fp16.onnx (fp16
  weights and compute, float32 I/O), int8 -> model_int8.onnx (explicit Q/DQ).
* builder_flags (TensorRT 8.x, and DLA on 10.x): fp32/fp16 -> model.onnx (+ FP16 flag),
  int8 -> model_int8.onnx + INT8 flag (explicit quantization from its Q/DQ nodes).
fp32 builds turn TF32 off so the engine computes what PyTorch's fp32 computes.

Exit status: 0 built/verified, 1 verification failed, 2 bad arguments or bundle, 3 missing
TensorRT/CUDA bindings, 4 TensorRT could not parse or build.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

TENSORRT_HINT = ("TensorRT is not installed. On a Jetson it comes with JetPack (sudo apt install nvidia-jetpack, "
                 "or python3-libnvinfer); elsewhere: pip install tensorrt --extra-index-url https://pypi.nvidia.com "
                 "(NVIDIA's package index)")
CUDA_HINT = ("no CUDA Python binding for device buffers: pip install cuda-python (matching your CUDA major version), "
             "or pycuda where the CUDA toolkit is installed")


class MissingDependency(Exception):
    """TensorRT or a CUDA binding is not importable here."""


class BuildError(Exception):
    """TensorRT could not parse, build or load the engine."""


# --------------------------------------------------------------------------- settings
def load_manifest(bundle: str | Path) -> dict:
    path = Path(bundle) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"no manifest.json in {bundle}: not a beamc bundle")
    return json.loads(path.read_text())


def build_settings(manifest: dict, precision: str | None = None) -> dict:
    """Everything the build and its verification need, derived from the manifest only."""
    profile = manifest["profile"]
    trt_cfg = profile.get("tensorrt")
    if trt_cfg is None:
        raise ValueError(f"target '{profile['name']}' runs ONNX Runtime; there is no TensorRT engine to build")
    precision = precision or manifest["precision"]
    if precision not in profile["precisions"]:
        raise ValueError(f"target '{profile['name']}' supports {', '.join(profile['precisions'])}, not {precision}")
    path = trt_cfg["build"]
    dla = trt_cfg.get("dla_core", -1)
    models = manifest["models"]
    needed = precision if path == "strongly_typed" else ("int8" if precision == "int8" else "fp32")
    if needed not in models:
        raise ValueError(f"this bundle has no {needed} model (it has: {', '.join(models)}); "
                         f"run beamc export again with --precision {precision}")
    if path == "strongly_typed":
        onnx, flags = models[precision], []
    else:
        onnx = models["int8"] if precision == "int8" else models["fp32"]
        flags = {"fp32": [], "fp16": ["FP16"], "int8": ["INT8"]}[precision]
        if dla >= 0 and precision == "int8":
            flags.append("FP16")  # DLA runs fp16 or int8 only: layers left unquantized need fp16
    if dla >= 0 and trt_cfg.get("gpu_fallback", True):
        flags.append("GPU_FALLBACK")
    batch = profile["batch"]
    shapes = {}
    for spec in manifest["inputs"]:
        dims = list(spec["shape"])
        shapes[spec["name"]] = {k: [batch[k], *dims] for k in ("min", "opt", "max")}
    golden = manifest["golden"]
    gates = profile["gates"]
    reference = golden["outputs_by_precision"].get(precision, golden["outputs"])
    return {
        "precision": precision, "build": path, "onnx": onnx, "plan": "model.plan", "flags": flags,
        "tf32": precision != "fp32", "dla_core": dla, "workspace_mib": trt_cfg["workspace_mib"],
        "shapes": shapes, "latency_batch": batch["default"],
        "tensorrt": {"min": trt_cfg["version_min"], "max": trt_cfg["version_max"]},
        "compute_capability": profile.get("compute_capability"), "target": profile["name"],
        "verify": {"reference": reference, "inputs": golden["inputs"], "labels": golden["labels"],
                   "max_abs_error": gates["engine_max_abs_error"] if precision == "fp32" else None,
                   "min_top1_agreement": gates["engine_min_top1_agreement"]},
    }


def _dims(shape: list[int]) -> str:
    return "x".join(str(d) for d in shape)


def trtexec_command(settings: dict) -> str:
    """The trtexec line that builds the same engine as build_engine()."""
    shapes = settings["shapes"]
    parts = ["trtexec", f"--onnx={settings['onnx']}", f"--saveEngine={settings['plan']}"]
    for key, flag in (("min", "--minShapes"), ("opt", "--optShapes"), ("max", "--maxShapes")):
        parts.append(f"{flag}=" + ",".join(f"{n}:{_dims(s[key])}" for n, s in shapes.items()))
    parts.append(f"--memPoolSize=workspace:{settings['workspace_mib']}")  # MiB
    if settings["build"] == "strongly_typed":
        parts.append("--stronglyTyped")
    parts += [f"--{f.lower()}" for f in settings["flags"] if f in ("FP16", "INT8")]
    if not settings["tf32"]:
        parts.append("--noTF32")
    if settings["dla_core"] >= 0:
        parts.append(f"--useDLACore={settings['dla_core']}")
        if "GPU_FALLBACK" in settings["flags"]:
            parts.append("--allowGPUFallback")
    return " ".join(parts)


def latency_command(settings: dict) -> str:
    b = settings["latency_batch"]
    shapes = ",".join(f"{n}:{_dims([b, *s['min'][1:]])}" for n, s in settings["shapes"].items())
    return f"trtexec --loadEngine={settings['plan']} --shapes={shapes}"


def version_in_range(version: str, lo: str, hi: str) -> bool:
    """'10.3.0.30' within ['10.3', '10.7']; bounds compare on the parts they give ('10' = any 10.x)."""
    def parts(text: str) -> tuple[int, ...]:
        out = []
        for p in text.split("."):
            digits = "".join(ch for ch in p if ch.isdigit())
            if not digits:
                break
            out.append(int(digits))
        return tuple(out)

    v, a, b = parts(version), parts(lo), parts(hi)
    return v[:len(a)] >= a and v[:len(b)] <= b


# ------------------------------------------------------------------------- comparison
def compare(candidate: np.ndarray, reference: np.ndarray) -> dict:
    """max/mean abs error, max error relative to the reference's largest magnitude, top-1
    agreement (beamc's parity.json uses this same definition)."""
    if candidate.shape != reference.shape:
        raise ValueError(f"output shape {candidate.shape} differs from the reference shape {reference.shape}")
    diff = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    scale = float(np.abs(reference).max()) if reference.size else 0.0
    max_abs = float(diff.max()) if diff.size else 0.0
    return {"max_abs_error": max_abs, "mean_abs_error": float(diff.mean()) if diff.size else 0.0,
            "max_rel_error": max_abs / scale if scale > 0 else max_abs,
            "top1_agreement": float(np.mean(candidate.argmax(-1) == reference.argmax(-1))) if diff.size else 1.0}


# ----------------------------------------------------------------------------- TensorRT
def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise MissingDependency(TENSORRT_HINT) from None
    return trt


def build_engine(onnx_path: str | Path, settings: dict, log=print) -> bytes:
    """Parse the ONNX file and build a serialized engine with the settings' path and flags."""
    trt = import_tensorrt()
    major = int(trt.__version__.split(".")[0])
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if settings["build"] == "strongly_typed":
        if not hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
            raise BuildError(f"TensorRT {trt.__version__} has no strongly typed networks; this bundle needs "
                             f"TensorRT {settings['tensorrt']['min']} or newer")
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    elif major < 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)  # required for ONNX before 10
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes(), str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BuildError(f"TensorRT {trt.__version__} could not parse {Path(onnx_path).name}: {errors}")
    names = {network.get_input(i).name for i in range(network.num_inputs)}
    if names != set(settings["shapes"]):
        raise BuildError(f"network inputs {sorted(names)} differ from the manifest's {sorted(settings['shapes'])}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings["workspace_mib"] << 20)
    for flag in settings["flags"]:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if not settings["tf32"] and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # TF32 would change fp32 results at the 1e-3 level
    if settings["dla_core"] >= 0:
        if builder.num_DLA_cores <= settings["dla_core"]:
            raise BuildError(f"this device has {builder.num_DLA_cores} DLA core(s); the profile asks for core "
                             f"{settings['dla_core']}")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = settings["dla_core"]
    profile = builder.create_optimization_profile()
    for name, s in settings["shapes"].items():
        profile.set_shape(name, s["min"], s["opt"], s["max"])
    config.add_optimization_profile(profile)
    log(f"building {settings['precision']} engine ({settings['build']}, flags: {', '.join(settings['flags']) or 'none'}"
        f"{', DLA core %d' % settings['dla_core'] if settings['dla_core'] >= 0 else ''}) with TensorRT {trt.__version__} ...")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BuildError("TensorRT could not build the engine (its log above says why)")
    return bytes(plan)


class _CudaPython:
    """Device buffers through cuda-python (module layout of 12.x and of >= 12.6)."""

    def __init__(self):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        self.rt = cudart
        self.stream = self._ok(cudart.cudaStreamCreate())
        self.handle = int(self.stream)

    def _ok(self, result):
        err, rest = result[0], result[1:]
        if err != self.rt.cudaError_t.cudaSuccess:
            raise BuildError(f"CUDA error: {err}")
        return rest[0] if len(rest) == 1 else None

    def alloc(self, nbytes: int) -> int:
        return int(self._ok(self.rt.cudaMalloc(max(nbytes, 1))))

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        self._ok(self.rt.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        self._ok(self.rt.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))

    def sync(self) -> None:
        self._ok(self.rt.cudaStreamSynchronize(self.stream))

    def free(self, ptr: int) -> None:
        self._ok(self.rt.cudaFree(ptr))

    def device(self) -> dict:
        props = self._ok(self.rt.cudaGetDeviceProperties(0))
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        return {"name": name.rstrip("\x00"), "compute_capability": f"{props.major}.{props.minor}"}


class _PyCuda:
    """Device buffers through pycuda (builds only where the CUDA toolkit is installed)."""

    def __init__(self):
        import pycuda.autoinit  # noqa: F401 - creates the context
        import pycuda.driver as cuda

        self.cuda = cuda
        self.stream = cuda.Stream()
        self.handle = self.stream.handle
        self._buffers = {}

    def alloc(self, nbytes: int) -> int:
        buf = self.cuda.mem_alloc(max(nbytes, 1))
        self._buffers[int(buf)] = buf  # keep the allocation alive
        return int(buf)

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        self.cuda.memcpy_htod_async(ptr, host, self.stream)

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        self.cuda.memcpy_dtoh_async(host, ptr, self.stream)

    def sync(self) -> None:
        self.stream.synchronize()

    def free(self, ptr: int) -> None:
        self._buffers.pop(ptr).free()

    def device(self) -> dict:
        dev = self.cuda.Context.get_device()
        major, minor = dev.compute_capability()
        return {"name": dev.name(), "compute_capability": f"{major}.{minor}"}


def cuda_binding():
    errors = []
    for cls in (_CudaPython, _PyCuda):
        try:
            return cls()
        except ImportError as e:
            errors.append(str(e))
    raise MissingDependency(CUDA_HINT)


class EngineRunner:
    """A deserialized engine with device buffers sized for its largest profile shape."""

    def __init__(self, plan: bytes):
        trt = import_tensorrt()
        self.trt = trt
        self.cuda = cuda_binding()
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise BuildError("TensorRT could not load the engine: plans only load on the GPU model and TensorRT "
                             "version that built them; rebuild it here with build_engine.py")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.max_batch = int(self.engine.get_tensor_profile_shape(self.inputs[0], 0)[2][0])
        self.ptrs = {}
        for n in self.inputs:
            shape = tuple(self.engine.get_tensor_profile_shape(n, 0)[2])
            self.context.set_input_shape(n, shape)
        for n in names:
            shape = tuple(self.context.get_tensor_shape(n))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(n)))
            self.ptrs[n] = self.cuda.alloc(int(np.prod(shape)) * dtype.itemsize)
            self.context.set_tensor_address(n, self.ptrs[n])

    def _run_batch(self, inputs: tuple) -> np.ndarray:
        for n, x in zip(self.inputs, inputs):
            x = np.ascontiguousarray(x, dtype=np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(n))))
            self.context.set_input_shape(n, x.shape)
            self.cuda.to_device(self.ptrs[n], x)
        out_name = self.outputs[0]
        out = np.empty(tuple(self.context.get_tensor_shape(out_name)),
                       dtype=np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(out_name))))
        if not self.context.execute_async_v3(self.cuda.handle):
            raise BuildError("TensorRT execution failed")
        self.cuda.to_host(out, self.ptrs[out_name])
        self.cuda.sync()
        return out

    def run(self, inputs: tuple) -> np.ndarray:
        """First output for all samples, in chunks of the engine's largest batch."""
        n = len(inputs[0])
        chunks = [self._run_batch(tuple(x[i:i + self.max_batch] for x in inputs)) for i in range(0, n, self.max_batch)]
        return np.concatenate(chunks).astype(np.float32)

    def latency_ms(self, inputs: tuple, iters: int = 200, warmup: int = 20) -> dict:
        """Per-call latency including host<->device copies (what one stream sees)."""
        for _ in range(warmup):
            self._run_batch(inputs)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            self._run_batch(inputs)
            times.append((time.perf_counter() - t0) * 1e3)
        arr = np.asarray(times)
        return {"batch": int(len(inputs[0])), "p50": float(np.percentile(arr, 50)), "p90": float(np.percentile(arr, 90)),
                "mean": float(arr.mean()), "iters": iters}

    def close(self) -> None:
        for ptr in self.ptrs.values():
            self.cuda.free(ptr)
        self.ptrs = {}


# ------------------------------------------------------------------------ verification
def verify_engine(runner: EngineRunner, bundle: Path, settings: dict) -> dict:
    """Engine vs the reference outputs on the golden set, with the manifest's tolerances."""
    v = settings["verify"]
    inputs = tuple(np.load(bundle / v["inputs"][name]) for name in runner.inputs)
    reference = np.load(bundle / v["reference"])
    labels = np.load(bundle / v["labels"])
    out = runner.run(inputs)
    report = {"samples": int(len(labels)), "reference": v["reference"], **compare(out, reference),
              "top1_accuracy": float(np.mean(out.argmax(-1) == labels) * 100),
              "reference_top1_accuracy": float(np.mean(reference.argmax(-1) == labels) * 100)}
    gates = []
    if v["max_abs_error"] is not None:
        gates.append({"gate": "max_abs_error", "value": report["max_abs_error"], "limit": v["max_abs_error"], "op": "<=",
                      "passed": report["max_abs_error"] <= v["max_abs_error"]})
    gates.append({"gate": "top1_agreement", "value": report["top1_agreement"], "limit": v["min_top1_agreement"],
                  "op": ">=", "passed": report["top1_agreement"] >= v["min_top1_agreement"]})
    report["gates"] = gates
    report["passed"] = all(g["passed"] for g in gates)
    return report


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def place_in_triton(bundle: Path, manifest: dict, plan: Path) -> Path | None:
    """Copy the plan into the bundle's Triton repository as the TensorRT model variant."""
    triton = manifest.get("triton")
    if not triton:
        return None
    model_dir = bundle / triton["repository"] / triton["tensorrt_model"]
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    _write_atomic(model_dir / "config.pbtxt", triton["tensorrt_config"].encode())
    _write_atomic(model_dir / "1" / "model.plan", plan.read_bytes())
    return model_dir


def build_and_verify(bundle: Path, manifest: dict, *, precision: str | None = None, plan_path: Path | None = None,
                     build: bool = True, verify: bool = True, force: bool = False, latency_iters: int = 200,
                     log=print) -> dict:
    """Build (unless build=False) and verify the engine; returns the report written to engine.json."""
    settings = build_settings(manifest, precision)
    trt = import_tensorrt()
    if not version_in_range(trt.__version__, settings["tensorrt"]["min"], settings["tensorrt"]["max"]) and not force:
        raise BuildError(f"TensorRT {trt.__version__} is outside this target's range {settings['tensorrt']['min']}"
                         f"-{settings['tensorrt']['max']} ({settings['target']}); use --force to build anyway")
    plan_path = Path(plan_path) if plan_path else bundle / settings["plan"]
    report = {"tensorrt": trt.__version__, "settings": settings, "plan": plan_path.name}
    if build:
        t0 = time.perf_counter()
        blob = build_engine(bundle / settings["onnx"], settings, log)
        report["build_seconds"] = round(time.perf_counter() - t0, 2)
        _write_atomic(plan_path, blob)
        log(f"wrote {plan_path} ({len(blob) / 1e6:.2f} MB)")
    if not plan_path.exists():
        raise FileNotFoundError(f"{plan_path} not found: build it first (python3 build_engine.py, or build.sh)")
    runner = EngineRunner(plan_path.read_bytes())
    try:
        report["device"] = runner.cuda.device()
        if settings["compute_capability"] and report["device"]["compute_capability"] != settings["compute_capability"]:
            log(f"note: this GPU is sm_{report['device']['compute_capability'].replace('.', '')}, the bundle targets "
                f"{settings['target']} (sm_{settings['compute_capability'].replace('.', '')}); the plan runs only on this GPU")
        if verify:
            report["verification"] = verify_engine(runner, bundle, settings)
        b = settings["latency_batch"]
        v = settings["verify"]
        sample = tuple(np.load(bundle / v["inputs"][n])[:b] for n in runner.inputs)
        report["latency_ms"] = runner.latency_ms(sample, iters=latency_iters)
    finally:
        runner.close()
    _write_atomic(bundle / "engine.json", (json.dumps(report, indent=2) + "\n").encode())
    placed = place_in_triton(bundle, manifest, plan_path)
    if placed is not None:
        report["triton_model"] = str(placed)
    return report


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description="Build and verify the TensorRT engine of a beamc bundle on this device.")
    ap.add_argument("--bundle", type=Path, default=here, help="bundle folder (default: this script's folder)")
    ap.add_argument("--precision", choices=("fp32", "fp16", "int8"), help="default: the manifest's precision")
    ap.add_argument("--plan", type=Path, help="engine file (default: <bundle>/model.plan)")
    ap.add_argument("--verify-only", action="store_true", help="verify an existing engine (e.g. built by build.sh)")
    ap.add_argument("--no-verify", action="store_true", help="build only")
    ap.add_argument("--show", action="store_true", help="print the build settings and trtexec command, then exit")
    ap.add_argument("--force", action="store_true", help="build even with a TensorRT version outside the target's range")
    ap.add_argument("--latency-iters", type=int, default=200, help="timed calls for the batch latency")
    args = ap.parse_args(argv)
    try:
        manifest = load_manifest(args.bundle)
        settings = build_settings(manifest, args.precision)
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.show:
        print(json.dumps({"settings": settings, "trtexec": trtexec_command(settings),
                          "latency": latency_command(settings)}, indent=2))
        return 0
    try:
        report = build_and_verify(args.bundle, manifest, precision=args.precision, plan_path=args.plan,
                                  build=not args.verify_only, verify=not args.no_verify, force=args.force,
                                  latency_iters=args.latency_iters)
    except MissingDependency as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except (BuildError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 4
    ver = report.get("verification")
    lat = report["latency_ms"]
    print(f"TensorRT {report['tensorrt']} on {report['device']['name']}: batch {lat['batch']} latency "
          f"p50 {lat['p50']:.3f} ms, p90 {lat['p90']:.3f} ms")
    if ver is not None:
        line = ", ".join(f"{g['gate']} {g['value']:.4g} ({g['op']} {g['limit']:.4g})" for g in ver["gates"])
        print(f"verification on {ver['samples']} golden samples vs {ver['reference']}: {line}; top-1 accuracy "
              f"{ver['top1_accuracy']:.2f} % (reference {ver['reference_top1_accuracy']:.2f} %)")
        if not ver["passed"]:
            print("error: the engine does not match its reference within the manifest's tolerances", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
