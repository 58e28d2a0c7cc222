"""Tasks of a Task Attention (``*-tab``) model: growing a trained model, and the task list of an export.

A model grows from T to T+1 tasks without retraining what it has: the encoder, the shared
class-attention block and every existing task token and classifier are kept bit-for-bit. The
new task token starts as the mean of the existing ones plus a little noise (close to what the
block already handles; the noise tells tokens added together apart); its classifier is fresh.

``add_task`` grows a model; ``grow_state_dict`` grows a checkpoint's state dict the same way
(with the same generator both give the same tensors), which is what ``vitdeploy export
--tasks N`` does to a checkpoint with fewer tasks.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from vitdeploy.errors import CheckpointError, VitDeployError
from vitdeploy.models.heads.tab import TabHead, Task, TaskClassifier, check_tasks

if TYPE_CHECKING:
    from vitdeploy.models.card import ModelCard

#: Standard deviation of the noise added to the mean token to start a new task token.
NEW_TOKEN_NOISE = 0.01

_TOKEN_KEY = "head.task_tokens.{}"
_CLASSIFIER_KEY = "head.classifiers.{}.fc.weight"
_TOKEN_INDEX = re.compile(r"^head\.task_tokens\.(\d+)$")


def default_task_name(index: int) -> str:
    return f"task{index}"


def tasks_config(tasks: Sequence[Task]) -> dict[str, Any]:
    """The head config of a Task Attention card and manifest (``HeadSpec.config``)."""
    tasks = check_tasks(tasks)
    return {"tasks": [{"name": t.name, "num_classes": t.num_classes} for t in tasks],
            "num_classes": sum(t.num_classes for t in tasks)}


def tasks_from_config(head_config: dict[str, Any]) -> tuple[Task, ...]:
    return tuple(Task(name=t["name"], num_classes=int(t["num_classes"])) for t in head_config["tasks"])


def task_class_names(tasks: Sequence[Task]) -> tuple[str, ...]:
    """Names of the concatenated ``logits``: ``<task>/class_<i>``."""
    return tuple(f"{t.name}/class_{i}" for t in tasks for i in range(t.num_classes))


def new_task_token(tokens: Sequence[torch.Tensor], *, generator: torch.Generator | None = None) -> torch.Tensor:
    """The mean of ``tokens`` (each (1, 1, dim)) plus N(0, NEW_TOKEN_NOISE^2) noise, as a new tensor."""
    with torch.no_grad():
        mean = torch.stack([t.detach() for t in tokens]).mean(dim=0)
        noise = torch.randn(mean.shape, generator=generator, dtype=torch.float32) * NEW_TOKEN_NOISE
        return mean + noise.to(mean)


def _tab_head(model: nn.Module) -> TabHead:
    head = model if isinstance(model, TabHead) else getattr(model, "head", None)
    if not isinstance(head, TabHead):
        raise VitDeployError(f"{type(model).__name__} has no Task Attention head; tasks are added to *-tab models")
    return head


def add_task(model: nn.Module, *, num_classes: int, name: str | None = None,
             generator: torch.Generator | None = None) -> nn.Module:
    """A copy of ``model`` (a ``*-tab`` PerceptionModel, or a TabHead) with one more task.

    Everything ``model`` has is copied bit-for-bit; the new task is named ``name`` (default
    ``task<T>``) and gets a token from ``new_task_token`` and a fresh classifier, both drawn
    from ``generator`` (torch's global RNG when None). ``model`` itself is not changed.
    """
    head = _tab_head(model)
    task = Task(name=name or default_task_name(len(head.tasks)), num_classes=num_classes)
    check_tasks((*head.tasks, task))
    token = new_task_token(list(head.task_tokens), generator=generator)
    grown = copy.deepcopy(model)
    _tab_head(grown).append_task(task, token=token, generator=generator)
    return grown


def checkpoint_tasks(state: dict[str, torch.Tensor], *, source: str = "checkpoint") -> tuple[Task, ...]:
    """The tasks a ``*-tab`` state dict holds (default names; a state dict stores no names)."""
    indices = sorted(int(m.group(1)) for key in state if (m := _TOKEN_INDEX.match(key)))
    if not indices:
        raise CheckpointError(f"{source} has no task tokens ({_TOKEN_KEY.format(0)}); is it a *-tab checkpoint?")
    if indices != list(range(len(indices))):
        raise CheckpointError(f"{source} has task tokens {indices}; expected 0..{len(indices) - 1}")
    tasks = []
    for i in indices:
        weight = state.get(_CLASSIFIER_KEY.format(i))
        if weight is None:
            raise CheckpointError(f"{source} has a token for task {i} but no classifier ({_CLASSIFIER_KEY.format(i)})")
        tasks.append(Task(name=default_task_name(i), num_classes=int(weight.shape[0])))
    return tuple(tasks)


def grow_state_dict(state: dict[str, torch.Tensor], tasks: Sequence[Task], *,
                    generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """``state`` (a ``*-tab`` checkpoint with k tasks) grown to ``tasks`` (k or more).

    The existing entries are the same tensors; tasks k.. get tokens and classifiers exactly as
    ``add_task`` would make them, one after the other, from ``generator``.
    """
    tasks = check_tasks(tasks)
    have = checkpoint_tasks(state)
    if len(tasks) < len(have):
        raise CheckpointError(f"the checkpoint holds {len(have)} tasks, more than the {len(tasks)} asked for; "
                              "tasks are only ever added")
    for i, (old, new) in enumerate(zip(have, tasks[:len(have)], strict=True)):
        if old.num_classes != new.num_classes:
            raise CheckpointError(f"task {i} of the checkpoint has {old.num_classes} classes, not {new.num_classes}; "
                                  "the classes of an existing task are fixed")
    grown = dict(state)
    tokens = [state[_TOKEN_KEY.format(i)] for i in range(len(have))]
    dim = tokens[0].shape[-1]
    for i in range(len(have), len(tasks)):
        token = new_task_token(tokens, generator=generator).to(tokens[0])
        tokens.append(token)
        grown[_TOKEN_KEY.format(i)] = token
        classifier = TaskClassifier(dim, tasks[i].num_classes, generator=generator)
        grown.update({f"head.classifiers.{i}.{k}": v for k, v in classifier.state_dict().items()})
    return grown


def resolve_tasks(defaults: Sequence[Task], *, count: int | None = None, classes: Sequence[int] | None = None,
                  existing: Sequence[Task] | None = None) -> tuple[Task, ...]:
    """The tasks to build from ``--tasks``/``--task-classes``.

    Without either option: ``existing`` (a checkpoint's tasks) if given, else ``defaults`` (the
    card's). Class counts not given are taken from those tasks; tasks beyond them repeat the
    last task's class count.
    """
    if count is not None and count < 1:
        raise VitDeployError(f"--tasks {count}: a Task Attention model needs at least 1 task")
    if classes is not None:
        classes = [int(c) for c in classes]
        if not classes or min(classes) < 1:
            raise VitDeployError(f"--task-classes {','.join(map(str, classes))}: every task needs 1 or more classes")
        if count is not None and len(classes) != count:
            raise VitDeployError(f"--task-classes lists {len(classes)} class counts but --tasks is {count}; "
                                 "give one count per task, e.g. --tasks 3 --task-classes 10,10,12")
    base = tuple(existing) if existing is not None else tuple(defaults)
    n = count if count is not None else (len(classes) if classes is not None else len(base))
    if existing is not None and n < len(existing):
        raise CheckpointError(f"the checkpoint holds {len(existing)} tasks; --tasks {n} would drop some, "
                              f"and tasks are only ever added (give --tasks {len(existing)} or more)")
    tasks = []
    for i in range(n):
        name = base[i].name if i < len(base) else default_task_name(i)
        num = classes[i] if classes is not None else base[min(i, len(base) - 1)].num_classes
        if existing is not None and i < len(existing) and num != existing[i].num_classes:
            raise CheckpointError(f"task {i} of the checkpoint has {existing[i].num_classes} classes but "
                                  f"--task-classes gives {num}; the classes of an existing task are fixed")
        tasks.append(Task(name=name, num_classes=num))
    return check_tasks(tasks)


def card_with_tasks(card: ModelCard, tasks: Sequence[Task], **head_config: Any) -> ModelCard:
    """``card`` (a ``*-tab`` card) building ``tasks``; its head config and class names follow."""
    tasks = check_tasks(tasks)
    head_builder = functools.partial(card.head_builder, tasks=tasks) if card.head_builder is not None else None
    return dataclasses.replace(card, builder=functools.partial(card.builder, tasks=tasks), head_builder=head_builder,
                               head=dataclasses.replace(card.head, config={**tasks_config(tasks), **head_config}),
                               class_names=task_class_names(tasks))


@dataclasses.dataclass(frozen=True)
class TaskExport:
    """What ``export_model`` needs for a ``*-tab`` model: the card for the asked tasks and, with a
    checkpoint, its state dict grown to them (``grown_from``: the checkpoint's task count)."""

    card: ModelCard
    state: dict[str, torch.Tensor] | None = None
    grown_from: int | None = None


def prepare_task_export(card: ModelCard, *, count: int | None, classes: Sequence[int] | None,
                        checkpoint: str | Path | None) -> TaskExport | None:
    """None for a model without tasks (where ``count``/``classes`` are an error)."""
    if "tasks" not in card.head.config:  # a Task Attention card lists its tasks
        if count is not None or classes is not None:
            raise VitDeployError(f"--tasks/--task-classes apply to Task Attention models (*-tab); {card.name} "
                                 f"has a {card.head.kind} head")
        return None
    if checkpoint is None:
        tasks = resolve_tasks(tasks_from_config(card.head.config), count=count, classes=classes)
        return TaskExport(card=card_with_tasks(card, tasks))
    from vitdeploy.models.checkpoint import read_state_dict

    state = read_state_dict(checkpoint)
    existing = checkpoint_tasks(state, source=str(checkpoint))
    tasks = resolve_tasks(tasks_from_config(card.head.config), count=count, classes=classes, existing=existing)
    if len(tasks) == len(existing):
        return TaskExport(card=card_with_tasks(card, tasks), state=state)
    # Seeded, so that exporting the same checkpoint twice gives the same bundle.
    grown = grow_state_dict(state, tasks, generator=torch.Generator().manual_seed(0))
    return TaskExport(card=card_with_tasks(card, tasks, checkpoint_tasks=len(existing)), state=grown,
                      grown_from=len(existing))
