"""Cost of a KD student's training step with the frozen teacher run in every step (live)
against its logits computed once per training window (`compress/teacher_outputs.py`, what
`beamc distill` does for IKD / KD-MSE / self-KD on vision, LiDAR and camera+radar), measured
side by side in one run on the embedded vision simulator.

    python benchmarks/kd_teacher_outputs.py                    # student L = 3, 128 x 128, blocks of 8
    python benchmarks/kd_teacher_outputs.py --length 8 --window-block 1 --sequences 20

Prints the median seconds per training step (student forward, backward, Adam; plus the teacher
forward when live) over interleaved rounds, their ratio, and the one-time cost of filling the
cache in student steps: after that many steps (a fraction of one epoch) the cache has paid off.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from step_timing import add_step_options, interleaved_step_seconds, simulated_vision


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--length", type=int, default=3, choices=[3, 5, 8], help="student_seq_len")
    ap.add_argument("--window-block", type=int, default=8)
    add_step_options(ap)
    args = ap.parse_args()

    from beamc.compress.distillers.base import ModelOut
    from beamc.compress.distillers.ikd import IKD, IKDConfig
    from beamc.compress.losses import focal_loss
    from beamc.compress.modeling import build_model
    from beamc.compress.teacher_outputs import TeacherOutputs

    data = simulated_vision(args.image_size, args.sequences, student_seq_len=args.length, window_block=args.window_block)
    torch.manual_seed(0)
    teacher = build_model("vision_teacher", {"image_size": args.image_size}).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    t0 = time.perf_counter()
    cached = TeacherOutputs(teacher, data, args.batch_size, torch.device("cpu"))
    fill_s = time.perf_counter() - t0
    kd = IKD(IKDConfig(temperature=4.0, alpha=0.4), lambda z, y: focal_loss(z, y, 1.0, 2.0))

    def kd_steps(live: bool):
        def steps(r: int):
            torch.manual_seed(0)
            student = build_model("vision_student", {}).train()
            opt = torch.optim.Adam(student.parameters())
            roles = ("student", "teacher") if live else ("student",)
            for batch in data.batches("train", args.batch_size, epoch=r, seed=0, shuffle=True, roles=roles):
                def step(batch=batch):
                    if live:
                        with torch.no_grad():
                            t_out = ModelOut(teacher(*batch.for_teacher))
                    else:
                        t_out = cached(batch)
                    losses = kd.loss(batch, ModelOut(student(*batch.inputs)), t_out)
                    opt.zero_grad()
                    losses["loss"].backward()
                    opt.step()
                yield step
        return steps

    seconds = interleaved_step_seconds({"live": kd_steps(True), "cached": kd_steps(False)}, args.batches, args.rounds)
    live, fast = statistics.median(seconds["live"]), statistics.median(seconds["cached"])
    steps_per_epoch = -(-data.split_size("train") // args.batch_size)
    print(f"student L = {args.length} with IKD from the teacher (L = 8), {args.image_size} x {args.image_size}, "
          f"batch {args.batch_size}, window_block {args.window_block}, {args.sequences} sequences "
          f"({data.split_size('train')} training windows, {steps_per_epoch} steps per epoch), "
          f"{torch.get_num_threads()} threads, {args.rounds} rounds x {args.batches} steps")
    print(f"  live teacher:    {live:.3f} s per training step")
    print(f"  cached logits:   {fast:.3f} s per training step")
    print(f"  ratio (live / cached): {live / fast:.2f}x")
    print(f"  filling the cache once: {fill_s:.1f} s = {fill_s / fast:.0f} cached steps "
          f"({fill_s / (fast * steps_per_epoch):.2f} epochs), {cached.megabytes:.1f} MB")


if __name__ == "__main__":
    main()
