"""Progress in a log file: plain lines instead of rich bars that draw nothing off a terminal."""

from __future__ import annotations

import io

from beamc.progress import LineProgress, stage_progress, track


def test_line_progress_prints_start_throttled_updates_and_done():
    out = io.StringIO()
    with LineProgress(out, interval=3600) as p:
        t = p.add_task("teacher", total=4)
        for epoch in (1, 2):
            p.update(t, advance=1, description=f"teacher {epoch}/2 loss 1.000")
            p.update(t, advance=1, description=f"teacher {epoch}/2 loss 0.500")
        p.update(t, completed=4)  # early stopping closes a finished task without a second line
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("teacher 0/4 [") and lines[0].endswith("started")
    assert lines[1].startswith("teacher 2/2 loss 0.500 4/4 [") and lines[1].endswith("done")


def test_line_progress_interval_zero_prints_every_update():
    out = io.StringIO()
    p = LineProgress(out, interval=0)
    t = p.add_task("generator", total=None)
    for i in range(3):
        p.update(t, advance=1, description=f"generator loss {i}")
    assert [line.split(" [")[0] for line in out.getvalue().splitlines()] == \
        ["generator", "generator loss 0", "generator loss 1", "generator loss 2"]


def test_off_a_terminal_stages_log_lines_and_track_yields_every_item(capsys):
    # pytest captures the output, so this is the log-file case
    assert isinstance(stage_progress(True), LineProgress)
    assert stage_progress(False) is None
    assert list(track(range(5), "decoding rgb (5 frames)", True)) == [0, 1, 2, 3, 4]
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("decoding rgb (5 frames) 0/5 [") and err[-1].startswith("decoding rgb (5 frames) 5/5 [")
    assert list(track(iter("ab"), "quiet", False)) == ["a", "b"] and capsys.readouterr().err == ""


def test_track_with_a_total_consumes_a_generator_lazily(capsys):
    # the simulator yields frames with camera images and radar cubes: they must not all be held at once
    produced = []

    def frames():
        for i in range(3):
            produced.append(i)
            yield i

    it = track(frames(), "simulating", True, total=3)
    assert next(it) == 0 and produced == [0]
    assert list(it) == [1, 2]
    assert capsys.readouterr().err.splitlines()[-1].startswith("simulating 3/3 [")
