"""Export building blocks without a run: stratified calibration, parity numbers, golden indices,
Triton text, TensorRT settings."""

from __future__ import annotations

import numpy as np
import pytest

from beamc.export.bundle import golden_count, golden_files, golden_indices
from beamc.export.quantize import class_coverage, stratified_indices
from beamc.export.triton import config_pbtxt, model_name
from beamc.export.verify import accuracy, compare


def test_stratified_sample_covers_every_class_in_proportion():
    labels = np.repeat(np.arange(5), [50, 30, 10, 1, 1])
    idx = stratified_indices(labels, 12, seed=3)
    counts = np.bincount(labels[idx], minlength=5)
    # 1 each; the other 7 in proportion to the spare 49:29:9:0:0 -> 3.94, 2.33, 0.72 -> largest remainders 4, 2, 1
    assert counts.tolist() == [5, 3, 2, 1, 1]
    assert len(np.unique(idx)) == 12 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(idx, stratified_indices(labels, 12, seed=3))
    assert class_coverage(labels, idx) == {"samples": 12, "classes_in_split": 5, "classes_sampled": 5}


def test_stratified_sample_smaller_than_the_class_count_takes_the_most_frequent():
    labels = np.repeat(np.arange(5), [5, 40, 1, 20, 3])
    assert sorted(labels[stratified_indices(labels, 3)].tolist()) == [0, 1, 3]  # counts 40, 20, 5
    assert len(stratified_indices(labels, 1000)) == len(labels)


def test_multi_step_labels_are_stratified_by_the_current_step():
    first = np.repeat(np.arange(4), 25)
    labels = np.stack([first, np.zeros(100, dtype=int)], axis=1)  # later steps all class 0
    assert np.bincount(labels[stratified_indices(labels, 8), 0]).tolist() == [2, 2, 2, 2]


def test_parity_numbers():
    ref = np.array([[0.0, 2.0, 1.0], [4.0, 0.0, 1.0]], dtype=np.float32)
    cand = ref + np.array([[0.0, 0.5, 0.0], [0.0, 0.0, -0.1]], dtype=np.float32)
    c = compare(cand, ref)
    assert c["max_abs_error"] == 0.5 and c["max_rel_error"] == 0.125 and c["top1_agreement"] == 1.0
    assert abs(c["mean_abs_error"] - 0.6 / 6) < 1e-7
    assert compare(ref[:, ::-1].copy(), ref)["top1_agreement"] == 0.5
    steps = np.zeros((2, 3, 4), dtype=np.float32)
    steps[0, :, 1] = 1
    steps[1, :, 2] = 1
    labels = np.array([[1, 1, 0], [2, 3, 2]])
    assert accuracy(steps, labels, (1,))["top1"] == pytest.approx(100 * 4 / 6)


def test_golden_indices_and_file_names():
    assert golden_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert golden_indices(3, 256).tolist() == [0, 1, 2]
    video = (np.zeros((2, 8, 3, 224, 224), dtype=np.float32),)  # 4.6 MiB per sample
    assert golden_count(video, 256, 64) == 13 and golden_count((np.zeros((2, 256), np.float32),), 256, 64) == 256
    assert golden_files(["csi"]) == {"csi": "golden/inputs.npy"}
    assert golden_files(["image", "radar"]) == {"image": "golden/inputs_image.npy", "radar": "golden/inputs_radar.npy"}


def test_triton_config_for_a_cpu_model_without_preferred_sizes():
    spec = [{"name": "x", "shape": [2], "dtype": "float16"}]
    text = config_pbtxt(model_name("sub6 ikd/v2"), "onnxruntime_onnx", spec, spec, max_batch_size=4,
                        preferred_batch_sizes=(8,), max_queue_delay_us=50, instances=2, gpu=False)
    assert text == """\
name: "sub6_ikd_v2"
platform: "onnxruntime_onnx"
max_batch_size: 4
input [
  {
    name: "x"
    data_type: TYPE_FP16
    dims: [ 2 ]
  }
]
output [
  {
    name: "x"
    data_type: TYPE_FP16
    dims: [ 2 ]
  }
]
dynamic_batching {
  max_queue_delay_microseconds: 50
}
instance_group [
  {
    count: 2
    kind: KIND_CPU
  }
]
"""
