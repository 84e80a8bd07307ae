"""Training-step cost of the vision models with independent windows (task.window_block = 1,
the paper's sampling) against blocks of consecutive windows whose shared masks go through the
CNN once (window_block = N), measured side by side in one run on the embedded simulator.

    python benchmarks/vision_window_block.py                        # teacher, 128 x 128, blocks of 8
    python benchmarks/vision_window_block.py --model vision_student --image-size 224 --batches 5

Prints, per setting, the distinct masks the CNN sees per batch and the median seconds per
training step (forward, backward, Adam) over interleaved rounds, and the ratio. Only the cost
per step: at equal epochs blocks learn less (benchmarks/results/vision_kd_128px_10ep.md measures that).
"""

from __future__ import annotations

import argparse
import statistics

import torch

from step_timing import add_step_options, interleaved_step_seconds, simulated_vision


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["vision_teacher", "vision_student"], default="vision_teacher")
    ap.add_argument("--block", type=int, default=8)
    add_step_options(ap)
    args = ap.parse_args()

    from beamc.compress.modeling import build_model

    data = {b: simulated_vision(args.image_size, args.sequences, window_block=b) for b in (1, args.block)}
    model_args = {"image_size": args.image_size} if args.model == "vision_teacher" else {}
    role = "teacher" if args.model == "vision_teacher" else "student"
    masks: dict[int, list[int]] = {b: [] for b in data}

    def training_steps(block: int):
        def steps(r: int):
            torch.manual_seed(0)
            model = build_model(args.model, model_args).train()
            opt = torch.optim.Adam(model.parameters())
            for batch in data[block].batches("train", args.batch_size, epoch=r, seed=0, shuffle=True, roles=(role,)):
                first = batch.inputs[0]
                masks[block].append(len(first) if block > 1 else first.shape[0] * first.shape[1])

                def step(batch=batch):
                    out = model(*(batch.for_teacher if role == "teacher" else batch.inputs))
                    loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), batch.y.reshape(-1))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                yield step
        return steps

    seconds = interleaved_step_seconds({b: training_steps(b) for b in data}, args.batches, args.rounds)
    print(f"{args.model}, {args.image_size} x {args.image_size}, batch {args.batch_size}, {args.sequences} sequences, "
          f"{torch.get_num_threads()} threads, {args.rounds} rounds x {args.batches} steps")
    for b in data:
        print(f"  window_block {b:2d}: {statistics.mean(masks[b]):6.1f} CNN passes per batch, "
              f"{statistics.median(seconds[b]):.3f} s per training step")
    print(f"  ratio (block 1 / block {args.block}): {statistics.median(seconds[1]) / statistics.median(seconds[args.block]):.2f}x")


if __name__ == "__main__":
    main()
