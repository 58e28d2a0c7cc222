"""`vitdeploy bench --runtime`: the whole pipeline free-running on video files against decoding
them alone, on a small fused bundle (a fraction of a second per round)."""

from __future__ import annotations

import json

import pytest

from vitdeploy.bench import runtime as rt

SOURCE = (72, 128)


@pytest.fixture(scope="module")
def fused(exported):
    return exported("vit-test-detr", max_cameras=2, fuse_preprocess=True, source_size=SOURCE,
                    source_channel_order="BGR")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return rt.generated_videos(tmp_path_factory.mktemp("videos"), cameras=2, size=SOURCE, frames=8)


def test_generated_videos_are_made_once_at_the_asked_size(tmp_path):
    paths = rt.generated_videos(tmp_path, cameras=2, size=SOURCE, frames=3)
    assert [p.name for p in paths] == ["cam0.mp4", "cam1.mp4"]
    assert all(f.shape == (*SOURCE, 3) for f in rt.first_frames(paths))
    stamp = paths[0].stat().st_mtime_ns
    assert rt.generated_videos(tmp_path, cameras=2, size=SOURCE, frames=3) == paths
    assert paths[0].stat().st_mtime_ns == stamp  # reused, not made again
    assert not list(tmp_path.rglob("*.tmp.mp4"))


def test_runtime_mode_with_a_stand_in_compares_with_decode_only(invoke, fused, videos, tmp_path):
    out = tmp_path / "runtime.json"
    r = invoke("bench", fused.path, "--runtime", "--videos", ",".join(map(str, videos)), "--stand-in-ms", "2",
               "--duration", "0.6", "--rounds", "1", "--json", out)
    assert r.exit_code == 0, r.output
    assert "decode-only" in r.output and "ratio" in r.output and "CPU ms/set by thread" in r.output
    raw = json.loads(out.read_text())
    assert raw["cameras"] == 2 and raw["frame_size"] == list(SOURCE) and raw["backend"] == "stand-in 2 ms"
    (only,) = raw["rounds"]
    assert only["sets"] > 0 and only["sets_per_s"] > 0 and only["decode_before"] > 0 and only["decode_after"] > 0
    assert only["ratio"] == pytest.approx(only["sets_per_s"] / ((only["decode_before"] + only["decode_after"]) / 2))
    # a JSONL-only rig: the decoders wrote into the model's batch
    assert only["zero_copy_sets"] > 0 and "cameras (decode)" in only["cpu_ms_by_thread"]
    # the stand-in ran 2 ms per set: it cannot go faster than 500 sets/s
    assert only["sets_per_s"] < 520 and only["stage_p50_ms"]["infer"] >= 1.9


def test_runtime_mode_runs_the_real_backend(invoke, fused, videos):
    r = invoke("bench", fused.path, "--runtime", "--videos", ",".join(map(str, videos)), "--backend", "onnxruntime",
               "--duration", "0.5", "--rounds", "1")
    assert r.exit_code == 0, r.output
    assert "onnxruntime" in r.output and "ratio" in r.output


@pytest.mark.parametrize(("extra", "said"), [
    (["--stand-in-ms", "2"], "add --runtime"),
    (["--runtime", "--videos", "nowhere.mp4"], "nowhere.mp4 does not exist"),
    (["--runtime", "--stand-in-ms", "2", "--backend", "torch"], "not both"),
    (["--runtime", "--cameras", "1,2"], "one camera count"),
    (["--runtime", "--cameras", "5"], "takes 1..2 cameras"),
    (["--runtime", "--rounds", "0"], "--rounds >= 1"),
    (["--runtime", "--backend", "onnxruntime,torch", "--videos", "{v}"], "one backend at one precision"),
])
def test_runtime_mode_refuses_what_it_cannot_do_in_one_line(invoke, fused, videos, extra, said):
    args = [a.replace("{v}", str(videos[0])) for a in extra]
    r = invoke("bench", fused.path, *args)
    assert r.exit_code == 1 and said in r.output and "Traceback" not in r.output, r.output
