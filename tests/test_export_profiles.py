"""Hardware profiles: the built-in targets, schema errors with exact messages, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from beamc.errors import BeamcError
from beamc.export.profiles import (all_profiles, load_profile, profile_names, summary_rows, version_tuple,
                                   with_overrides)
from beamc.export.trt_build import version_in_range

REPO = Path(__file__).resolve().parents[1]
KNOWN = "a100, cpu, h100, jetson-orin, jetson-orin-dla, l4, orin-nano, orin-nx, rtx-4090, xavier-nx"


def beamc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "beamc.cli", *args], capture_output=True, text=True, cwd=REPO)


def test_builtin_targets_and_their_facts():
    assert ", ".join(profile_names()) == KNOWN
    by_name = {p.name: p for p in all_profiles()}
    orin = by_name["jetson-orin"]
    assert (orin.sm, orin.dla_cores, orin.tensorrt.version_min, orin.tensorrt.build, orin.jetpack) == \
           ("sm_87", 2, "10.3", "strongly_typed", "6.1")
    assert (orin.batch.min, orin.batch.opt, orin.batch.max, orin.power_mode) == (1, 8, 32, "MAXN")
    xavier = by_name["xavier-nx"]
    assert (xavier.sm, xavier.tensorrt.version_min, xavier.tensorrt.build, xavier.onnx_opset) == \
           ("sm_72", "8.5", "builder_flags", 17)
    assert {n: by_name[n].sm for n in ("rtx-4090", "a100", "h100", "l4")} == \
           {"rtx-4090": "sm_89", "a100": "sm_80", "h100": "sm_90", "l4": "sm_89"}
    dla = by_name["jetson-orin-dla"]
    assert (dla.tensorrt.dla_core, dla.tensorrt.gpu_fallback, dla.tensorrt.build) == (0, True, "builder_flags")
    cpu = by_name["cpu"]
    assert (cpu.runtime, cpu.tensorrt, cpu.precisions) == ("onnxruntime", None, ("fp32", "int8"))
    assert by_name["orin-nano"].dla_cores == 0
    rows = summary_rows([orin])
    assert rows[0]["precisions"] == "fp32, fp16*, int8" and rows[0]["runtime"] == "TensorRT 10.3-10.7"


def test_unknown_target_did_you_mean():
    with pytest.raises(BeamcError) as e:
        load_profile("jetson-orn")
    assert str(e.value) == f"unknown target 'jetson-orn' (did you mean 'jetson-orin'?); known: {KNOWN}"


def write(tmp_path: Path, text: str) -> Path:
    base = (REPO / "hw_profiles" / "jetson-orin.toml").read_text()
    p = tmp_path / "custom.toml"
    p.write_text(text(base) if callable(text) else base + text)
    return p


def test_profile_typo_is_an_error_naming_the_key(tmp_path):
    p = write(tmp_path, lambda base: base.replace("workspace_mib", "workspace_mb"))
    with pytest.raises(BeamcError) as e:
        load_profile(str(p))
    assert str(e.value) == f"{p}: unknown key 'tensorrt.workspace_mb' (did you mean 'tensorrt.workspace_mib'?)"


@pytest.mark.parametrize("edit, message", [
    (lambda b: b.replace('version_min = "10.3"', 'version_min = "8.5"').replace('version_max = "10.7"', 'version_max = "8.6"'),
     'tensorrt.build: "strongly_typed" needs TensorRT >= 10, version_min is 8.5; use "builder_flags"'),
    (lambda b: b.replace('default_precision = "fp16"', 'default_precision = "int4"'),
     'default_precision: expected one of "fp32", "fp16", "int8", found \'int4\' (string) (did you mean \'int8\'?)'),
    (lambda b: b.replace('precisions = ["fp32", "fp16", "int8"]', 'precisions = ["fp32", "int8"]'),
     "default_precision: 'fp16' is not among precisions (fp32, int8)"),
    (lambda b: b.replace("dla_core = -1", "dla_core = 2"),
     "tensorrt.dla_core: jetson-orin has 2 DLA core(s), found dla_core = 2"),
    (lambda b: b.replace("opt = 8", "opt = 64"), "batch: expected min <= opt <= max, found 1, 64, 32"),
    (lambda b: b.replace("max_top1_drop = 1.0", "max_top1_drop = -1.0"),
     "gates.max_top1_drop: expected a number >= 0, found -1.0"),
])
def test_profile_value_errors(tmp_path, edit, message):
    p = write(tmp_path, edit)
    with pytest.raises(BeamcError) as e:
        load_profile(str(p))
    assert str(e.value) == f"{p}: {message}"


def test_cpu_profile_refuses_fp16(tmp_path):
    p = tmp_path / "cpu2.toml"
    p.write_text((REPO / "hw_profiles" / "cpu.toml").read_text().replace('["fp32", "int8"]', '["fp32", "fp16", "int8"]'))
    with pytest.raises(BeamcError) as e:
        load_profile(str(p))
    assert str(e.value) == (f"{p}: precisions: fp16 is not offered for ONNX Runtime CPU targets (no fast fp16 kernels "
                            "on CPUs); use fp32 or int8")


def test_cli_overrides_are_validated_like_the_file():
    orin = load_profile("jetson-orin")
    p = with_overrides(orin, calibration_samples=64, max_top1_drop=0.5, max_abs_error=1e-5)
    assert (p.int8.calibration_samples, p.gates.max_top1_drop, p.gates.max_abs_error) == (64, 0.5, 1e-5)
    with pytest.raises(BeamcError) as e:
        with_overrides(orin, calibration_samples=0)
    assert str(e.value) == "--calibration-samples: expected an integer >= 1, found 0"
    with pytest.raises(BeamcError) as e:
        with_overrides(orin, max_abs_error=0.0)
    assert str(e.value) == "--max-abs-error: expected a number > 0, found 0.0"


def test_version_ranges():
    assert version_tuple("10.3.0.30") == (10, 3, 0, 30)
    assert version_in_range("10.3.0.30", "10.3", "10.7")
    assert version_in_range("10.7.1", "10.3", "10.7")
    assert not version_in_range("10.8.0", "10.3", "10.7")
    assert not version_in_range("8.6.2", "10.3", "10.7")
    assert version_in_range("10.13.0", "10.0", "10")
    assert not version_in_range("11.0.0", "10.0", "10")
    assert version_in_range("8.5.2.2", "8.5", "8.5")


def test_cli_profiles_list_show_and_errors():
    res = beamc("profiles", "show", "jetsn-orin")
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: unknown target 'jetsn-orin' (did you mean 'jetson-orin'?); known: {KNOWN}"
    res = beamc("profiles", "show", "xavier-nx", "--json")
    assert res.returncode == 0
    shown = json.loads(res.stdout)
    assert shown["tensorrt"] == {"version_min": "8.5", "version_max": "8.5", "build": "builder_flags",
                                 "workspace_mib": 512, "dla_core": -1, "gpu_fallback": True}
    res = beamc("profiles", "list", "--json")
    assert [p["name"] for p in json.loads(res.stdout)] == KNOWN.split(", ")


def test_cli_help_lists_export_and_profiles():
    res = beamc("--help")
    assert res.returncode == 0 and "export" in res.stdout and "profiles" in res.stdout
    text = beamc("export", "--help").stdout
    assert "Examples" in text and "beamc export --target jetson-orin" in text and "--max-top1-drop" in text
