"""Replay fixtures (see replay_data.py): ``replay_bundle`` detects confidently and has an INT8
variant; ``drives`` is a folder of small drives (videos, a folder of per-camera videos, an MCAP
file) and one corrupt video."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from recording_files import stream, write_ros2_mcap
from replay_data import quantize_weights, sharpen_logits, write_drive

from vitdeploy.bundle import Bundle, Precision, Variant, sha256_file


@pytest.fixture(scope="session")
def replay_bundle(exported, tmp_path_factory) -> Bundle:
    """vit-test-detr (1..6 cameras), confident, with an INT8 variant; shared: do not change it."""
    import onnx

    path = tmp_path_factory.mktemp("replay") / "bundle"
    shutil.copytree(exported("vit-test-detr", max_cameras=6).path, path)
    bundle = Bundle.open(path)
    model = onnx.load(str(path / "model.onnx"))
    sharpen_logits(model)
    onnx.save(model, str(path / "model.onnx"))
    quantize_weights(model)
    onnx.save(model, str(path / "model.int8.onnx"))
    graph = bundle.manifest.graph(None)
    fp32 = graph.variant(Precision.FP32)
    fp32.sha256 = sha256_file(path / "model.onnx")
    graph.set_variant(Variant(Precision.INT8, "model.int8.onnx", sha256_file(path / "model.int8.onnx")))
    bundle.save()
    return bundle


@pytest.fixture(scope="session")
def drives(replay_bundle, tmp_path_factory) -> Path:
    """A folder of 5 small drives (3 single videos, a folder of 2 cameras, an MCAP file of 2 image
    topics) and one corrupt video."""
    root = tmp_path_factory.mktemp("drives")
    for i in range(3):
        write_drive(root / f"drive{i}.mp4", bundle=replay_bundle, seed=i)
    write_drive(root / "rig2", bundle=replay_bundle, seed=7, cameras=2)
    image = "sensor_msgs/msg/CompressedImage"
    write_ros2_mcap(root / "recorded.mcap", {"/cam_front/image_raw/compressed": (image, stream(5, seed=1)),
                                             "/cam_left/image_raw/compressed": (image, stream(5, seed=2))})
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    return root
