import json
from pathlib import Path

import pytest

from vitdeploy.bundle import (
    BoxFormat,
    BoxLayout,
    BoxUnits,
    Bundle,
    Graph,
    HeadSpec,
    Manifest,
    Precision,
    Preprocessing,
    ScoreActivation,
    TensorSpec,
    Variant,
    atomic_path,
)
from vitdeploy.bundle.manifest import LintFinding, OutputError, ParityRecord
from vitdeploy.errors import BundleError


def _manifest() -> Manifest:
    g = Graph(
        name="model",
        inputs=[TensorSpec("images", "float32", ["cameras", 3, 64, 96])],
        outputs=[TensorSpec("boxes", "float32", ["cameras", 10, 4])],
        variants=[Variant(Precision.FP32, "model.onnx", "abc")],
        parity=ParityRecord(atol=1e-4, rtol=1e-3, passed=True,
                            cases={"random": {"boxes": OutputError(1e-7, 1e-6, 1e-8)}}),
        lint=[LintFinding("r", "warning", "m", "h", "n")],
    )
    return Manifest(model="m", head=HeadSpec("detr", scores=ScoreActivation.SIGMOID, boxes=BoxFormat(BoxLayout.XYXY),
                                             config={"num_queries": 10}), parameters=10, image_size=(64, 96), patch_size=16, max_cameras=6,
                    opset=18, preprocessing=Preprocessing(image_size=(64, 96)), graphs=[g], class_names=["car"])


def test_manifest_round_trips_through_json():
    m = _manifest()
    again = Manifest.from_json(m.to_json())
    assert again == m
    assert again.graphs[0].variants[0].precision is Precision.FP32
    assert again.preprocessing.image_size == (64, 96)
    assert again.graph().input("images").concrete_shape(cameras=6) == (6, 3, 64, 96)
    assert again.head.scores is ScoreActivation.SIGMOID and again.head.boxes.layout is BoxLayout.XYXY


DATA = Path(__file__).parent / "data"


def test_a_schema_1_manifest_is_read_as_schema_2(tmp_path):
    """demo-detr's manifest as vitdeploy wrote it before the head type (schema 1): the head was a
    string beside ``head_config``; it is migrated when read and saved as schema 2."""
    (tmp_path / "manifest.json").write_text((DATA / "demo-detr.schema1.json").read_text())
    m = Bundle.open(tmp_path).manifest
    assert m.schema == 2 and m.head.kind == "detr"
    assert m.head.boxes == BoxFormat(BoxLayout.CXCYWH, BoxUnits.NORMALIZED)
    assert m.head.config == {"num_classes": 6, "num_queries": 30}  # box_format became the typed field
    assert m.head.scores is None  # the kind's default (softmax), as every schema-1 head had
    Bundle(tmp_path, m).save()
    raw = json.loads((tmp_path / "manifest.json").read_text())
    assert raw["schema"] == 2 and "head_config" not in raw and raw["head"]["kind"] == "detr"


def test_a_schema_1_bundle_still_runs(bundle, tmp_path):
    from vitdeploy.runtime.rig import Outputs, synthetic_rig
    from vitdeploy.runtime.run import RunOptions, run_rig

    raw = json.loads((bundle.path / "manifest.json").read_text())
    head = raw.pop("head")
    raw.update(schema=1, head=head["kind"], head_config={**head["config"], "box_format": "cxcywh_normalized"})
    (bundle.path / "manifest.json").write_text(json.dumps(raw))
    rig = synthetic_rig(2, size=(64, 96), loop=2, rate_hz=0.0, outputs=Outputs(jsonl="frames.jsonl", live=False))
    summary = run_rig(rig, bundle=bundle.path, options=RunOptions(out=tmp_path / "run", max_frames=2))
    assert summary.sets_out == 2
    records = [json.loads(line) for line in (tmp_path / "run" / "frames.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(len(r["cameras"]) == 2 for r in records)


def test_corrupt_manifest_is_a_clear_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.open(tmp_path)


def test_other_schema_is_refused(tmp_path):
    raw = json.loads(_manifest().to_json())
    raw["schema"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="schema 99"):
        Bundle.open(tmp_path)


def test_missing_bundle_and_missing_precision(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        Bundle.open(tmp_path / "nope")
    b = Bundle(tmp_path, _manifest())
    b.save()
    with pytest.raises(BundleError, match="no int8 ONNX for graph .model.*vitdeploy calibrate"):
        Bundle.open(tmp_path).onnx_path("int8")


def test_atomic_path_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_files_are_written_with_the_users_umask(tmp_path, umask):
    import os
    import stat

    from vitdeploy.bundle import atomic_write_text

    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "manifest.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "manifest.json").stat().st_mode) == 0o666 & ~umask  # before: 0600


def test_an_exported_bundle_is_readable_by_others(exported):
    import os
    import stat

    umask = os.umask(0)
    os.umask(umask)
    b = exported("vit-test-detr")
    for name in ("model.onnx", "manifest.json"):
        assert stat.S_IMODE((b.path / name).stat().st_mode) == 0o666 & ~umask, name
