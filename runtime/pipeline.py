"""`beamc run`: Source -> Preprocess -> Engine -> Sinks, with bounded queues between threads.

    source thread   reads/decodes frames, releases recordings at their timestamps (or --rate);
                    when the worker falls behind a paced or live source it drops the frame (a
                    base station cannot stall its sensors). A recording replayed as fast as
                    possible has no source thread: the worker reads it (nothing to pace, and a
                    second thread would only trade the GIL with the worker)
    worker thread   the task's stream preprocessor (from the bundle manifest; history reset
                    when the sequence/user changes) and the engine, micro-batching frames
                    that are already waiting when --micro-batch > 1
    main thread     measurement (labels, power, baseline on the same preprocessed inputs),
                    predictions.jsonl, the live console view, and the report

Ctrl-C (SIGINT) stops the source, lets the queued frames finish and writes the report; a
second Ctrl-C aborts at once (the report is still written). A source that dies ends the run
with its message in the report (status "source_failed"). A bad frame (undecodable, malformed,
wrong shape, incomplete, NaN/inf in a sensor array or in the engine's logits) is counted per
reason and resets the preprocessing history. A label that is not one integer in 0..beams-1
(-1: unknown) leaves the frame predicted but unscored (report frames.unscored_by_reason).

Clock: `t_arrival` is when a frame reached the base station (its release instant for a
replay, its receipt for a live source); latency stages are read (decode), queue, preprocess,
engine, and end to end = engine done - arrival, which a deadline miss compares with the slot.
"""

from __future__ import annotations

import datetime as _dt
import math
import queue
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from beamc.errors import BeamcError
from beamc.runtime.frames import (END, NON_FINITE_INPUT, NON_FINITE_OUTPUT, SHAPE_MISMATCH, BAD_LABEL, BadFrame, Frame,
                                  FrameError, Unscored, check_label, non_finite)

# Default slot (deadline) per task, ms. vision: the 128 ms slots of the vision paper;
# lidar / camera_radar: the DeepSense sensing period they run on (111 ms median between
# rows of scenario 9); sub6: one SSB burst period (20 ms, the 5G NR default) since a sub-6
# CSI snapshot per user per burst is what the predictor consumes.
SLOT_MS = {"vision": 128.0, "lidar": 111.0, "camera_radar": 111.0, "sub6": 20.0}
SLOT_MS_FALLBACK = 100.0
STAGES = ("read", "queue", "preprocess", "engine", "e2e")
CHUNK = 32  # frames per queue hand-over when replaying as fast as possible
# Inline replays hand results to the measuring main thread in lists of this many frames (or
# after HAND_OVER_S): latencies are stamped in the worker, so this changes no reported figure,
# only how often the two threads trade the GIL (per 32 frames it cost ~3 us per frame here).
INLINE_HAND_OVER = 512
HAND_OVER_S = 0.2


