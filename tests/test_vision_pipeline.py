"""Vision task on a tiny simulated scenario: windows for L = 8/5/3 aligned, training and runtime
preprocessing identical, and a tiny end-to-end distill sharing one teacher across L."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from beamc.compress.pipeline import distill, read_metrics
from beamc.data import deepsense as ds
from beamc.data.windows import windows
from beamc.errors import BeamcError
from beamc.recipe import load_recipe
from beamc.registry import TASKS
from test_deepsense_windows import SCENARIO9_LENGTHS, fake

TINY = """
name = "{name}"
[task]
name = "vision"
image_size = 32
student_seq_len = {length}
latency_warmup = 1
latency_iters = 3
[data]
train_fraction = 0.5
val_fraction = 0.25
[data.synth]
sequences = 4
min_frames = 18
max_frames = 20
[teacher]
model = "vision_teacher"
args = {{ image_size = 32 }}
[student]
model = "vision_student"
[distill]
method = "{method}"
{extra}
[train]
epochs = 2
batch_size = 8
lr = 1e-3
scheduler = "cosine_warm_restarts"
t0 = 10
t_mult = 2
grad_clip = 10.0
keep = "best"
device = "cpu"
[teacher.train]
seed = 0
"""


def tiny(tmp_path, name="tiny", length=3, method="ikd", extra="temperature = 4.0\nalpha = 0.4"):
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(TINY.format(name=name, length=length, method=method, extra=extra)))
    return load_recipe(path)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    recipe = tiny(tmp_path_factory.mktemp("recipe"), length=3)
    return recipe, TASKS.get("vision").prepare(recipe.task, recipe.data, progress=False)


def test_window_count_reproduces_the_reference_on_scenario9_lengths():
    # L = 8 masks need 9 frames; rows - 14 windows per sequence, the reference's 4060 in total
    assert len(windows(fake(SCENARIO9_LENGTHS), past=9, future=6)) == 4060


def test_student_windows_are_the_last_l_masks_of_the_teacher_windows(tiny_data):
    recipe, data = tiny_data
    assert data.info["frames_per_window"] == 9 and data.info["windows"] == len(data.labels) > 0
    (teacher,), y = data.arrays("train", "teacher")
    assert teacher.shape[1:] == (8, 32, 32) and y.shape[1] == 7
    batches = list(data.batches("train", 4, epoch=1, seed=0, shuffle=True, roles=("student", "teacher")))
    assert sum(len(b.y) for b in batches) == data.split_size("train")
    for b in batches:
        (s,), (t,) = b.inputs, b.teacher_inputs
        assert s.shape[1] == 3 and t.shape[1] == 8
        assert torch.equal(s, t[:, -3:])
    for length in (8, 5, 3):
        w = data.splits["test"]
        assert np.array_equal(data.inputs(w, "teacher")[:, -length:],
                              data.masks[data.past[w][:, -length:]].astype(np.float32))
    # labels are the beams of the current frame (the last input frame) and the 6 after it
    sc = ds.open_scenario(data.info["folder"])
    assert np.array_equal(data.labels, sc.beam[data.past[:, -1:] + np.arange(7)])
    assert (sc.seq[data.past[:, 0]] == sc.seq[data.past[:, -1] + 6]).all()


def test_runtime_preprocessing_reproduces_the_training_inputs(tiny_data):
    from beamc.tasks.vision import model_input, preprocess_frame

    _, data = tiny_data
    sc = ds.open_scenario(data.info["folder"])
    window = data.splits["test"][0]
    rows = data.past[window]
    frames = np.stack([preprocess_frame(ds.read_image(sc, int(i)), data.preprocess_state) for i in rows])
    for role in ("teacher", "student"):
        assert np.array_equal(model_input(frames, data.preprocess_state, role)[0], data.inputs(np.array([window]), role)[0])


@pytest.mark.parametrize("role", ["student", "teacher"])
def test_stream_of_raw_frames_yields_exactly_the_offline_arrays(tiny_data, role):
    _, data = tiny_data
    sc = ds.open_scenario(data.info["folder"])
    (offline,), _ = data.arrays("test", role)
    first = data.past[data.splits["test"]]                  # frame rows of each test window
    by_current = {int(rows[-1]): i for i, rows in enumerate(first)}
    stream = TASKS.get("vision").stream_preprocessor(data.task_cfg, data.preprocess_state, role)
    assert stream.modalities == ("camera",)
    length = data.seq_len(role)
    matched = 0
    for seq in np.unique(sc.seq[first[:, -1]]):
        stream.reset()
        rows = np.flatnonzero(sc.seq == seq)
        for k, row in enumerate(rows):
            out = stream.push({"camera": ds.read_image(sc, int(row))})
            assert (out is None) == (k < length)             # L masks need L + 1 frames
            if int(row) in by_current:
                (x,) = out
                assert x.dtype == np.float32 and x.shape == (1, length, 32, 32)
                assert np.array_equal(x[0], offline[by_current[int(row)]])
                matched += 1
    assert matched == len(offline) > 0


def test_stream_rejects_a_frame_without_camera_or_of_the_wrong_type(tiny_data):
    _, data = tiny_data
    stream = TASKS.get("vision").stream_preprocessor(data.task_cfg, data.preprocess_state)
    with pytest.raises(BeamcError) as e:
        stream.push({"lidar": np.zeros(4)})
    assert str(e.value) == "vision frame: expected modality 'camera', found ['lidar']"
    with pytest.raises(BeamcError) as e:
        stream.push({"camera": np.zeros((4, 4, 3), np.float32)})
    assert str(e.value) == "vision frame: expected uint8 RGB [H, W, 3], found float32 [4, 4, 3]"


def test_student_longer_than_teacher_is_refused(tmp_path):
    recipe = tiny(tmp_path, length=9)
    with pytest.raises(BeamcError) as e:
        TASKS.get("vision").input_spec(recipe.task, recipe.data, "student")
    assert str(e.value) == ("task.student_seq_len (9) must be <= task.teacher_seq_len (8): the student sees the "
                            "last L masks of the teacher's window")


def test_tiny_distill_end_to_end_shares_the_teacher_across_l(tmp_path):
    seen = []
    hook = lambda label, epoch, row: seen.append(label)  # noqa: E731
    quiet = dict(progress=False, log=lambda s: None, on_epoch_end=hook)
    run = distill(tiny(tmp_path, "kd3", 3), out=tmp_path / "runs", **quiet)
    m = read_metrics(run.path)
    assert m["task"] == "vision" and m["method"] == "ikd"
    student = m["models"]["student"]
    assert student["params"] == 107_193 and student["flops_convention"] == "thop"
    metrics = student["metrics"]
    assert metrics["seq_len"] == 3 and metrics["slots"] == ["t", "t+1", "t+2", "t+3", "t+4", "t+5", "t+6"]
    for key in ("top1", "top3", "top5", "dba", "dba_y3"):
        assert len(metrics[key]) == 7 and 0.0 <= metrics[f"a{key}"] <= 1.0
    assert set(student["headline"]) == {"ATop-1 %", "ATop-3 %", "ATop-5 %", "ADBA %", "ADBA-Y3 %"}
    assert (student["latency_ms"]["warmup"], student["latency_ms"]["iters"], student["latency_ms"]["batch"]) == (1, 3, 1)
    assert (run.path / "per_slot.png").stat().st_size > 0
    header = run.file("student_history.csv").read_text().splitlines()[0].split(",")
    assert {"train_kd", "train_hard", "val_loss", "val_top1"} <= set(header)
    # another L and no KD: the cached teacher is reused (student_seq_len is not part of its key)
    run5 = distill(tiny(tmp_path, "scratch5", 5, method="none", extra=""), out=tmp_path / "runs", **quiet)
    assert seen.count("teacher") == 2 and seen.count("student") == 4
    assert read_metrics(run5.path)["models"]["student"]["metrics"]["seq_len"] == 5


@pytest.mark.parametrize("block", [4, 8])
def test_window_blocks_cover_each_window_once_in_consecutive_runs(tiny_data, block):
    from beamc.tasks.vision import block_batches

    _, data = tiny_data
    idx = data.splits["train"]
    for epoch in (1, 2):
        batches = list(block_batches(data.past, idx, block, 8, shuffle=True, seed=0, epoch=epoch))
        assert sorted(np.concatenate(batches).tolist()) == sorted(idx.tolist())
        assert all(len(b) <= 8 for b in batches)
        again = list(block_batches(data.past, idx, block, 8, shuffle=True, seed=0, epoch=epoch))
        assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))  # resumable
    # unshuffled: each run of consecutive windows (one sequence) cut into blocks of `block`,
    # batch_size // block blocks per batch, in order
    ordered = np.sort(idx)
    runs = np.split(ordered, np.flatnonzero(np.diff(data.past[ordered, 0]) != 1) + 1)
    assert len(runs) == 2                                                 # the 2 training sequences
    blocks = [r[i:i + block] for r in runs for i in range(0, len(r), block)]
    expected = [np.concatenate(blocks[i:i + 8 // block]) for i in range(0, len(blocks), 8 // block)]
    got = list(block_batches(data.past, idx, block, 8, shuffle=False, seed=0, epoch=0))
    assert [g.tolist() for g in got] == [e.tolist() for e in expected]


def test_shared_frame_batches_give_the_per_window_logits(tiny_data):
    """The CNN once per distinct mask (window_block > 1) must be the same function as the
    exported per-window forward: equal logits for teacher (L = 8) and student (L = 3)."""
    from dataclasses import replace

    from beamc.compress.modeling import build_model

    recipe, data = tiny_data
    shared = type(data)(data.task, replace(data.cfg, window_block=4), data.data_cfg, data.masks, data.past,
                        data.labels, data.splits, data.info)
    torch.manual_seed(0)
    teacher = build_model("vision_teacher", {"image_size": 32}).eval()
    student = build_model("vision_student", {}).eval()
    n = 0
    for b in shared.batches("train", 8, epoch=3, seed=1, shuffle=True, roles=("student", "teacher")):
        (frames, s_idx), (frames_t, t_idx) = b.inputs, b.teacher_inputs
        assert frames is frames_t and frames.ndim == 3 and t_idx.shape == (len(b.y), 8) and s_idx.shape == (len(b.y), 3)
        assert len(frames) < 8 * len(b.y)                                   # overlapping windows share masks
        per_window_t = frames[t_idx]                                       # [B, 8, S, S] as data.inputs builds it
        with torch.no_grad():
            torch.testing.assert_close(teacher(frames, t_idx), teacher(per_window_t), rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(student(frames, s_idx), student(per_window_t[:, -3:]), rtol=1e-5, atol=1e-5)
        n += len(b.y)
    assert n == data.split_size("train")
    # and the per-window tensors are the task's own inputs for those windows
    w = next(block_batches_first(shared))
    b = shared.shared_frame_batch(w, ("teacher",))
    frames, t_idx = b.inputs
    assert np.array_equal(frames[t_idx].numpy(), data.inputs(w, "teacher"))


def block_batches_first(data):
    from beamc.tasks.vision import block_batches

    return block_batches(data.past, data.splits["train"], data.cfg.window_block, 8, shuffle=True, seed=0, epoch=0)
