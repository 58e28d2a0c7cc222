"""Task Attention Block head: task tokens over frozen patches, growing a trained model by a task."""

import re
from pathlib import Path

import pytest
import torch

import vitdeploy
from vitdeploy.errors import CheckpointError, VitDeployError
from vitdeploy.models.heads.class_attention import ClassAttention
from vitdeploy.models.heads.tab import Task
from vitdeploy.models.tasks import (
    add_task,
    card_with_tasks,
    checkpoint_tasks,
    grow_state_dict,
    resolve_tasks,
    tasks_from_config,
)
from vitdeploy.models.zoo import ZOO, build_model, get_card


def _tab(tasks, seed=0):
    torch.manual_seed(seed)
    return card_with_tasks(get_card("vit-test-tab"), tasks).build().eval()


def _frames(n=3, seed=1):
    return torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def test_zoo_has_a_tab_model_per_size_with_its_tasks_in_the_head_config():
    for size in ("test", "tiny", "small", "base", "large"):
        card = ZOO[f"vit-{size}-tab"]
        assert card.head.kind == "tab"
        tasks = tasks_from_config(card.head.config)
        assert [t.name for t in tasks] == ["task0", "task1", "task2"]
        assert card.head.config["num_classes"] == sum(t.num_classes for t in tasks) == len(card.class_names)
    assert [t.num_classes for t in tasks_from_config(ZOO["vit-test-tab"].head.config)] == [4, 3, 5]


def test_outputs_per_task_and_their_concatenation():
    model = build_model("vit-test-tab")
    with torch.no_grad():
        out = model(_frames(2))
    assert model.output_names == ("logits", "logits_task0", "logits_task1", "logits_task2")
    assert list(out) == list(model.output_names)
    assert [tuple(out[n].shape) for n in model.output_names] == [(2, 12), (2, 4), (2, 3), (2, 5)]
    assert torch.equal(out["logits"], torch.cat([out["logits_task0"], out["logits_task1"], out["logits_task2"]], 1))


def test_task_tokens_do_not_attend_to_each_other():
    model = build_model("vit-test-tab")
    model.head.block.gamma1.data.fill_(1.0)  # make attention matter (layer scale starts at 1e-5)
    x = _frames()
    with torch.no_grad():
        before = model(x)
        model.head.task_tokens[1].add_(torch.randn_like(model.head.task_tokens[1]))
        after = model(x)
    assert torch.equal(before["logits_task0"], after["logits_task0"])
    assert torch.equal(before["logits_task2"], after["logits_task2"])
    assert not torch.allclose(before["logits_task1"], after["logits_task1"])


def test_growing_from_2_to_3_tasks_keeps_the_first_two_exactly():
    model = _tab([Task("task0", 4), Task("task1", 3)])
    model.head.block.gamma1.data.fill_(1.0)
    x = _frames()
    with torch.no_grad():
        before = model(x)
    grown = add_task(model, num_classes=5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        after = grown(x)
    assert grown.output_names == ("logits", "logits_task0", "logits_task1", "logits_task2")
    assert after["logits_task2"].shape == (3, 5)
    assert torch.equal(before["logits_task0"], after["logits_task0"])
    assert torch.equal(before["logits_task1"], after["logits_task1"])
    assert torch.equal(before["logits"], after["logits"][:, :7])
    old, new = model.state_dict(), grown.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old)
    assert set(new) - set(old) == {"head.task_tokens.2", *(f"head.classifiers.2.{p}" for p in
                                                            ("norm.weight", "norm.bias", "fc.weight", "fc.bias"))}
    assert len(model.head.tasks) == 2  # the model given is not changed


def test_new_task_token_starts_near_the_mean_of_the_others():
    model = _tab([Task("task0", 4), Task("task1", 3)])
    grown = add_task(model, num_classes=5, name="signs_eu")
    tokens = grown.head.task_tokens
    mean = (tokens[0] + tokens[1]) / 2
    assert grown.head.tasks[-1] == Task("signs_eu", 5)
    assert "logits_signs_eu" in grown.output_names
    assert not torch.equal(tokens[2], mean)
    torch.testing.assert_close(tokens[2], mean, atol=0.06, rtol=0)  # 6 sigma of NEW_TOKEN_NOISE


