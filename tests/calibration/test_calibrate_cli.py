"""`vitdeploy calibrate` as a user meets it: bad input is one line, exit 1, and the bundle untouched."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from vitdeploy.bundle import Bundle


def write_frames(folder, n, *, corrupt: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    for i in range(corrupt):
        (folder / f"broken{i}.jpg").write_bytes(b"\xff\xd8 truncated")


def make_data(kind: str, tmp):
    if kind == "empty":
        (tmp / "empty").mkdir()
        return tmp / "empty"
    if kind == "unreadable":
        write_frames(tmp / "frames", 23, corrupt=1)
        return tmp / "frames"
    if kind == "video":
        (tmp / "clip.mp4").write_bytes(b"this is not a video" * 50)
        return tmp / "clip.mp4"
    if kind == "few":
        write_frames(tmp / "few", 6)
        return tmp / "few"
    if kind == "npz-names":
        np.savez(tmp / "x.npz", pixels=np.zeros((30, 3, 64, 96), np.float32))
        return tmp / "x.npz"
    if kind == "npz-shape":
        np.savez(tmp / "x.npz", images=np.zeros((30, 3, 96, 64), np.float32))
        return tmp / "x.npz"
    return tmp / "missing"


@pytest.mark.parametrize(("kind", "extra", "message"), [
    ("empty", [], "holds no images (.jpg, .jpeg, .png, .bmp"),
    ("unreadable", [], "cannot read image"),
    ("video", [], "cannot open video"),
    ("few", [], "has 6 frames; calibration needs at least 20"),
    ("npz-names", [], "holds arrays ['pixels'] but the graph's inputs are ['images']"),
    ("npz-shape", [], "has shape (30, 3, 96, 64), the graph takes Nx3x64x96"),
    ("missing", [], "does not exist"),
    ("synthetic", ["--samples", "8"], "--samples 8 is too few"),
    ("synthetic", ["--exclude", "encoder.blocks.7.mlp"], "matches no layer of this graph"),
    ("synthetic", ["--min-agreement", "1.5"], "outside 0..1"),
    ("synthetic", ["--auto-fallback"], "--auto-fallback needs --min-agreement"),
])
def test_bad_input_is_one_line_exit_1_and_leaves_the_bundle_unchanged(invoke, unchanged, bundle, tmp_path, kind,
                                                                      extra, message):
    data = "synthetic" if kind == "synthetic" else make_data(kind, tmp_path)
    with unchanged(bundle.path):
        r = invoke("calibrate", bundle.path, "--precision", "int8", "--data", data, *extra)
    assert r.exit_code == 1, r.output
    assert message in " ".join(r.output.split()), r.output
    assert "Traceback" not in r.output and r.output.lstrip().startswith("error:")


def test_sensitivity_is_for_int8_and_sam_is_refused_clearly(invoke, unchanged, bundle):
    with unchanged(bundle.path):
        r = invoke("calibrate", bundle.path, "--precision", "fp16", "--sensitivity")
    assert r.exit_code == 1 and "apply to --precision int8" in r.output
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    manifest["head"] = {"kind": "sam", "config": {}}
    graph = manifest["graphs"][0]
    manifest["graphs"] = [{**graph, "name": "image_encoder"}, {**graph, "name": "prompt_decoder"}]
    (bundle.path / "manifest.json").write_text(json.dumps(manifest))
    with unchanged(bundle.path):
        r = invoke("calibrate", bundle.path, "--precision", "int8")
    assert r.exit_code == 1 and "SAM" in r.output and "not supported yet" in r.output


def test_int8_below_min_agreement_is_written_but_rejected(invoke, trained_detr, bundle_copy, monkeypatch):
    from quantize_faults import coarsen_activations

    from vitdeploy.calibration import calibrate as calibrate_module

    real = calibrate_module.quantize_int8

    def badly_quantized(src, out, **kwargs):  # every activation range 1000x too wide
        placement = real(src, out, **kwargs)
        coarsen_activations(out, set(placement.quantized))
        return placement

    monkeypatch.setattr(calibrate_module, "quantize_int8", badly_quantized)
    bundle = bundle_copy(trained_detr).path
    r = invoke("calibrate", bundle, "--precision", "int8", "--samples", "16", "--heldout", "16",
               "--high-precision", "fp32", "--min-agreement", "0.9", "--sensitivity")
    assert r.exit_code == 1, r.output
    text = " ".join(r.output.split())
    assert "int8 vs FP32 on 16 held-out frames" in text and "cosine" in text
    assert "is below --min-agreement 0.9" in text and "marked rejected" in text
    assert "sensitivity: each layer group quantized alone" in text and "suggested: --exclude" in text
    assert "warning: 16 calibration samples are few" in text
    assert "Traceback" not in r.output
    manifest = Bundle.open(bundle).manifest
    variant = manifest.graph().variant("int8")
    assert variant.status.value == "rejected" and (bundle / "model.int8.onnx").is_file()
    assert variant.details["agreement"]["value"] < 0.9
    report = json.loads((bundle / "calibration_report.int8.json").read_text())
    assert report["passed"] is False and report["min_agreement"] == 0.9 and report["extra"]["sensitivity"]
    assert manifest.calibration["int8"]["status"] == "rejected"


def test_unmeasurable_agreement_does_not_pass_a_threshold():
    from vitdeploy.calibration.report import AccuracyReport, TaskAgreement

    task = TaskAgreement("detection_map", "mAP", None, reason="FP32 detects nothing")
    assert AccuracyReport("int8", "model", 8, "", {}, task, min_agreement=0.5).passed is False
    assert AccuracyReport("int8", "model", 8, "", {}, task, min_agreement=None).passed is True


def test_int8_and_fp16_options_reach_the_manifest(invoke, bundle):
    r = invoke("calibrate", bundle.path, "--precision", "int8", "--samples", "16", "--heldout", "8", "--method", "max",
               "--high-precision", "fp32", "--attention-tokens", "16",
               "--exclude", "encoder.blocks.1.mlp,head.box_embed", "--exclude", "encoder.patch_embed")
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "--exclude encoder.blocks.1.mlp: encoder.blocks.1.mlp.fc1, encoder.blocks.1.mlp.fc2" in text
    r = invoke("calibrate", bundle.path, "--precision", "fp16", "--samples", "16", "--heldout", "8")
    assert r.exit_code == 0, r.output
    assert "FP16: kept in FP32:" in r.output and "LayerNormalization 12" in r.output
    graph = Bundle.open(bundle.path).manifest.graph()
    int8, fp16 = graph.variant("int8"), graph.variant("fp16")
    assert int8.details["recipe"] == {"method": "max", "high_precision": "fp32", "attention_tokens": 16,
                                      "exclude": ["encoder.blocks.1.mlp", "head.box_embed", "encoder.patch_embed"]}
    kept = int8.details["placement"]["kept_layers"]
    assert kept["encoder.patch_embed.proj"] == "--exclude encoder.patch_embed"
    assert kept["head.box_embed.layers.0"] == "--exclude head.box_embed"
    assert fp16.status.value == int8.status.value == "good"
    assert sorted(p.name for p in bundle.path.iterdir()) == [
        "calibration.fp16.log", "calibration.int8.log", "calibration_report.fp16.json", "calibration_report.int8.json",
        "manifest.json", "model.fp16.onnx", "model.int8.onnx", "model.onnx"]


def test_ctrl_c_during_modelopt_leaves_no_temporary_files(unchanged, bundle, tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    with unchanged(bundle.path):
        calibrate_and_interrupt(bundle.path, temp)


def calibrate_and_interrupt(bundle, temp) -> None:
    """Run `vitdeploy calibrate` with ``temp`` as its TMPDIR and send SIGINT to its process group
    while ModelOpt quantizes; nothing may be left in ``temp``."""
    import os
    import signal
    import subprocess
    import sys
    import time

    # its own process group, signalled as a whole: what Ctrl-C in a terminal does
    proc = subprocess.Popen([sys.executable, "-m", "vitdeploy.cli.app", "calibrate", str(bundle), "--precision",
                             "int8", "--data", "synthetic", "--samples", "16", "--heldout", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "TMPDIR": str(temp)})
    try:
        deadline = time.monotonic() + 120
        # ModelOpt's own temporary ONNX (tempfile.mkstemp) exists while it quantizes
        while time.monotonic() < deadline and proc.poll() is None and not list(temp.rglob("tmp*.onnx")):
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()[0]
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    left = sorted(str(p.relative_to(temp)) for p in temp.rglob("*") if p.name != ".ses")  # .ses: not ours
    assert left == [], left  # before: ModelOpt's tmpXXXX.onnx (and ORT's work folder) stayed in $TMPDIR
