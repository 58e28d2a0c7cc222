"""Recordings: MCAP files and ROS 2 bags in, MCAP files that Foxglove opens out.

Reading (``open_recording``): an ``.mcap`` file (ROS 2 CDR or Foxglove protobuf messages), a ROS 2
bag folder or a ``.db3`` file. ``Recording.info()`` lists topics with types, counts, rates and time
spans; ``messages``/``frames`` iterate one image topic lazily; ``sample`` picks frames evenly over
the drive. Frames carry the recording's own clock: the header stamp, else the log time.

Writing (``RecordingWriter``): camera frames (JPEG, PNG or raw), 2D boxes as
``foxglove.ImageAnnotations``, 3D boxes as ``foxglove.SceneUpdate`` cubes, and a per-set status.

The MCAP, ROS 2 and protobuf libraries are the optional ``recordings`` extra, imported on first use
(``pip install "vitdeploy[recordings]"``).
"""

from vitdeploy.data.recordings.images import (
    CorruptFrameError,
    ImageMessageType,
    UnsupportedImageError,
    decode_compressed,
    raw_to_rgb,
)
from vitdeploy.data.recordings.info import RecordingInfo, TopicInfo
from vitdeploy.data.recordings.recording import ImageMessage, RecordedFrame, Recording, open_recording
from vitdeploy.data.recordings.writer import (
    BOXES_3D_TOPIC,
    STATUS_TOPIC,
    Box3D,
    ImageFormat,
    RecordingWriter,
    SetStatus,
    annotations_topic,
    image_topic,
)

__all__ = ["BOXES_3D_TOPIC", "STATUS_TOPIC", "Box3D", "CorruptFrameError", "ImageFormat", "ImageMessage",
           "ImageMessageType", "RecordedFrame", "Recording", "RecordingInfo", "RecordingWriter", "SetStatus",
           "TopicInfo", "UnsupportedImageError", "annotations_topic", "decode_compressed", "image_topic",
           "open_recording", "raw_to_rgb"]