def test_checkpoint_growth_equals_add_task():
    model = _tab([Task("task0", 4), Task("task1", 3)])
    state = model.state_dict()
    assert checkpoint_tasks(state) == (Task("task0", 4), Task("task1", 3))
    target = [Task("task0", 4), Task("task1", 3), Task("task2", 5), Task("task3", 2)]
    grown_state = grow_state_dict(state, target, generator=torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(7)
    grown = add_task(add_task(model, num_classes=5, generator=gen), num_classes=2, generator=gen)
    expected = grown.state_dict()
    assert set(grown_state) == set(expected)
    assert all(torch.equal(grown_state[k], expected[k]) for k in expected)
    assert all(grown_state[k] is state[k] for k in state)


def test_one_class_attention_implementation_serves_cait_and_tab():
    cait, tab = build_model("vit-test-cait"), build_model("vit-test-tab")
    assert type(cait.head.blocks[0].attn) is ClassAttention
    assert type(tab.head.block.attn) is ClassAttention
    package = Path(vitdeploy.__file__).parent
    defining = {}
    for path in package.rglob("*.py"):
        for cls in re.findall(r"^class (\w+)\(", path.read_text(), flags=re.M):
            if re.search(r"class_?attention|task_?attention|talkinghead", cls, flags=re.I):
                defining[cls] = path.relative_to(package).as_posix()
    assert defining == {"ClassAttention": "models/heads/class_attention.py",
                        "ClassAttentionBlock": "models/heads/class_attention.py"}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"count": 0}, VitDeployError, r"--tasks 0: .* at least 1 task"),
        ({"count": 3, "classes": [10, 10]}, VitDeployError, r"lists 2 class counts but --tasks is 3"),
        ({"classes": [10, 0]}, VitDeployError, r"every task needs 1 or more classes"),
        ({"count": 1, "existing": [Task("task0", 4), Task("task1", 3)]}, CheckpointError, r"holds 2 tasks"),
        ({"classes": [4, 9, 5], "existing": [Task("task0", 4), Task("task1", 3)]}, CheckpointError,
         r"task 1 of the checkpoint has 3 classes but --task-classes gives 9"),
    ],
)
def test_bad_task_lists_are_one_line_errors(kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        resolve_tasks(tasks_from_config(get_card("vit-test-tab").head.config), **kwargs)
    assert "\n" not in str(info.value)


def test_task_lists_follow_the_checkpoint_then_the_card():
    defaults = tasks_from_config(get_card("vit-test-tab").head.config)
    assert [t.num_classes for t in resolve_tasks(defaults)] == [4, 3, 5]
    assert [t.num_classes for t in resolve_tasks(defaults, count=5)] == [4, 3, 5, 5, 5]
    assert [t.num_classes for t in resolve_tasks(defaults, classes=[2, 2])] == [2, 2]
    existing = [Task("task0", 7), Task("task1", 8)]
    assert [t.num_classes for t in resolve_tasks(defaults, existing=existing)] == [7, 8]
    assert [t.num_classes for t in resolve_tasks(defaults, count=3, existing=existing)] == [7, 8, 8]


def test_add_task_rejects_bad_input():
    model = _tab([Task("task0", 4)])
    with pytest.raises(VitDeployError, match="1 or more"):
        add_task(model, num_classes=0)
    with pytest.raises(VitDeployError, match="two tasks are named 'task0'"):
        add_task(model, num_classes=3, name="task0")
    with pytest.raises(VitDeployError, match="cannot name an output"):
        add_task(model, num_classes=3, name="signs-eu")
    with pytest.raises(VitDeployError, match="no Task Attention head"):
        add_task(build_model("vit-test-cait"), num_classes=3)
