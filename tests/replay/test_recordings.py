"""Finding recordings from --data: globs, folders, list files, file:// URIs, and what each is."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from vitdeploy.errors import DataError
from vitdeploy.replay import RecordingKind, find_recordings


def touch_video(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"video")  # finding looks at names only; opening is the run's business
    return path


def image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((4, 4, 3), np.uint8))


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "archive"
    touch_video(root / "a.mp4")
    for i in range(2):
        image(root / "seq" / f"{i:03d}.png")
    touch_video(root / "rig" / "front.mp4")
    image(root / "rig" / "left" / "000.jpg")
    touch_video(root / "rig" / "notes.txt")  # neither a video nor an image folder: not a camera
    (root / "coco").mkdir()
    (root / "coco" / "annotations.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    (root / "drive.mcap").write_bytes(b"\x89MCAP0\r\n")
    return root


def test_a_folder_is_its_entries_each_a_recording_of_its_kind(archive):
    found = {r.id: r for r in find_recordings(archive)}
    assert {k: r.kind for k, r in found.items()} == {
        "a": RecordingKind.VIDEO, "seq": RecordingKind.IMAGES, "rig": RecordingKind.CAMERAS,
        "coco": RecordingKind.COCO, "drive": RecordingKind.RECORDING}
    assert [c.name for c in found["rig"].cameras] == ["front", "left"]
    assert found["rig"].cameras[0].source == str(archive / "rig" / "front.mp4")
    assert found["a"].cameras[0].name == "a" and found["a"].path.is_absolute()
    assert found["coco"].labelled and not found["a"].labelled


def test_a_folder_that_is_one_recording_is_that_recording(archive):
    (only,) = find_recordings(archive / "seq")
    assert only.kind is RecordingKind.IMAGES and only.id == "seq"
    (coco,) = find_recordings(archive / "coco")
    assert coco.kind is RecordingKind.COCO


def test_globs_and_list_files_name_one_recording_per_match_or_line(archive, tmp_path):
    assert [r.id for r in find_recordings(str(archive / "r*"))] == ["rig"]
    listing = tmp_path / "drives.txt"
    listing.write_text(f"# two drives\n\narchive/a.mp4\nfile://{archive / 'rig'}\n")
    found = find_recordings(listing)
    assert [(r.id, r.kind) for r in found] == [("a", RecordingKind.VIDEO), ("rig", RecordingKind.CAMERAS)]
    # several --data values, the same recording twice: once
    assert [r.id for r in find_recordings([listing, archive / "a.mp4"])] == ["a", "rig"]


def test_recordings_of_the_same_name_get_distinct_ids(tmp_path):
    touch_video(tmp_path / "day1" / "drive.mp4")
    touch_video(tmp_path / "day2" / "drive.mp4")
    ids = [r.id for r in find_recordings(str(tmp_path / "day*" / "drive.mp4"))]
    assert len(set(ids)) == 2 and all(i.startswith("drive-") for i in ids)


def test_what_is_not_a_recording_is_a_one_line_error(archive, tmp_path):
    with pytest.raises(DataError, match="matches no file"):
        find_recordings(str(tmp_path / "none*.mp4"))
    with pytest.raises(DataError, match="no such file or folder"):
        find_recordings(tmp_path / "missing")
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(DataError, match="no recording vitdeploy replays"):
        find_recordings(tmp_path / "x.csv")
    listing = tmp_path / "remote.txt"
    listing.write_text(f"{archive / 'a.mp4'}\ns3://bucket/drive.mp4\n")
    with pytest.raises(DataError, match=r"remote.txt:2: .*only local paths and file:// URIs"):
        find_recordings(listing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no recordings"):
        find_recordings(tmp_path / "empty")
