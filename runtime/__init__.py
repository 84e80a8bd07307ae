"""The runtime: exported bundles on live or recorded sensor streams at the base station.

    from beamc.runtime.pipeline import RunOptions, run_stream
    report = run_stream(RunOptions(bundle=Path("bundles/x"), source="csi:rec.npz", baseline=Path("runs/x")))

Packages: sources/ (spec -> frames), engines/ (ort, trt, torch behind one interface),
align.py (multi-sensor timestamp alignment), pipeline.py (threads and queues), metrics.py
and report.py (what is measured and written). Nothing here imports torch or beamc.compress
at module level: a device with only ONNX Runtime or TensorRT runs bundles (DESIGN.md).
"""