def output_beams(manifest: dict[str, Any]) -> int | None:
    """Beams the bundle's model predicts (last axis of its first output), None if the manifest does not say."""
    try:
        return int(manifest["outputs"][0]["shape"][-1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def default_slot_ms(task: str) -> tuple[float, str]:
    return (SLOT_MS[task], f"task default ({task})") if task in SLOT_MS else (SLOT_MS_FALLBACK, "fallback (task has no default)")


@dataclass
class RunOptions:
    bundle: Path
    source: str
    engine: str = "ort"
    baseline: Path | None = None
    report: Path = Path("report.json")
    out: Path | None = None
    pace: str = "timestamps"            # timestamps | rate | afap
    rate: float | None = None
    topk: int = 5
    slot_ms: float | None = None
    max_frames: int = 0
    queue_size: int = 8
    micro_batch: int = 1
    threads: int = 1
    baseline_threads: int = 1         # torch threads of the --baseline model (see Pipeline.run)
    inline_replay: bool = True        # afap replays: the worker reads the source (no source thread)
    live_view: bool = False
    plots: bool = True
    seed: int = 0
    log: Callable[[str], None] = field(default=lambda s: None)


@dataclass
class _Warmup:
    frame: Frame


class _Stop(Exception):
    pass


class _WorkerFailed(Exception):
    """Inline replay: the engine failed inside the source loop (worker_error says why)."""


class Pipeline:
    def __init__(self, opts: RunOptions):
        from beamc.export.bundle import read_bundle
        from beamc.registry import TASKS
        from beamc.schema import parse

        self.opts = opts
        self.manifest = read_bundle(opts.bundle)
        if self.manifest.get("status") != "ok":
            opts.log(f"warning: {opts.bundle} failed an export gate (status {self.manifest.get('status')!r}, see "
                     f"parity.json); running it anyway, the report says so")
        task_name = self.manifest["task"]["name"]
        self.task = TASKS.get(task_name)
        task_cfg = parse(self.task.TaskConfig, self.manifest["task"]["config"], "task")
        self.pre = self.task.stream_preprocessor(task_cfg, self.manifest["task"]["preprocess"], "student")
        self.task_name = task_name
        if opts.slot_ms is not None:
            self.slot_ms, self.slot_source = float(opts.slot_ms), "--slot-ms"
        else:
            self.slot_ms, self.slot_source = default_slot_ms(task_name)
        if opts.pace not in ("timestamps", "rate", "afap"):
            raise BeamcError(f"pace: expected timestamps, rate or afap, found {opts.pace!r}")
        if opts.pace == "rate" and not (opts.rate and opts.rate > 0):
            raise BeamcError(f"--rate: expected a positive number of frames per second, found {opts.rate}")
        self.beams = output_beams(self.manifest)
        if self.beams is not None and not 1 <= opts.topk <= self.beams:
            # a K beyond the codebook would be recorded as the swept K while the metrics use fewer
            raise BeamcError(f"--topk: expected 1..{self.beams} (the bundle's model predicts {self.beams} beams), "
                             f"found {opts.topk}")
        if opts.topk < 1:
            raise BeamcError(f"--topk: expected >= 1, found {opts.topk}")
        self.stop = threading.Event()
        self.q_in: queue.Queue = queue.Queue(maxsize=max(1, opts.queue_size))
        self.q_out: queue.Queue = queue.Queue(maxsize=max(64, 4 * opts.queue_size))
        # what the threads report back
        self.source_error: str | None = None
        self.source_traceback: str | None = None
        self.worker_error: str | None = None
        self.source_ended = False
        self.max_frames_hit = False
        self.interrupted = False
        self.dropped: list[int] = []
        self.received = 0
        self._inputs_checked = False
        # results go to the main thread (measurement) in lists of at least `_hand_over` frames
        # or every HAND_OVER_S: each hand-over wakes the main thread and costs a GIL round trip
        self._results: list[Any] = []
        self._others = 0  # items in _results that are not prediction rows
        self._hand_over, self._handed = 1, time.perf_counter()
        self._keep_inputs = opts.baseline is not None  # the baseline reruns each frame's inputs
        self.inline = False

    # ------------------------------------------------------------------ source thread
    # Items cross the queues in chunks (lists): an unpaced replay hands over up to CHUNK
    # frames per queue operation, a paced or live source one frame at a time (latency). The
    # queue bounds are in chunks; for paced and live sources a chunk is one frame.
    def _put(self, item: Any, drop_when_full: bool) -> bool:
        if drop_when_full:
            try:
                self.q_in.put_nowait(item)
                return True
            except queue.Full:
                return False
        while True:
            try:
                self.q_in.put(item, timeout=0.1)
                return True
            except queue.Full:
                if self.stop.is_set() and item is not END:
                    raise _Stop from None

    def _sleep_until(self, when: float) -> None:
        if not math.isfinite(when):  # time.sleep(NaN) raises: a frame without a usable time is due now
            return
        while True:
            left = when - time.perf_counter()
            if left <= 0:
                return
            if self.stop.is_set():
                raise _Stop
            time.sleep(min(left, 0.05))

    def _produce(self, put: Callable[[Any, bool], bool] | None = None) -> None:
        """Read the source and hand its frames on with `put(chunk, drop_when_full)` (the input
        queue, or for an inline replay the worker's own processing); END goes last."""
        put = put or self._put
        opts, src = self.opts, self.source
        paced = not src.live and opts.pace != "afap"
        drop = src.live or paced
        chunk_size = 1 if drop else CHUNK
        clock = time.perf_counter
        start, t_first, n = None, None, 0
        chunk: list[Any] = []
        try:
            for item in src.frames():
                if self.stop.is_set():
                    break
                # every item counts, bad ones too: received = predicted + warmup + dropped + bad
                self.received += 1
                if isinstance(item, BadFrame):
                    chunk.append(item)
                else:
                    if paced:
                        if start is None:
                            start, t_first = clock(), item.t
                        due = (item.t - t_first) if opts.pace == "timestamps" else n / opts.rate
                        self._sleep_until(start + due)
                    item.t_arrival = clock()
                    n += 1
                    if item.load is not None:
                        try:
                            item.load()
                        except FrameError as e:
                            item = BadFrame(item.id, e.reason, str(e), item.t)
                    if isinstance(item, BadFrame):
                        chunk.append(item)
                    else:
                        item.t_read = clock()
                        if drop:
                            if not put([item], True):
                                self.dropped.append(item.id)
                        else:
                            chunk.append(item)
                if len(chunk) >= chunk_size or (drop and chunk):
                    put(chunk, False)
                    chunk = []
                if opts.max_frames and n >= opts.max_frames:
                    self.max_frames_hit = True
                    break
            else:
                self.source_ended = True
        except _Stop:
            chunk = []
        except _WorkerFailed:
            chunk = []
        except BeamcError as e:  # SourceDied and readers' errors: the source cannot go on
            self.source_error = str(e)
        except Exception as e:  # noqa: BLE001 - a crash in a source is reported, and the report written
            self.source_error = f"source crashed: {type(e).__name__}: {e}"
            self.source_traceback = traceback.format_exc()
        finally:
            try:
                if chunk:
                    put(chunk, False)
            except (_Stop, _WorkerFailed):
                pass
            put(END, False)

    # ------------------------------------------------------------------ worker thread
    def _hole(self) -> None:
        # A frame that could not be used leaves a hole in the sequence: start the history
        # again so that no window joins frames across it (as the offline loader splits a
        # sequence at a skipped row).
        self.pre.reset()
        self._key = object()

    def _check_inputs(self, inputs: tuple[np.ndarray, ...]) -> None:
        """Once: the task's stream preprocessing must produce what the bundle's model takes
        (a bundle exported from another task version would otherwise fail deep in the engine)."""
        specs = self.manifest.get("inputs") or []
        found = [(list(x.shape[1:]), str(x.dtype)) for x in inputs]
        wanted = [(list(sp["shape"]), sp.get("dtype", "float32")) for sp in specs]
        if specs and found != wanted:
            raise BeamcError(f"task '{self.task_name}' stream preprocessing gives inputs {found} (shape without batch, "
                             f"dtype), the bundle's model takes {wanted} (manifest inputs)")
        self._inputs_checked = True

    def _work(self) -> None:
        """Worker thread fed by the source thread through the input queue."""
        self._key = object()
        ended = False
        try:
            while True:
                got = self.q_in.get()
                if got is END:
                    ended = True
                    break
                ended = self._process(got, self._waiting)
                if ended:  # END was taken while micro-batching
                    break
        except Exception as e:  # noqa: BLE001 - engine failures end the run with a report
            self._failed(e)
            self.stop.set()
            self.source.stopping.set()
            while not ended:  # let the source thread finish: drain until its END
                ended = self.q_in.get() is END
        finally:
            self._flush()
            self.q_out.put(END)

    def _work_inline(self) -> None:
        """An unpaced replay (--as-fast-as-possible on a recording) has no release instants to
        keep, so the worker reads the source itself: no source thread contending for the GIL and
        no input-queue hand-over per chunk. (Measured on the sub-6 student, 2-core CPU,
        benchmarks/runtime_overhead.py: with the source thread 13.9 us per frame, inline 10.5.)"""
        self._key = object()

        def process(chunk: Any, drop_when_full: bool) -> bool:
            if chunk is END or self.worker_error:
                return True
            try:
                self._process(chunk, None)
            except Exception as e:  # noqa: BLE001 - engine failures end the run with a report
                self._failed(e)
                self.stop.set()
                raise _WorkerFailed from None
            return True

        self._hand_over = INLINE_HAND_OVER
        try:
            self._produce(process)
        finally:
            self._flush()
            self.q_out.put(END)

    def _failed(self, e: Exception) -> None:
        self.worker_error = str(e) if isinstance(e, BeamcError) else f"{type(e).__name__}: {e}"
        self.worker_traceback = traceback.format_exc()

    def _waiting(self) -> Any:
        """Frames already in the input queue (never wait for more), or None."""
        try:
            return self.q_in.get_nowait()
        except queue.Empty:
            return None

    def _process(self, items: list[Any], waiting: Callable[[], Any] | None) -> bool:
        """Preprocess and run one chunk of frames; with --micro-batch > 1, frames that are
        already waiting (`waiting()`) join the batch. Returns True when END was taken.

        A predicted frame leaves as the collector's row (frame, logits, t_pre0, t_pre1, t_eng0,
        t_eng1, input queue depth, engine batch), plus its inputs when a baseline must rerun
        them; bad frames and warm-up frames leave as themselves (counted in `_others`, so that a
        chunk without them is taken by the collector in one list operation)."""
        mb = max(1, self.opts.micro_batch)
        pre, engine, clock, results = self.pre, self.engine, time.perf_counter, self._results
        keep = self._keep_inputs
        beams = self.beams
        depth = 0 if self.inline else self.q_in.qsize()
        pending: deque = deque(items)
        ended = False
        while pending:
            batch: list[tuple[Frame, tuple[np.ndarray, ...], float, float]] = []
            while pending and len(batch) < mb:
                frame = pending.popleft()
                if type(frame) is BadFrame:
                    self._hole()
                    results.append(frame)
                    self._others += 1
                    continue
                problem = non_finite(frame)
                if problem is not None:
                    self._hole()
                    results.append(BadFrame(frame.id, NON_FINITE_INPUT, problem, frame.t))
                    self._others += 1
                    continue
                key = frame.key
                if key is not None and key != self._key:
                    pre.reset()
                self._key = key
                t0 = clock()
                try:
                    inputs = pre.push(frame.data)
                except BeamcError as e:
                    self._hole()
                    results.append(BadFrame(frame.id, SHAPE_MISMATCH, f"frame {frame.id}: {e}", frame.t))
                    self._others += 1
                    continue
                t1 = clock()
                frame.data = None  # the raw arrays (a camera frame is MBs) are not kept past preprocessing
                if inputs is None:
                    results.append(_Warmup(frame))
                    self._others += 1
                    continue
                if not self._inputs_checked:
                    self._check_inputs(inputs)
                # checked once the frame is sure to be predicted: it is then counted once, as unscored
                if frame.label is not None:  # check_label's fast path takes the common plain int
                    frame.label, problem = check_label(frame.label, beams, frame.id)
                    if problem is not None:
                        results.append(Unscored(frame.id, BAD_LABEL, problem))
                        self._others += 1
                if mb == 1:
                    logits = engine.run(inputs)
                    if not np.isfinite(logits).all():
                        results.append(self._non_finite_output(frame))
                        self._others += 1
                        continue
                    results.append((frame, logits[0], t0, t1, t1, clock(), depth, 1, inputs) if keep else
                                   (frame, logits[0], t0, t1, t1, clock(), depth, 1))
                    continue
                batch.append((frame, inputs, t0, t1))
                if not pending and len(batch) < mb and not ended and waiting is not None:
                    got = waiting()
                    if got is END:
                        ended = True
                    elif got is not None:
                        pending.extend(got)
            if batch:
                inputs = batch[0][1] if len(batch) == 1 else \
                    tuple(np.concatenate([b[1][j] for b in batch]) for j in range(len(batch[0][1])))
                te0 = clock()
                logits = engine.run(inputs)
                te1 = clock()
                n = len(batch)
                if not np.isfinite(logits).all():
                    finite = np.isfinite(logits.reshape(n, -1)).all(axis=1)
                    for j, (frame, x, t0, t1) in enumerate(batch):
                        if finite[j]:
                            results.append((frame, logits[j], t0, t1, te0, te1, depth, n, x) if keep else
                                           (frame, logits[j], t0, t1, te0, te1, depth, n))
                        else:
                            results.append(self._non_finite_output(frame))
                            self._others += 1
                    continue
                results.extend((frame, logits[j], t0, t1, te0, te1, depth, n, x) if keep else
                               (frame, logits[j], t0, t1, te0, te1, depth, n)
                               for j, (frame, x, t0, t1) in enumerate(batch))
        if len(results) >= self._hand_over or clock() - self._handed > HAND_OVER_S:
            self._flush()
        return ended

    @staticmethod
    def _non_finite_output(frame: Frame) -> BadFrame:
        # finite inputs, NaN/inf logits (an overflowing fp16/int8 engine): no beam can be read from them
        return BadFrame(frame.id, NON_FINITE_OUTPUT, f"frame {frame.id}: the engine returned non-finite logits "
                                                     f"(NaN or inf) for finite inputs", frame.t)

    def _flush(self) -> None:
        if self._results:
            self.q_out.put((self._results, self._others))
            self._results, self._others, self._handed = [], 0, time.perf_counter()

    # ------------------------------------------------------------------ main thread
    def run(self) -> dict[str, Any]:
        from beamc.runtime.engines import open_engine
        from beamc.runtime.report import Collector, LiveView
        from beamc.runtime.sources import SourceContext, open_source

        opts = self.opts
        ctx = SourceContext(modalities=tuple(self.pre.modalities), manifest=self.manifest, bundle=Path(opts.bundle),
                            seed=opts.seed)
        self.source = open_source(opts.source, ctx)
        if self.source.live and opts.pace != "timestamps":
            opts.log(f"note: source {self.source.kind} is live: it delivers frames on its own clock; "
                     f"--rate / --as-fast-as-possible apply to recordings only")
        collector = Collector(self, opts)
        # a recording replayed as fast as possible is read by the worker itself (see _work_inline)
        self.inline = not self.source.live and opts.pace == "afap" and opts.inline_replay
        engine = open_engine(opts.engine, opts.bundle, self.manifest, threads=opts.threads, log=opts.log)
        # The baseline shares the machine with the engine under test: one torch thread keeps it
        # from taking the engine's cores (measured: the vision student in torch at 2 threads on a
        # loaded 2-core CPU took 320-400 ms per frame, at 1 thread 12 ms, and starved the stream).
        baseline = open_engine("torch", opts.bundle, self.manifest, run_dir=opts.baseline,
                               threads=opts.baseline_threads) if opts.baseline else None
        previous = None
        live = None
        try:
            with engine:
                self.engine = engine
                if baseline is not None:
                    baseline.__enter__()
                collector.engine_info = engine.describe()
                collector.baseline_info = baseline.describe() if baseline else None
                previous = self._install_sigint()
                live = LiveView(collector) if opts.live_view else None
                if self.inline:
                    threads = [threading.Thread(target=self._work_inline, name="beamc-worker", daemon=True)]
                else:
                    threads = [threading.Thread(target=self._produce, name="beamc-source", daemon=True),
                               threading.Thread(target=self._work, name="beamc-worker", daemon=True)]
                collector.started()
                for t in threads:
                    t.start()
                try:
                    while True:
                        try:
                            item = self.q_out.get(timeout=0.25)
                        except queue.Empty:
                            if live:
                                live.tick()
                            continue
                        if item is END:
                            break
                        collector.add(*item, baseline)
                        if live:
                            live.tick()
                except KeyboardInterrupt:  # the second Ctrl-C: stop now, still write the report
                    self.interrupted = True
                    self.stop.set()
                    self.source.stopping.set()
                for t in threads:
                    t.join(timeout=2.0)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            if live:
                live.close()
            if baseline is not None:
                baseline.close()
            self.source.close()
            if collector.t_start is None:  # failed while opening the engines: nothing ran
                report = None
            else:
                collector.finished()
                report = collector.report()
                collector.write(report)
        return report

    def _install_sigint(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return None

        def on_sigint(signum: int, frame: Any) -> None:
            self.interrupted = True
            self.stop.set()
            self.source.stopping.set()
            self.opts.log("interrupted: finishing the queued frames and writing the report (Ctrl-C again to abort)")
            signal.signal(signal.SIGINT, signal.default_int_handler)

        previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, on_sigint)
        return previous

    def status(self) -> tuple[str, str | None]:
        if self.worker_error:
            return "engine_failed", self.worker_error
        if self.source_error:
            return "source_failed", self.source_error
        if self.interrupted:
            return "interrupted", "stopped by Ctrl-C (SIGINT)"
        if self.max_frames_hit:
            return "max_frames", f"stopped after --max-frames {self.opts.max_frames}"
        return "completed", "end of stream"


def run_stream(opts: RunOptions) -> dict[str, Any]:
    """Run a bundle on a source until the stream ends, --max-frames, Ctrl-C or a failure;
    returns the report (also written to opts.report)."""
    return Pipeline(opts).run()


def now_iso() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


__all__ = ["RunOptions", "Pipeline", "run_stream", "SLOT_MS", "default_slot_ms"]
