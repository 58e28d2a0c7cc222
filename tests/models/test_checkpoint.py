import pytest
import torch
from safetensors.torch import save_file

from vitdeploy.errors import CheckpointError
from vitdeploy.models.checkpoint import load_checkpoint
from vitdeploy.models.zoo import build_model


def _pair():
    src = build_model("vit-test-detr")
    dst = build_model("vit-test-detr")
    return src, dst


def test_safetensors_fp16_loads_and_casts(tmp_path):
    src, dst = _pair()
    path = tmp_path / "w.safetensors"
    save_file({k: v.half().contiguous() for k, v in src.state_dict().items()}, str(path))
    load_checkpoint(dst, path)
    w = dst.state_dict()["head.class_embed.weight"]
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, src.state_dict()["head.class_embed.weight"].half().float())


def test_torch_file_wrapped_in_model_key(tmp_path):
    src, dst = _pair()
    path = tmp_path / "w.pt"
    torch.save({"model": src.state_dict(), "epoch": 3}, path)
    load_checkpoint(dst, path)
    torch.testing.assert_close(dst.state_dict()["encoder.pos_embed"], src.state_dict()["encoder.pos_embed"])


class Evil:
    """Stands for any pickled object that is not a tensor."""


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": Evil()}, path)
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_checkpoint(build_model("vit-test-cls"), path)


def test_missing_and_corrupt(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(build_model("vit-test-cls"), tmp_path / "nope.pt")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="cannot read .* as safetensors"):
        load_checkpoint(build_model("vit-test-cls"), bad)
    bad_pt = tmp_path / "bad.pt"
    bad_pt.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read .* as a torch checkpoint"):
        load_checkpoint(build_model("vit-test-cls"), bad_pt)


def test_mismatch_lists_keys_and_shapes(tmp_path):
    src = build_model("vit-test-detr").state_dict()
    src.pop("head.class_embed.bias")
    src["extra.weight"] = torch.zeros(1)
    src["head.box_embed.out.weight"] = torch.zeros(5, 64)
    path = tmp_path / "w.pt"
    torch.save(src, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(build_model("vit-test-detr"), path)
    msg = str(info.value)
    assert "1 missing (e.g. head.class_embed.bias)" in msg
    assert "1 unexpected (e.g. extra.weight)" in msg
    assert "head.box_embed.out.weight (5, 64) vs model (4, 64)" in msg
