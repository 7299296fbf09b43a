"""Camera topics that carry H.264 / H.265 video (transport `foxglove`: foxglove_msgs/CompressedVideo on
<topic>/foxglove, as foxglove_compressed_video_transport names it; transport `ffmpeg`:
ffmpeg_image_transport_msgs/FFMPEGPacket on <topic>/ffmpeg, as ffmpeg_image_transport does).

Every packet is decoded on arrival, in order, by its camera's frames.video.VideoDecoder (a packet
skipped would damage the pictures after it); only the newest picture waits for the inference worker
(LatestFrames keeps one per camera), so the newest-frame policy holds for video too: decode every
packet, classify the newest picture. Pictures are turned into RGB only when the worker takes them.
A loss the middleware reports makes the camera's decoder wait for the next keyframe."""
from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from ffmpeg_image_transport_msgs.msg import FFMPEGPacket
from foxglove_msgs.msg import CompressedVideo
from std_msgs.msg import Header

from ..frames.video import VideoDecoder, VideoStats, codec_of, picture_to_rgb

# transport -> (message type, image_transport topic suffix)
VIDEO_TRANSPORTS = {'foxglove': (CompressedVideo, 'foxglove'), 'ffmpeg': (FFMPEGPacket, 'ffmpeg')}
MIN_QUEUE_DEPTH = 30        # a packet dropped from a full queue costs every picture up to the next keyframe


@dataclass(frozen=True)
class DecodedPicture:
    """A decoded picture waiting for the worker, with the header its outputs carry."""
    header: Header
    picture: Any                # av.VideoFrame

    def to_rgb(self) -> np.ndarray:
        return picture_to_rgb(self.picture)


def packet_header(msg) -> Header:
    """CompressedVideo has no header: its `timestamp` and `frame_id` make one."""
    if isinstance(msg, CompressedVideo):
        return Header(stamp=msg.timestamp, frame_id=msg.frame_id)
    return msg.header


def packet_codec(msg) -> str:
    return codec_of(msg.format if isinstance(msg, CompressedVideo) else msg.encoding)


class VideoInputs:
    """The decoders of the node's video cameras. packet() and lost() run on subscription callbacks
    (one camera's callbacks never overlap: the node's frames group hands a subscription's messages
    out one at a time); stats() on the diagnostics timer."""

    def __init__(self, hardware: str, max_pixels: int):
        self.hardware, self.max_pixels = hardware, max_pixels
        self._decoders: dict[str, VideoDecoder] = {}
        self._retired = VideoStats()        # decoders replaced when a camera's codec changed
        self._lock = threading.Lock()

    def packet(self, camera: str, msg) -> DecodedPicture | None:
        """Decode one packet of `camera`; its newest picture, or None while waiting for a keyframe.
        VideoError (a FrameError with a reason) for a packet that cannot be used."""
        codec = packet_codec(msg)
        decoder = self._decoders.get(camera)
        if decoder is None or decoder.codec != codec:
            fresh = VideoDecoder(codec, self.hardware, self.max_pixels)
            with self._lock:
                if decoder is not None:
                    self._add(self._retired, decoder.stats)
                self._decoders[camera] = decoder = fresh
        pictures = decoder.decode(msg.data.tobytes() if hasattr(msg.data, 'tobytes') else bytes(msg.data))
        return DecodedPicture(packet_header(msg), pictures[-1]) if pictures else None

    def lost(self, camera: str) -> None:
        decoder = self._decoders.get(camera)
        if decoder is not None:
            decoder.lost()

    def describe(self) -> dict[str, str]:
        return {camera: d.describe() for camera, d in list(self._decoders.items())}

    def stats(self) -> VideoStats:
        """Counts over every camera (and decoders since replaced)."""
        with self._lock:
            total = VideoStats(**{f.name: getattr(self._retired, f.name) for f in fields(VideoStats)})
            for d in self._decoders.values():
                self._add(total, d.stats)
        return total

    @staticmethod
    def _add(into: VideoStats, more: VideoStats) -> None:
        for f in fields(VideoStats):
            setattr(into, f.name, getattr(into, f.name) + getattr(more, f.name))
