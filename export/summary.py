"""The human summary of an export: parity rows, files and what to run on the device."""

from __future__ import annotations

from typing import Any

COLUMNS = ("artifact", "compared with", "samples", "max abs error", "top-1 agreement", "Top-1 %", "Top-1 reference %")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def parity_rows(parity: dict[str, Any], manifest: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    models = manifest.get("models", {})
    for precision, ref_name in (("fp32", "PyTorch"), ("fp16", "PyTorch"), ("int8", "fp32 ONNX")):
        section = parity.get(precision)
        if not section:
            continue
        name = f"{models.get(precision, 'model.onnx')} ({precision})"
        golden = section.get("golden") or {}
        if section.get("checked") is False or golden.get("checked") is False:
            reason = section.get("reason") or golden.get("reason", "")
            rows.append((name, "not checked here", "-", "-", "-", "-", reason[:60]))
            continue
        cmp = golden.get("vs_fp32_onnx", golden)
        if cmp:
            rows.append((name, f"{ref_name} (golden)", str(golden.get("samples", "-")), f"{cmp['max_abs_error']:.3g}",
                         f"{cmp['top1_agreement'] * 100:.2f} %", _pct(golden["accuracy"].get("top1")),
                         _pct(golden["reference_accuracy"].get("top1"))))
        test = section.get("test")
        if test:
            mine = test.get(precision) or test.get("onnxruntime", {})
            ref = test.get("fp32") if precision != "fp32" else test.get("pytorch", {})
            label = "fp32 ONNX (test split)" if precision != "fp32" else "PyTorch (test split)"
            rows.append((name, label, str(test["samples"]), "-", "-", _pct(mine.get("top1")), _pct(ref.get("top1"))))
    engine = manifest.get("engine", {})
    ver = engine.get("verification")
    if engine.get("built") and ver:
        rows.append((f"model.plan ({manifest['precision']}, TensorRT {engine.get('tensorrt', '')})",
                     f"{ver['reference']} (golden)", str(ver["samples"]), f"{ver['max_abs_error']:.3g}",
                     f"{ver['top1_agreement'] * 100:.2f} %", _pct(ver["top1_accuracy"]), _pct(ver["reference_top1_accuracy"])))
    return rows


def bundle_files(manifest: dict[str, Any]) -> list[str]:
    """Every file of the bundle, sorted: the manifest's file table plus manifest.json itself,
    which the table cannot list (it would have to hold its own hash)."""
    return sorted({*manifest.get("files", {}), "manifest.json"})


def next_steps(manifest: dict[str, Any], bundle: str) -> list[str]:
    """What to do on the device, one line each."""
    engine = manifest.get("engine", {})
    if manifest["profile"]["runtime"] != "tensorrt":
        return [f"on the device: run {bundle}/{manifest['model_file']} with ONNX Runtime"]
    lines = []
    if engine.get("built"):
        lat = engine.get("latency_ms") or {}
        lines.append(f"engine built here: {bundle}/model.plan" + (f" (batch {lat['batch']} p50 {lat['p50']:.3f} ms)" if lat else "")
                     + "; it runs only on this GPU and TensorRT version")
    else:
        lines.append("TensorRT engine: not built here (" + str(engine.get("reason", "")).split(". ")[0] + ")")
    lines.append(f"on the {manifest['target']}: copy {bundle}/ and run  python3 build_engine.py   (or  sh build.sh  for trtexec)")
    if manifest.get("triton"):
        lines.append(f"Triton: tritonserver --model-repository {bundle}/{manifest['triton']['repository']}")
    return lines


__all__ = ["COLUMNS", "parity_rows", "bundle_files", "next_steps"]
