"""Loading checkpoints safely: safetensors, or torch files with ``weights_only=True`` (never pickle).

Accepted: vitdeploy's own safetensors/.pt files, plain state dicts, dicts wrapping one under
``model``/``state_dict``, and official Segment Anything ``.pth`` files (their keys are ours).
A mismatch is an error that lists the first missing/unexpected keys and shape mismatches.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from vitdeploy.errors import CheckpointError

_WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")
_SHOW = 5


#: The metadata key under which ``vitdeploy.models.save_checkpoint`` stores how to rebuild the model.
RECIPE_KEY = "vitdeploy.recipe"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)[0]


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """-> (state dict, metadata): a safetensors file's string metadata, or the string entries beside
    the state dict of a torch file saved as ``{"state_dict": ..., "vitdeploy.recipe": "..."}``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; give a .safetensors, .pt or .pth file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = dict(handle.metadata() or {})
            return load_file(str(path), device="cpu"), metadata
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read {path} as safetensors ({exc}); is the file complete?") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types (UnpicklingError, RuntimeError, EOFError ...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"cannot read {path} as a torch checkpoint ({reason}); expected a state dict saved with torch.save "
            "or a .safetensors file (vitdeploy never unpickles arbitrary objects)"
        ) from exc
    metadata: dict[str, str] = {}
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                metadata = {k: v for k, v in obj.items() if isinstance(v, str)}
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors (or one under 'model'/'state_dict')")
    return obj, metadata


def load_state_dict(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Load ``state`` strictly, casting dtypes (an FP16 checkpoint loads into FP32 parameters)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:_SHOW])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:_SHOW])})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (e.g. {'; '.join(shapes[:_SHOW])})")
        raise CheckpointError(f"checkpoint {source} does not fit the model: {'; '.join(parts)}; "
                              "is it for this model name and size?")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def load_checkpoint(model: nn.Module, path: str | Path) -> None:
    load_state_dict(model, read_state_dict(path), source=str(path))


def load_shipped_weights(model: nn.Module, filename: str) -> None:
    """Weights shipped inside the package (``vitdeploy/models/weights/``), e.g. demo-detr."""
    ref = resources.files("vitdeploy.models") / "weights" / filename
    with resources.as_file(ref) as path:
        if not Path(path).is_file():
            raise CheckpointError(f"shipped weights {filename} are missing from the installed package; reinstall vitdeploy")
        load_checkpoint(model, path)


def state_sha256(model: nn.Module) -> str:
    """Digest of ``model``'s state dict (names, dtypes, shapes, values): the same weights, the same digest."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
