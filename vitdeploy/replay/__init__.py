"""Fleet replay: a bundle over many recordings at several precisions, on Ray or in one process.

``replay(bundle, recordings, options=ReplayOptions(out=...))`` is `vitdeploy replay`; each
recording is replayed by ``replay_recording`` — plain Python, the same free-running `run_rig` as
`vitdeploy run` — which Ray only schedules (DESIGN.md decision 10). Ray is the optional ``replay``
extra, imported only when a replay runs on it.
"""

from vitdeploy.replay.fleet import ReplayOptions, replay, replay_settings
from vitdeploy.replay.jsonl import detection_view, detection_views
from vitdeploy.replay.recording_run import RecordingResult, ReplaySettings, replay_recording
from vitdeploy.replay.recordings import RecordedCamera, Recording, RecordingKind, find_recordings
from vitdeploy.replay.report import ReplayReport
from vitdeploy.replay.rigs import recording_rig

__all__ = ["RecordedCamera", "Recording", "RecordingKind", "RecordingResult", "ReplayOptions", "ReplayReport",
           "ReplaySettings", "detection_view", "detection_views", "find_recordings", "recording_rig", "replay",
           "replay_recording", "replay_settings"]
