"""Task Attention Block head (DyTox): one learned token per task over the frozen patch tokens.

Every task token goes through the same class-attention block (``ClassAttentionBlock``, the one
CaiT uses) and attends to itself and to the patch tokens, never to another task's token; its
embedding feeds that task's own classifier (norm + linear). Tasks are added to a trained model
without touching the encoder, the block or the earlier tasks (``vitdeploy.models.tasks``).

The block runs once per task token (DyTox does the same) rather than once on all T tokens with
the token-token mask. Both compute the same function, but matmul kernels pick their blocking
from the row count, so in the batched form adding a task moves the earlier tasks' logits in the
last bits (up to 6e-7 measured with MKL); run per token, a task's arithmetic does not depend on
how many tasks there are, and adding one leaves the others' logits bit-for-bit equal. The price
is recomputing the patches' keys and values for every task.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from vitdeploy.errors import VitDeployError
from vitdeploy.models.heads.class_attention import ClassAttentionBlock

_TASK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Task:
    """One task: its name (its output is ``logits_<name>``) and its number of classes."""

    name: str
    num_classes: int


def check_tasks(tasks: Sequence[Task]) -> tuple[Task, ...]:
    """The tasks as a tuple, or a ``VitDeployError`` naming what is wrong with them."""
    tasks = tuple(tasks)
    if not tasks:
        raise VitDeployError("a Task Attention head needs at least 1 task")
    seen: set[str] = set()
    for task in tasks:
        if not _TASK_NAME.match(task.name):
            raise VitDeployError(f"task name {task.name!r} cannot name an output; use letters, digits and '_', "
                                 "starting with a letter (e.g. 'signs_eu')")
        if task.name in seen:
            raise VitDeployError(f"two tasks are named {task.name!r}; task names must be unique")
        seen.add(task.name)
        if task.num_classes < 1:
            raise VitDeployError(f"task {task.name!r} has {task.num_classes} classes; give 1 or more")
    return tasks


class TaskClassifier(nn.Module):
    """One task's classifier: task embedding (B, dim) -> logits (B, num_classes)."""

    def __init__(self, dim: int, num_classes: int, *, generator: torch.Generator | None = None):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.fc.weight, std=0.02, generator=generator)
        nn.init.zeros_(self.fc.bias)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(embedding))


class TabHead(nn.Module):
    """patches (B, N, dim) -> ``logits`` (B, sum of classes) and ``logits_<task>`` (B, classes) per task.

    ``logits`` is the tasks' logits concatenated in task order; ``output_names`` lists it first.
    """

    def __init__(self, dim: int, *, num_heads: int, tasks: Sequence[Task], fused_attention: bool = True):
        super().__init__()
        self.tasks = check_tasks(tasks)
        self.dim = dim
        self.task_tokens = nn.ParameterList()
        for _ in self.tasks:
            token = torch.zeros(1, 1, dim)
            nn.init.trunc_normal_(token, std=0.02)
            self.task_tokens.append(nn.Parameter(token))
        self.block = ClassAttentionBlock(dim, num_heads=num_heads, fused_attention=fused_attention)
        self.classifiers = nn.ModuleList(TaskClassifier(dim, task.num_classes) for task in self.tasks)

    @property
    def output_names(self) -> tuple[str, ...]:
        return ("logits", *(f"logits_{task.name}" for task in self.tasks))

    def append_task(self, task: Task, *, token: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Add ``task`` with its initial ``token`` (1, 1, dim) and a fresh classifier, in place."""
        tasks = check_tasks((*self.tasks, task))
        if tuple(token.shape) != (1, 1, self.dim):
            raise VitDeployError(f"a task token has shape (1, 1, {self.dim}), got {tuple(token.shape)}")
        like = self.task_tokens[0]
        self.task_tokens.append(nn.Parameter(token.detach().to(like)))
        self.classifiers.append(TaskClassifier(self.dim, task.num_classes, generator=generator).to(like))
        self.tasks = tasks

    def forward(self, patches: torch.Tensor, *, cls: torch.Tensor | None,
                grid: tuple[int, int]) -> dict[str, torch.Tensor]:
        b = patches.shape[0]
        per_task = []
        for token, classifier in zip(self.task_tokens, self.classifiers, strict=True):
            embedding = self.block(token.expand(b, -1, -1), patches)[:, 0]
            per_task.append(classifier(embedding))
        out = {"logits": torch.cat(per_task, dim=-1)}
        out.update({f"logits_{task.name}": logits for task, logits in zip(self.tasks, per_task, strict=True)})
        return out
