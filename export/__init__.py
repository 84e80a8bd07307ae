"""Export: a run's student -> a verified bundle for a named device (`beamc export`).

Steps, each writing its artifact and verifying it against the previous one on the golden set
before the next runs (Polygraphy-style loaders):

    OnnxFromTorch (onnx.py) -> QuantizedOnnx (quantize.py) | fp16 ONNX -> TrtEngineFromOnnx (tensorrt.py)

Public API (no module here imports torch, tensorrt or pycuda at import time):

    bundle.export_run(run_dir, target, *, precision, out, fmt, calibration_samples,
                      max_top1_drop, max_abs_error, engine, log) -> ExportResult(path, manifest, parity)
    bundle.read_bundle(path, check_hashes=True) -> manifest dict   (the runtime's entry point)
    profiles.load_profile(name_or_toml) -> HardwareProfile; profiles.profile_names()
    verify.ort_predictor(path_or_session, threads=0) -> Predictor; verify.compare(candidate, reference)
    trt_build (copied into bundles as build_engine.py): build_settings, build_engine, EngineRunner,
                      verify_engine, build_and_verify, trtexec_command

The bundle layout and manifest schema are documented in bundle.py.
"""
