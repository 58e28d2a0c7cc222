"""Exporting Task Attention (``*-tab``) models: task outputs, task lists, growing a checkpoint."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from vitdeploy.bundle import Bundle
from vitdeploy.errors import CheckpointError, VitDeployError
from vitdeploy.exporter.export import ExportOptions, export_model
from vitdeploy.models.heads.tab import Task
from vitdeploy.models.tasks import card_with_tasks, prepare_task_export, tasks_from_config
from vitdeploy.models.zoo import get_card
from vitdeploy.runtime.backends.onnxruntime import cpu_session


def test_tab_bundle_has_one_output_per_task_and_lists_the_tasks(exported):
    bundle = Bundle.open(exported("vit-test-tab", max_cameras=6).path)
    m = bundle.manifest
    assert m.head.kind == "tab"
    assert m.head.config["tasks"] == [{"name": "task0", "num_classes": 4}, {"name": "task1", "num_classes": 3},
                                      {"name": "task2", "num_classes": 5}]
    assert len(m.class_names) == 12 and m.class_names[4] == "task1/class_0"
    outputs = {o.name: o for o in m.graph().outputs}
    assert list(outputs) == ["logits", "logits_task0", "logits_task1", "logits_task2"]
    assert outputs["logits"].shape == ["cameras", 12] and outputs["logits_task2"].shape == ["cameras", 5]
    assert all(o.meaning for o in outputs.values())
    session = cpu_session(bundle.onnx_path("fp32"))
    for cams in (1, 6):
        images = np.random.default_rng(cams).standard_normal((cams, 3, 64, 64), np.float32)
        logits, *per_task = session.run(None, {"images": images})
        assert [t.shape for t in per_task] == [(cams, 4), (cams, 3), (cams, 5)]
        np.testing.assert_array_equal(logits, np.concatenate(per_task, axis=1))


def _two_task_checkpoint(path):
    torch.manual_seed(3)
    model = card_with_tasks(get_card("vit-test-tab"), [Task("task0", 4), Task("task1", 3)]).build().eval()
    model.head.block.gamma1.data.fill_(1.0)  # make the class attention count
    save_file(model.state_dict(), str(path))
    return model


def test_export_grows_a_checkpoint_keeping_its_tasks(tmp_path):
    model = _two_task_checkpoint(tmp_path / "tab2.safetensors")
    bundle = export_model("vit-test-tab", out=tmp_path / "b", checkpoint=tmp_path / "tab2.safetensors",
                          options=ExportOptions(tasks=3, task_classes=[4, 3, 6], max_cameras=2)).bundle
    m = bundle.manifest
    assert m.graph().parity.passed and m.graph().lint == []
    assert [t["num_classes"] for t in m.head.config["tasks"]] == [4, 3, 6]
    assert m.head.config["checkpoint_tasks"] == 2
    images = np.random.default_rng(0).standard_normal((2, 3, 64, 64), np.float32)
    outs = dict(zip([o.name for o in m.graph().outputs],
                    cpu_session(bundle.onnx_path("fp32")).run(None, {"images": images}), strict=True))
    with torch.no_grad():
        expected = model(torch.from_numpy(images))
    for name in ("logits_task0", "logits_task1"):
        np.testing.assert_allclose(outs[name], expected[name].numpy(), atol=1e-4, rtol=1e-4)
    assert outs["logits_task2"].shape == (2, 6)


def test_growing_at_export_is_deterministic_and_keeps_tensors_bit_for_bit(tmp_path):
    model = _two_task_checkpoint(tmp_path / "tab2.safetensors")
    a, b = (prepare_task_export(get_card("vit-test-tab"), count=4, classes=None,
                                checkpoint=tmp_path / "tab2.safetensors") for _ in range(2))
    assert a.grown_from == 2
    assert [t.num_classes for t in tasks_from_config(a.card.head.config)] == [4, 3, 3, 3]
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    assert all(torch.equal(a.state[k], v) for k, v in model.state_dict().items())


def test_a_checkpoint_exports_with_its_own_tasks(tmp_path):
    _two_task_checkpoint(tmp_path / "tab2.safetensors")
    plan = prepare_task_export(get_card("vit-test-tab"), count=None, classes=None,
                               checkpoint=tmp_path / "tab2.safetensors")
    assert plan.grown_from is None
    assert plan.card.head.config["tasks"] == [{"name": "task0", "num_classes": 4},
                                              {"name": "task1", "num_classes": 3}]


def test_bad_task_options_are_refused_before_anything_is_written(tmp_path):
    _two_task_checkpoint(tmp_path / "tab2.safetensors")
    with pytest.raises(VitDeployError, match="--tasks 0"):
        export_model("vit-test-tab", out=tmp_path / "b", options=ExportOptions(tasks=0))
    with pytest.raises(VitDeployError, match="apply to Task Attention models"):
        export_model("vit-test-cls", out=tmp_path / "b", options=ExportOptions(tasks=2))
    with pytest.raises(CheckpointError, match="holds 2 tasks"):
        export_model("vit-test-tab", out=tmp_path / "b", checkpoint=tmp_path / "tab2.safetensors",
                     options=ExportOptions(tasks=1))
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["vit-test-tab", "--tasks", "0"], "--tasks 0: a Task Attention model needs at least 1 task"),
        (["vit-test-tab", "--tasks", "3", "--task-classes", "10,10"], "lists 2 class counts but --tasks is 3"),
        (["vit-test-tab", "--task-classes", "ten,10"], "is not a comma-separated list of class counts"),
        (["vit-test-cls", "--tasks", "2"], "vit-test-cls has a cls head"),
    ],
)
def test_cli_task_errors_are_one_line(invoke, tmp_path, args, message):
    r = invoke("export", *args, "--out", str(tmp_path / "b"))
    assert r.exit_code == 1
    assert message in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "b").exists()


def test_cli_exports_the_asked_tasks(invoke, tmp_path):
    r = invoke("export", "vit-test-tab", "--tasks", "2", "--task-classes", "6,7",
               "--max-cameras", "2", "--out", str(tmp_path / "b"))
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["head"]["config"]["tasks"] == [{"name": "task0", "num_classes": 6},
                                                {"name": "task1", "num_classes": 7}]
