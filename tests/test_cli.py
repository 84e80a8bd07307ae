"""CLI behaviour a user sees: exit codes and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def beamc(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "beamc.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_user_error_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text((REPO / "recipes" / "sub6_ikd.toml").read_text().replace("alpha", "alpah"))
    res = beamc("distill", str(bad))
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {bad}: unknown key 'distill.alpah' (did you mean 'distill.alpha'?)"
    assert "Traceback" not in res.stderr


def test_missing_recipe_file():
    res = beamc("inspect", "recipes/nope.toml")
    assert res.returncode == 2 and res.stderr.strip() == "error: recipe not found: recipes/nope.toml"


def test_validate_reports_each_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[task]\nname = "sub7"\n')
    res = beamc("recipes", "validate", str(REPO / "recipes" / "sub6_ikd.toml"), str(bad))
    assert res.returncode == 2
    assert "ok    " in res.stdout and "task.name: unknown task 'sub7' (did you mean 'sub6'?)" in res.stdout


def test_validate_reports_every_problem_of_a_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text((REPO / "recipes" / "sub6_ikd.toml").read_text().replace("alpha = 0.9", "alpha = 3")
                   .replace("epochs = 20", "epochs = 0").replace('model = "sub6_teacher"', "")
                   .replace('lr = 1e-3', 'lr = "x"'))
    res = beamc("recipes", "validate", str(bad))
    assert res.returncode == 2
    assert res.stdout.splitlines() == [
        f"error {bad}: missing required key 'teacher.model' (model name from the registry (beamc inspect lists "
        "parameters and FLOPs))",
        f"error {bad}: distill.alpha: expected a number >= 0 and <= 1, found 3.0",
        f"error {bad}: train.lr: expected a number, found 'x' (string)",
        f"error {bad}: train.epochs: expected an integer >= 1, found 0"]


def test_help_lists_commands():
    res = beamc("--help")
    assert res.returncode == 0
    for cmd in ("distill", "train", "evaluate", "inspect", "recipes", "data"):
        assert cmd in res.stdout
    assert "Examples" in beamc("distill", "--help").stdout


def test_schema_reference_documents_keys():
    res = beamc("recipes", "schema", "--task", "sub6", "--method", "ikd", "--markdown")
    assert res.returncode == 0
    assert "| `distill.temperature` | a number > 0 | `10.0` |" in res.stdout
    assert "| `train.epochs` | an integer >= 1 | `20` |" in res.stdout


def test_schema_help_shows_the_table_names():
    res = subprocess.run([sys.executable, "-m", "beamc.cli", "recipes", "schema", "--help"], capture_output=True,
                         text=True, cwd=REPO, env={**os.environ, "COLUMNS": "200"})
    assert res.returncode == 0
    assert "Show the [task] and [data] keys of this task." in res.stdout
    assert "Show the [distill] keys of this method." in res.stdout


def test_recipes_list_of_a_missing_folder_is_an_error(tmp_path):
    res = beamc("recipes", "list", str(tmp_path / "nope"))
    assert res.returncode == 2 and res.stderr.strip() == f"error: recipes folder not found: {tmp_path / 'nope'}"
    assert res.stdout == ""
    (tmp_path / "r.toml").write_text("")
    res = beamc("recipes", "list", str(tmp_path / "r.toml"))
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {tmp_path / 'r.toml'} is a file, expected a folder of recipe .toml files"
