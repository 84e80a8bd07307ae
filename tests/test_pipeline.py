"""End to end on tiny data: distill, resume after an interruption, teacher reuse, evaluate."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from beamc.compress.pipeline import distill, read_metrics, reevaluate
from beamc.errors import BeamcError
from beamc.recipe import load_recipe
from beamc.runs import RunInterrupted


def state_of(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_tiny_distill_end_to_end(tiny_sub6, tmp_path):
    recipe = load_recipe(tiny_sub6(method="ikd"))
    run = distill(recipe, out=tmp_path / "runs", progress=False, log=lambda s: None)
    files = {p.name for p in run.path.iterdir()}
    assert {"recipe.toml", "run.json", "preprocess.json", "teacher.pt", "student.pt", "teacher_history.csv",
            "student_history.csv", "metrics.json", "val_loss.png", "accuracy_vs_snr.png", "se_vs_snr.png"} <= files
    m = read_metrics(run.path)
    assert m["task"] == "sub6" and m["method"] == "ikd"
    for name in ("teacher", "student"):
        rows = m["models"][name]["metrics"]["by_snr"]
        assert [r["snr_db"] for r in rows] == [0.0, 15.0]
        assert set(rows[0]) == {"snr_db", "top1", "top3", "se_top1", "se_top3", "se_optimal"}
    assert m["models"]["student"]["params"] == 256 * 8 + 8 + 8 * 64 + 64
    assert m["models"]["student"]["flops"] == 2 * (256 * 8 + 8 * 64)
    assert json.loads(run.file("run.json").read_text())["state"] == "complete"
    assert (tmp_path / "runs" / "latest").resolve() == run.path
    header = run.file("student_history.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss", "train_kd", "train_hard", "val_loss", "val_top1"} <= set(header)


def test_resume_after_interruption_matches_uninterrupted(tiny_sub6, tmp_path):
    recipe = load_recipe(tiny_sub6(method="ikd", epochs=4))
    ref = distill(recipe, out=tmp_path / "a", progress=False, log=lambda s: None)

    def stop_after_two(label, epoch, row):
        if label == "student" and epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill(recipe, out=tmp_path / "b", progress=False, log=lambda s: None, on_epoch_end=stop_after_two)
    (interrupted,) = [p for p in (tmp_path / "b").glob("tiny-*")]
    assert json.loads((interrupted / "run.json").read_text())["state"] == "interrupted"
    assert (interrupted / "student.state.pt").exists() and not (interrupted / "student.pt").exists()
    resumed = distill(recipe, out=tmp_path / "b", resume=True, progress=False, log=lambda s: None)
    assert resumed.path == interrupted
    a, b = state_of(ref.file("student.pt")), state_of(resumed.file("student.pt"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert len(resumed.file("student_history.csv").read_text().splitlines()) == 1 + 4


def test_resume_refuses_a_changed_recipe(tiny_sub6, tmp_path):
    path = tiny_sub6(method="none", epochs=2)

    def stop(label, epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill(load_recipe(path), out=tmp_path, progress=False, log=lambda s: None, on_epoch_end=stop)
    with pytest.raises(BeamcError) as e:
        distill(load_recipe(path, ["train.lr=0.1"]), out=tmp_path, resume=True, progress=False, log=lambda s: None)
    assert "was started with a different recipe (section(s) train differ)" in str(e.value)
    with pytest.raises(BeamcError) as e:
        distill(load_recipe(path), out=tmp_path / "empty", resume=True, progress=False, log=lambda s: None)
    assert str(e.value) == f"--resume: no unfinished run of recipe 'tiny' under {tmp_path / 'empty'}/"


def test_teacher_trained_once_and_shared(tiny_sub6, tmp_path):
    seen = []
    hook = lambda label, epoch, row: seen.append(label)  # noqa: E731
    r1 = distill(load_recipe(tiny_sub6(name="one", method="none")), out=tmp_path, progress=False, log=lambda s: None, on_epoch_end=hook)
    r2 = distill(load_recipe(tiny_sub6(name="two", method="rkd")), out=tmp_path, progress=False, log=lambda s: None, on_epoch_end=hook)
    assert seen.count("teacher") == 2  # 2 epochs, once
    assert torch.equal(state_of(r1.file("teacher.pt"))["classifier.weight"], state_of(r2.file("teacher.pt"))["classifier.weight"])
    m = read_metrics(r2.path)
    assert "train_rkd_angle" in r2.file("student_history.csv").read_text()
    assert m["models"]["teacher"]["metrics"] == read_metrics(r1.path)["models"]["teacher"]["metrics"]


def test_self_distillation_generations(tiny_sub6, tmp_path):
    path = tiny_sub6(method="self", distill_extra="generations = 2\ntemperature = 2.0")
    text = path.read_text().replace('[student]\nmodel = "sub6_mlp"\nargs = { hidden = [8] }\n', "")
    path.write_text(text)
    run = distill(load_recipe(path), out=tmp_path, progress=False, log=lambda s: None)
    m = read_metrics(run.path)
    assert set(m["models"]) == {"teacher", "student_gen1", "student_gen2"}
    assert m["models"]["student_gen2"]["params"] == m["models"]["teacher"]["params"]
    assert torch.equal(state_of(run.file("student.pt"))["classifier.weight"], state_of(run.file("student_gen2.pt"))["classifier.weight"])


def test_reevaluate_at_new_snrs(tiny_sub6, tmp_path):
    run = distill(load_recipe(tiny_sub6(method="ikd")), out=tmp_path, progress=False, log=lambda s: None)
    ev = reevaluate(run.path, snr_db=[5.0, 25.0], device="cpu")
    assert [r["snr_db"] for r in ev["models"]["student"]["metrics"]["by_snr"]] == [5.0, 25.0]
    assert run.file("evaluation.json").exists()
    with pytest.raises(BeamcError) as e:
        reevaluate(tmp_path / "nope")
    assert str(e.value) == f"run directory not found: {tmp_path / 'nope'}"


def test_teacher_checkpoint_is_loaded_not_trained(tiny_sub6, tmp_path):
    first = distill(load_recipe(tiny_sub6(method="none")), out=tmp_path / "a", progress=False, log=lambda s: None)
    seen = []
    r = load_recipe(tiny_sub6(name="loaded", method="ikd"), [f"teacher.checkpoint={first.file('teacher.pt')}"])
    run = distill(r, out=tmp_path / "b", progress=False, log=lambda s: None, on_epoch_end=lambda l, e, row: seen.append(l))
    assert "teacher" not in seen
    assert torch.equal(state_of(run.file("teacher.pt"))["classifier.weight"], state_of(first.file("teacher.pt"))["classifier.weight"])
    bad = load_recipe(tiny_sub6(name="bad", method="ikd"), [f"teacher.checkpoint={tmp_path / 'missing.pt'}"])
    with pytest.raises(BeamcError) as e:
        distill(bad, out=tmp_path / "c", progress=False, log=lambda s: None)
    assert str(e.value) == f"checkpoint not found: {tmp_path / 'missing.pt'}"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask):
    from beamc.runs import atomic_torch_save, atomic_write_json
    from beamc.runtime.sources.csi import write_recording

    old = os.umask(umask)
    try:
        paths = [atomic_write_json(tmp_path / "metrics.json", {"a": 1}),
                 atomic_torch_save({"w": torch.zeros(1)}, tmp_path / "student.pt"),
                 write_recording(tmp_path / "rec.npz", np.zeros((2, 4, 8), np.complex64))]
    finally:
        os.umask(old)
    assert [oct(p.stat().st_mode & 0o777) for p in paths] == [oct(0o666 & ~umask)] * 3  # as open() would create them
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "rec.npz", "student.pt"]  # no temporaries left


def test_resume_takes_the_newest_run_of_the_same_recipe(tiny_sub6, tmp_path):
    path = tiny_sub6(method="ikd", epochs=2)
    out = tmp_path / "runs"

    def stop(label, epoch, row):
        if label == "student":
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted) as e:  # A: the run to continue, its teacher stage done
        distill(load_recipe(path), out=out, progress=False, log=lambda s: None, on_epoch_end=stop)
    first = e.value.path
    assert (out / "latest").resolve() == first and (first / "student.state.pt").exists()
    with pytest.raises(RunInterrupted):  # B: later, other --set values
        distill(load_recipe(path, ["train.lr=0.1"]), out=out, progress=False, log=lambda s: None, on_epoch_end=stop)
    with pytest.raises(BeamcError):  # C: later still, fails before training: leaves nothing
        distill(load_recipe(path, ["data.source=deepmimo", f"data.folder={tmp_path / 'none'}"]), out=out,
                progress=False, log=lambda s: None)
    # D: what an older beamc left of a failed start: no candidate whatever its age
    old_failed = out / "tiny-29991231-235959"
    old_failed.mkdir()
    (old_failed / "recipe.toml").write_text("name = 'tiny'\n")
    (old_failed / "run.json").write_text(json.dumps({"recipe": "tiny", "state": "failed", "stages_done": []}))
    assert len(list(out.glob("tiny-*"))) == 3
    resumed = distill(load_recipe(path), out=out, resume=True, progress=False, log=lambda s: None)
    assert resumed.path == first and resumed.complete
    assert (out / "latest").resolve() == first


def test_a_failed_start_leaves_no_folder_and_keeps_latest(tiny_sub6, tmp_path):
    path = tiny_sub6(method="none", epochs=1)
    out = tmp_path / "runs"
    bad = load_recipe(path, ["data.source=deepmimo", f"data.folder={tmp_path / 'none'}"])
    logged = []
    with pytest.raises(BeamcError):
        distill(bad, out=out, progress=False, log=logged.append)
    assert list(out.iterdir()) == []  # no run folder, no `latest` pointing at one
    assert logged[-1].startswith(f"removed {out}/tiny-") and logged[-1].endswith(": the run failed before producing anything")
    good = distill(load_recipe(path), out=out, progress=False, log=lambda s: None)
    with pytest.raises(BeamcError):
        distill(bad, out=out, progress=False, log=lambda s: None)
    assert (out / "latest").resolve() == good.path
    assert sorted(p.name for p in out.iterdir()) == sorted(["latest", "teachers", good.path.name])


def test_ctrl_c_prints_the_run_folder_and_the_resume_command(tiny_sub6, tmp_path):
    import subprocess
    import sys

    recipe = tiny_sub6(method="none", epochs=1)
    out = tmp_path / "my runs"
    # Ctrl-C as the teacher stage starts, through the real entry point (typer included)
    code = ("import sys, beamc.compress.pipeline as p\n"
            "def stop(*a, **k):\n    raise KeyboardInterrupt\n"
            "p.obtain_teacher = stop\n"
            "from beamc.cli import main\n"
            f"sys.argv = ['beamc', 'distill', {str(recipe)!r}, '--set', 'train.seed=3', '--out', {str(out)!r}, '-q']\n"
            "main()\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 130
    (run,) = out.glob("tiny-*")
    assert res.stderr.strip() == (f"interrupted: {run} keeps its checkpoints; continue with: beamc distill {recipe} "
                                  f"--set train.seed=3 --out '{out}' --resume")
    assert json.loads((run / "run.json").read_text())["state"] == "interrupted"
