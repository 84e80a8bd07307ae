"""Triton Inference Server model repository for sites that serve many streams.

`beamc export --format triton` adds to the bundle

    triton/<model>/config.pbtxt          platform onnxruntime_onnx, dynamic batching
    triton/<model>/1/model.onnx          the ONNX model at the exported precision
    triton/<model>_trt/config.pbtxt      platform tensorrt_plan (written with the engine:
    triton/<model>_trt/1/model.plan      by beamc when TensorRT is here, else by build_engine.py)

so `tritonserver --model-repository <bundle>/triton` serves it. Dims exclude the batch axis;
max_batch_size is the profile's largest optimization-profile batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

DATA_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32",
              "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL"}


def model_name(text: str) -> str:
    """A repository-safe model name (letters, digits, '_' and '-')."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "model"


def _tensors(kind: str, specs: Sequence[dict[str, Any]]) -> str:
    blocks = []
    for s in specs:
        dims = ", ".join(str(d) for d in s["shape"])
        blocks.append(f'  {{\n    name: "{s["name"]}"\n    data_type: {DATA_TYPES[s["dtype"]]}\n    dims: [ {dims} ]\n  }}')
    return f"{kind} [\n" + ",\n".join(blocks) + "\n]\n"


def config_pbtxt(name: str, platform: str, inputs: Sequence[dict[str, Any]], outputs: Sequence[dict[str, Any]], *,
                 max_batch_size: int, preferred_batch_sizes: Sequence[int], max_queue_delay_us: int,
                 instances: int = 1, gpu: bool = True) -> str:
    """config.pbtxt text for an ONNX ("onnxruntime_onnx") or TensorRT ("tensorrt_plan") model."""
    preferred = [b for b in preferred_batch_sizes if b <= max_batch_size]
    text = f'name: "{name}"\nplatform: "{platform}"\nmax_batch_size: {max_batch_size}\n'
    text += _tensors("input", inputs) + _tensors("output", outputs)
    text += "dynamic_batching {\n"
    if preferred:
        text += f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]\n"
    text += f"  max_queue_delay_microseconds: {max_queue_delay_us}\n}}\n"
    text += f"instance_group [\n  {{\n    count: {instances}\n    kind: {'KIND_GPU' if gpu else 'KIND_CPU'}\n  }}\n]\n"
    return text


def configs(manifest_inputs: Sequence[dict[str, Any]], manifest_outputs: Sequence[dict[str, Any]], profile: dict[str, Any],
            name: str) -> dict[str, Any]:
    """The repository plan of a bundle: names and both config texts (the TensorRT one is
    written next to the engine when it exists)."""
    t = profile["triton"]
    common = dict(max_batch_size=profile["batch"]["max"], preferred_batch_sizes=t["preferred_batch_sizes"],
                  max_queue_delay_us=t["max_queue_delay_us"], instances=t["instances"])
    gpu = profile["runtime"] == "tensorrt"
    out = {"repository": "triton", "onnx_model": name,
           "onnx_config": config_pbtxt(name, "onnxruntime_onnx", manifest_inputs, manifest_outputs, gpu=gpu, **common)}
    if gpu:
        out["tensorrt_model"] = f"{name}_trt"
        out["tensorrt_config"] = config_pbtxt(f"{name}_trt", "tensorrt_plan", manifest_inputs, manifest_outputs,
                                              gpu=True, **common)
    return out


__all__ = ["config_pbtxt", "configs", "model_name", "DATA_TYPES"]
