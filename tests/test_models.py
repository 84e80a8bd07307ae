"""Parameter and FLOP counts of the papers, exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from beamc.complexity import count_flops, count_params, example_inputs
from beamc.inspect import inspect_recipe
from beamc.recipe import load_recipe
from beamc.tasks.base import TensorSpec
from beamc.tasks.sub6_models import sub6_student, sub6_teacher

REPO = Path(__file__).resolve().parents[1]


def test_sub6_counts_table1():
    spec = [TensorSpec("csi", (256,))]
    assert count_params(sub6_teacher()) == 3_477_568
    assert count_params(sub6_student()) == 24_768
    # 2 x MACs; the paper prints 6,940,816 for the teacher, a typo of 6,946,816
    assert count_flops(sub6_teacher(), example_inputs(spec)) == 6_946_816
    assert count_flops(sub6_student(), example_inputs(spec)) == 49_152


def test_inspect_json_keys():
    info = inspect_recipe(load_recipe(REPO / "recipes" / "sub6_ikd.toml"))
    assert (info["teacher"]["params"], info["teacher"]["flops"]) == (3_477_568, 6_946_816)
    assert (info["student"]["params"], info["student"]["flops"]) == (24_768, 49_152)


def test_inspect_cli_json():
    out = subprocess.run([sys.executable, "-m", "beamc.cli", "inspect", "sub6_rkd", "--json"], capture_output=True,
                         text=True, check=True, cwd=REPO)
    info = json.loads(out.stdout)
    assert info["student"]["params"] == 24_768 and info["teacher"]["flops"] == 6_946_816
