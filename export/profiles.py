"""Hardware profiles: what a target device runs and how its engine is built.

One TOML file per target in `hw_profiles/` (installed as `beamc.hw_profiles`), parsed with
the recipe schema machinery, so a typo is an error with a "did you mean":

    name = "jetson-orin"
    device = "NVIDIA Jetson AGX Orin 64GB (sm_87, 2 DLA cores)"
    runtime = "tensorrt"             # or "onnxruntime" (the cpu target)
    compute_capability = "8.7"
    precisions = ["fp32", "fp16", "int8"]
    default_precision = "fp16"
    [batch]      default/min/opt/max  -> TensorRT optimization profile and Triton max_batch_size
    [tensorrt]   version_min/version_max, build = "strongly_typed" | "builder_flags",
                 workspace_mib, dla_core (-1 = GPU), gpu_fallback
    [int8]       calibration_samples, method, per_channel, symmetric_activations
    [gates]      largest accepted errors (fp32 max abs error, int8 Top-1 drop, engine checks)
    [triton]     dynamic batching settings

`--target` takes a profile name or the path of a profile file.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from beamc.errors import BeamcError, unknown_choice
from beamc.schema import SchemaError, opt, parse, reference, to_dict

_opt = opt  # BatchProfile has a field named `opt`, which shadows the function inside its body

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class BatchProfile:
    default: int = _opt(1, ge=1, doc="batch of one stream: latency measurements and trtexec --shapes")
    min: int = _opt(1, ge=1, doc="optimization profile: smallest batch the engine accepts")
    opt: int = _opt(8, ge=1, doc="optimization profile: batch TensorRT tunes its kernels for")
    max: int = _opt(32, ge=1, doc="optimization profile: largest batch (also Triton max_batch_size)")


@dataclass(frozen=True)
class TensorRTSection:
    version_min: str = opt(doc='oldest TensorRT this target is built with, e.g. "10.3"')
    version_max: str = opt(doc='newest TensorRT known to work, compared on its given parts ("10" = any 10.x)')
    build: Literal["strongly_typed", "builder_flags"] = opt(
        doc='"strongly_typed": precision from the ONNX tensor types and Q/DQ nodes (TensorRT >= 10); '
            '"builder_flags": fp32 ONNX + FP16/INT8 builder flags (TensorRT 8.x, and DLA on 10.x)')
    workspace_mib: int = opt(1024, ge=16, doc="builder workspace memory pool limit (MiB)")
    dla_core: int = opt(-1, ge=-1, doc="DLA core to place layers on; -1 runs everything on the GPU")
    gpu_fallback: bool = opt(True, doc="with DLA: layers the DLA cannot run fall back to the GPU")


@dataclass(frozen=True)
class Int8Section:
    calibration_samples: int = opt(512, ge=1, doc="training samples used for calibration (stratified by beam)")
    method: Literal["minmax", "entropy", "percentile"] = opt("minmax", doc="activation range calibration method")
    per_channel: bool = opt(True, doc="per-output-channel weight scales")
    symmetric_activations: bool = opt(True, doc="zero-point 0 int8 activations (TensorRT requires it); false: "
                                                "asymmetric uint8 activations (CPU kernels)")
    quantize_bias: bool = opt(False, doc="int32 biases with their own DequantizeLinear (ONNX Runtime CPU kernels); "
                                         "false keeps float biases, the form TensorRT's Q/DQ parser takes")


@dataclass(frozen=True)
class Gates:
    max_abs_error: float = opt(1e-4, gt=0, doc="fp32: largest |ONNX Runtime - PyTorch| output difference on the golden set")
    min_top1_agreement: float = opt(1.0, ge=0, le=1, doc="fp32: fraction of golden samples whose top-1 beam matches PyTorch")
    max_top1_drop: float = opt(1.0, ge=0, doc="int8/fp16: largest Top-1 accuracy drop vs fp32 on the test split (points)")
    engine_max_abs_error: float = opt(1e-3, gt=0, doc="TensorRT fp32 engine vs PyTorch on the golden set (build_engine.py)")
    engine_min_top1_agreement: float = opt(0.99, ge=0, le=1, doc="TensorRT engine top-1 agreement with its reference on the golden set")


@dataclass(frozen=True)
class TritonSection:
    preferred_batch_sizes: tuple[int, ...] = opt((8,), ge=1, doc="batch sizes the dynamic batcher tries to form")
    max_queue_delay_us: int = opt(100, ge=0, doc="longest wait (microseconds) for a batch to fill")
    instances: int = opt(1, ge=1, doc="model instances per device")


@dataclass(frozen=True)
class HardwareProfile:
    name: str = opt(doc="target name used by --target (the file stem)")
    device: str = opt(doc="the hardware, in words")
    runtime: Literal["tensorrt", "onnxruntime"] = opt(doc="engine that runs the model on the device")
    precisions: tuple[Precision, ...] = opt(doc="precisions this target runs")
    default_precision: Precision = opt(doc="precision used when --precision is not given")
    description: str = opt("", doc="one line shown by `beamc profiles list`")
    compute_capability: str | None = opt(None, doc='CUDA compute capability, e.g. "8.7" (sm_87); unset for CPUs')
    memory_gib: float | None = opt(None, gt=0, doc="device memory (GiB; shared CPU/GPU memory on Jetson)")
    jetpack: str | None = opt(None, doc="JetPack release the device runs (Jetson only)")
    power_mode: str | None = opt(None, doc="nvpmodel power mode the latency figures assume (Jetson only)")
    dla_cores: int = opt(0, ge=0, doc="deep learning accelerator cores on the device")
    onnx_opset: int = opt(20, ge=13, le=23, doc="ONNX opset written (TensorRT 8.5 parses <= 17)")
    golden_samples: int = opt(256, ge=1, doc="test samples stored as golden inputs/outputs")
    golden_max_mib: int = opt(64, ge=1, doc="cap on the golden inputs' size: fewer samples for large inputs (video)")
    batch: BatchProfile = opt(factory=BatchProfile, doc="batch sizes")
    tensorrt: TensorRTSection | None = opt(None, doc="TensorRT build settings (tensorrt runtime only)")
    int8: Int8Section = opt(factory=Int8Section, doc="int8 quantization")
    gates: Gates = opt(factory=Gates, doc="accuracy gates")
    triton: TritonSection = opt(factory=TritonSection, doc="Triton Inference Server settings")

    @property
    def sm(self) -> str | None:
        return f"sm_{self.compute_capability.replace('.', '')}" if self.compute_capability else None

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for p in str(text).split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _check(p: HardwareProfile) -> None:
    """Relations between keys that the schema alone cannot express."""
    if p.default_precision not in p.precisions:
        raise SchemaError("default_precision", f"default_precision: '{p.default_precision}' is not among precisions "
                                               f"({', '.join(p.precisions)})")
    b = p.batch
    if not b.min <= b.opt <= b.max:
        raise SchemaError("batch", f"batch: expected min <= opt <= max, found {b.min}, {b.opt}, {b.max}")
    if not b.min <= b.default <= b.max:
        raise SchemaError("batch.default", f"batch.default: expected between min {b.min} and max {b.max}, found {b.default}")
    if p.runtime == "onnxruntime":
        if p.tensorrt is not None:
            raise SchemaError("tensorrt", 'tensorrt: only targets with runtime = "tensorrt" take this table')
        if "fp16" in p.precisions:
            raise SchemaError("precisions", "precisions: fp16 is not offered for ONNX Runtime CPU targets "
                                            "(no fast fp16 kernels on CPUs); use fp32 or int8")
        return
    t = p.tensorrt
    if t is None:
        raise SchemaError("tensorrt", 'missing required table [tensorrt] (runtime = "tensorrt")')
    if p.compute_capability is None:
        raise SchemaError("compute_capability", 'missing required key \'compute_capability\' (runtime = "tensorrt")')
    lo, hi = version_tuple(t.version_min), version_tuple(t.version_max)
    if not lo or not hi:
        raise SchemaError("tensorrt.version_min", f'tensorrt: versions must look like "10.3", found '
                                                  f'{t.version_min!r} and {t.version_max!r}')
    if hi < lo[:len(hi)]:
        raise SchemaError("tensorrt.version_max", f"tensorrt.version_max: {t.version_max} is older than version_min {t.version_min}")
    if t.build == "strongly_typed" and lo[0] < 10:
        raise SchemaError("tensorrt.build", f'tensorrt.build: "strongly_typed" needs TensorRT >= 10, '
                                            f'version_min is {t.version_min}; use "builder_flags"')
    if lo[0] < 10 and p.onnx_opset > 17:
        raise SchemaError("onnx_opset", f"onnx_opset: TensorRT {t.version_min} parses ONNX opsets up to 17, found {p.onnx_opset}")
    if t.dla_core >= p.dla_cores:
        raise SchemaError("tensorrt.dla_core", f"tensorrt.dla_core: {p.name} has {p.dla_cores} DLA core(s), "
                                               f"found dla_core = {t.dla_core}")


def parse_profile(raw: dict[str, Any], src: str) -> HardwareProfile:
    try:
        profile = parse(HardwareProfile, raw)
        _check(profile)
    except SchemaError as e:
        raise e.located(src) from None
    return profile


def builtin_dir() -> Path:
    return Path(str(importlib.resources.files("beamc.hw_profiles")))


def profile_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.toml"))


def load_profile_file(path: str | Path) -> HardwareProfile:
    from beamc.recipe import read_toml

    p = Path(path)
    profile = parse_profile(read_toml(p, "hardware profile"), str(p))
    if p.parent.resolve() == builtin_dir().resolve() and profile.name != p.stem:
        raise BeamcError(f"{p}: name '{profile.name}' differs from the file name '{p.stem}'")
    return profile


def load_profile(target: str | Path) -> HardwareProfile:
    """A built-in profile by name, or a profile file (a path ending in .toml)."""
    text = str(target)
    if text.endswith(".toml") or "/" in text:
        return load_profile_file(text)
    names = profile_names()
    if text not in names:
        raise unknown_choice("target", text, names)
    return load_profile_file(builtin_dir() / f"{text}.toml")


def all_profiles() -> list[HardwareProfile]:
    return [load_profile(n) for n in profile_names()]


def with_overrides(profile: HardwareProfile, *, calibration_samples: int | None = None,
                   max_top1_drop: float | None = None, max_abs_error: float | None = None) -> HardwareProfile:
    """The profile with CLI values applied (validated by the same schema as the file)."""
    raw = profile.to_dict()
    if calibration_samples is not None:
        raw["int8"]["calibration_samples"] = calibration_samples
    if max_top1_drop is not None:
        raw["gates"]["max_top1_drop"] = max_top1_drop
    if max_abs_error is not None:
        raw["gates"]["max_abs_error"] = max_abs_error
    flags = {"int8.calibration_samples": "--calibration-samples", "gates.max_top1_drop": "--max-top1-drop",
             "gates.max_abs_error": "--max-abs-error"}
    try:
        return parse_profile(raw, profile.name)
    except SchemaError as e:
        flag = flags.get(e.path)
        if flag is None:
            raise
        raise BeamcError(f"{flag}: {e.detail.split(': ', 1)[1]}") from None


def summary_rows(profiles: list[HardwareProfile]) -> list[dict[str, str]]:
    """One row per profile for `beamc profiles list` (* marks the default precision)."""
    rows = []
    for p in profiles:
        trt = p.tensorrt
        rows.append({
            "target": p.name,
            "sm": p.sm or "-",
            "memory": f"{p.memory_gib:g} GiB" if p.memory_gib else "-",
            "runtime": "ONNX Runtime" if trt is None else f"TensorRT {trt.version_min}-{trt.version_max}",
            "build": "-" if trt is None else trt.build,
            "precisions": ", ".join(f"{x}*" if x == p.default_precision else x for x in p.precisions),
            "DLA": str(p.dla_cores) + ("" if trt is None or trt.dla_core < 0 else f" (core {trt.dla_core})"),
        })
    return rows


def show_rows(profile: HardwareProfile) -> list[tuple[str, str, str]]:
    """(key, value, meaning) rows for `beamc profiles show`."""
    docs = {key: doc for key, _, _, doc in reference(HardwareProfile)}
    docs.update({key: doc for key, _, _, doc in reference(TensorRTSection, "tensorrt")})
    rows = []

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value):
                walk(value, key + ".")
            else:
                shown = "(unset)" if value is None else ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)
                rows.append((key, shown, docs.get(key, "")))

    walk(profile, "")
    return rows


__all__ = ["HardwareProfile", "BatchProfile", "TensorRTSection", "Int8Section", "Gates", "TritonSection",
           "PRECISIONS", "load_profile", "load_profile_file", "profile_names", "all_profiles", "with_overrides",
           "parse_profile", "version_tuple", "summary_rows", "show_rows"]
