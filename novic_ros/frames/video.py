"""H.264 and H.265 camera streams -> pictures, with PyAV (FFmpeg's decoders), keyframe-aware.

A video stream is a chain: each packet (one picture's NAL units, Annex B) may refer to pictures
before it, back to the last keyframe (IDR/IRAP). So, per stream:

- Every packet is decoded, in order (the caller classifies only the newest picture; skipping a
  packet would break the ones after it).
- Packets before the first keyframe cannot be decoded: they are counted (`before_keyframe`) and
  skipped, and decoding starts at the first keyframe (with its parameter sets).
- A packet known to be lost (the caller says so: the middleware reported it, lost()), a gap in
  H.264's frame_num (a reference picture is missing: FFmpeg's H.264 decoder would go on and
  output damaged pictures), a picture the decoder swallowed after it had given one per packet
  (FFmpeg's HEVC decoder drops what lacks its references), a decode error, or a picture FFmpeg
  flags corrupt (damaged slice data in H.264; FFmpeg's HEVC decoder does not flag it), means the pictures
  after it are damaged until the next keyframe: they are skipped (`after_loss`) and decoding
  starts again there (`recoveries`).
- What a packet may cost is bounded: FFmpeg's own `max_pixels` option refuses a stream whose
  parameter sets declare a picture larger than `max_pixels` before it allocates anything for it
  (reason 'too large'); the packet size is bounded by the middleware's message.

Keyframes are recognised from the bitstream itself (H.264 NAL type 5 IDR; H.265 NAL types 16-23,
IRAP), so foxglove_msgs/CompressedVideo (which carries no flag) and
ffmpeg_image_transport_msgs/FFMPEGPacket (whose flags may say so too) are handled alike.

Hardware decoding: `hardware` 'auto' tries the device types PyAV's FFmpeg was built with (cuda,
vaapi, qsv, videotoolbox, d3d11va) and decodes in software when none opens or the hardware cannot
handle the stream; a device type names one; 'software' never tries. ROS-free.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

import numpy as np

from ..core.errors import FrameError
from ..params import DEFAULT_MAX_PIXELS, VIDEO_HARDWARE

log = logging.getLogger(__name__)

CODECS = ('h264', 'h265')
FFMPEG_DECODER = {'h264': 'h264', 'h265': 'hevc'}
HARDWARE = VIDEO_HARDWARE           # the video_decoding parameter's choices
AUTO_ORDER = ('cuda', 'vaapi', 'qsv', 'videotoolbox', 'd3d11va')
# Encoder names ffmpeg_image_transport 1.x writes into FFMPEGPacket.encoding, and the codec they encode.
ENCODER_CODECS = {'libx264': 'h264', 'libx264rgb': 'h264', 'libopenh264': 'h264', 'libx265': 'h265',
                  'libkvazaar': 'h265', 'h264': 'h264', 'h265': 'h265', 'hevc': 'h265', 'avc': 'h264'}
H264_IDR, H264_SPS = 5, 7
H265_IRAP = range(16, 24)


class VideoError(FrameError):
    """A packet or stream that cannot be decoded; `reason` is a short category for counting."""
    default_reason = 'cannot be decoded'


def codec_of(name: str) -> str:
    """'h264' or 'h265' for a CompressedVideo format ('h264', 'h265', 'hevc') or an FFMPEGPacket
    encoding (an encoder name as ffmpeg_image_transport 1.x writes it, 'libx264', 'h264_nvenc',
    'hevc_vaapi', ..., or 2.x's 'codec;pixel format;...'); VideoError (reason 'unsupported video
    format') for anything else, vp9 and av1 included."""
    first = (name or '').split(';')[0].strip().lower()
    codec = ENCODER_CODECS.get(first) or ENCODER_CODECS.get(first.split('_')[0])
    if codec is None:
        raise VideoError(f"video format {name!r} is not supported: novic_ros decodes h264 and h265 (hevc) "
                         "streams; have the camera encode one of those (e.g. encoder libx264)",
                         reason='unsupported video format')
    return codec


def nal_units(data: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex B byte stream (start codes 00 00 01 / 00 00 00 01 removed)."""
    starts, i, n = [], 0, len(data)
    while True:
        i = data.find(b'\x00\x00\x01', i)
        if i < 0:
            break
        starts.append(i + 3)
        i += 3
    for k, s in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else n
        while end > s and data[end - 1] == 0 and k + 1 < len(starts):     # a 4-byte start code's leading zero
            end -= 1
        if end > s:
            yield data[s:end]


def nal_type(codec: str, nal: bytes) -> int:
    return nal[0] & 0x1F if codec == 'h264' else (nal[0] >> 1) & 0x3F


def is_keyframe(codec: str, data: bytes) -> bool:
    """Whether the packet holds a picture that starts a chain (H.264 IDR, H.265 IRAP)."""
    for nal in nal_units(data):
        t = nal_type(codec, nal)
        if codec == 'h264' and t == H264_IDR or codec == 'h265' and t in H265_IRAP:
            return True
    return False


class _Bits:
    """An RBSP bit reader (emulation prevention bytes removed) for the few header fields needed."""

    def __init__(self, nal: bytes, skip_bytes: int):
        self.data = nal[skip_bytes:].replace(b'\x00\x00\x03', b'\x00\x00')
        self.pos = 0

    def bit(self) -> int:
        byte = self.pos >> 3
        if byte >= len(self.data):
            raise ValueError('header cut short')
        b = (self.data[byte] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return b

    def bits(self, n: int) -> int:
        v = 0
        for _ in range(n):
            v = (v << 1) | self.bit()
        return v

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError('bad exp-Golomb code')
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def h264_sps_frame_num_bits(nal: bytes) -> tuple[int, int]:
    """(seq_parameter_set_id, bits of frame_num) from an H.264 SPS NAL unit (ITU-T H.264 7.3.2.1.1)."""
    r = _Bits(nal, 1)
    profile = r.bits(8)
    r.bits(16)                          # constraint flags, level
    sps_id = r.ue()
    if profile in HIGH_PROFILES:
        chroma = r.ue()
        if chroma == 3:
            r.bit()
        r.ue(), r.ue(), r.bit()         # bit depths, qpprime_y_zero_transform_bypass
        if r.bit():                     # seq_scaling_matrix_present
            for i in range(8 if chroma != 3 else 12):
                if r.bit():
                    last = nxt = 8
                    for _ in range(16 if i < 6 else 64):
                        if nxt:
                            nxt = (last + r.se() + 256) % 256
                        last = nxt or last
    return sps_id, r.ue() + 4


class H264Gaps:
    """frame_num bookkeeping (H.264 8.2.5.2): a reference picture whose frame_num is neither the
    previous reference picture's nor one more means reference pictures were lost. A lost
    non-reference picture is not detected, and needs not be: nothing refers to it."""

    def __init__(self):
        self.bits: dict[int, int] = {}          # SPS id -> bits of frame_num
        self.pps_sps: dict[int, int] = {}       # PPS id -> its SPS id
        self.prev: int | None = None            # PrevRefFrameNum

    def reset(self) -> None:
        self.prev = None

    def gap(self, data: bytes) -> bool:
        """Read the packet's parameter sets and first slice; True when frame_num jumps."""
        for nal in nal_units(data):
            t = nal[0] & 0x1F
            try:
                if t == H264_SPS:
                    sps_id, bits = h264_sps_frame_num_bits(nal)
                    self.bits[sps_id] = bits
                elif t == 8:                    # PPS: pic_parameter_set_id, seq_parameter_set_id
                    r = _Bits(nal, 1)
                    pps_id = r.ue()
                    self.pps_sps[pps_id] = r.ue()
                elif t in (1, 5):
                    r = _Bits(nal, 1)
                    r.ue(), r.ue()              # first_mb_in_slice, slice_type
                    bits = self.bits.get(self.pps_sps.get(r.ue(), -1))
                    if bits is None:
                        return False            # parameter sets not seen: nothing to compare
                    frame_num = r.bits(bits)
                    reference = (nal[0] >> 5) & 3 != 0
                    return self._check(frame_num, t == H264_IDR, reference, 1 << bits)
            except ValueError:
                return False                    # an unreadable header: the decoder will say more
        return False

    def _check(self, frame_num: int, idr: bool, reference: bool, modulo: int) -> bool:
        if idr or self.prev is None:
            gap = False
        else:
            gap = frame_num not in (self.prev, (self.prev + 1) % modulo)
        if reference or idr:
            self.prev = frame_num
        return gap


@dataclass
class VideoStats:
    packets: int = 0                # packets handed to decode()
    pictures: int = 0               # pictures decoded
    before_keyframe: int = 0        # packets skipped before the stream's first keyframe
    losses: int = 0                 # losses noticed (told, frame_num gaps, decode errors)
    after_loss: int = 0             # packets skipped after a loss, until the next keyframe
    recoveries: int = 0             # keyframes decoding started again at after a loss
    errors: int = 0                 # packets FFmpeg could not decode


@lru_cache(maxsize=None)
def _hardware_usable(device: str) -> str | None:
    """None when a decoder on `device` can be made here, else why not (tried once per process)."""
    import av.codec.hwaccel as hw
    if device not in hw.hwdevices_available():
        return f"this FFmpeg build has no {device} support (it has: {', '.join(hw.hwdevices_available()) or 'none'})"
    try:
        import av
        av.CodecContext.create('h264', 'r', hwaccel=hw.HWAccel(device_type=device, allow_software_fallback=True))
    except Exception as e:  # noqa: BLE001 -- PyAV raises OSError subclasses, ValueError, ...
        return f"{device}: {e}"
    return None


class VideoDecoder:
    """One stream's decoder (module docstring). Not thread-safe: one caller per stream."""

    def __init__(self, codec: str, hardware: str = 'auto', max_pixels: int = DEFAULT_MAX_PIXELS):
        import av       # PyAV loads FFmpeg's libraries; only video input needs them
        import av.codec.hwaccel as hw
        if codec not in CODECS:
            raise VideoError(f"codec {codec!r} is not one of {', '.join(CODECS)}", reason='unsupported video format')
        if hardware not in HARDWARE:
            raise ValueError(f"hardware {hardware!r} is not one of {', '.join(HARDWARE)}")
        self.codec, self.max_pixels = codec, max_pixels
        self.stats = VideoStats()
        self.device = self._device(hardware)
        accel = hw.HWAccel(device_type=self.device, allow_software_fallback=True) if self.device else None
        self._av = av
        self._ctx = av.CodecContext.create(FFMPEG_DECODER[codec], 'r', hwaccel=accel)
        # FFmpeg checks a declared picture size against this before it allocates for it; one thread:
        # frame threading would hold each picture back by as many packets as it has threads.
        self._ctx.options = {'max_pixels': str(int(max_pixels))}
        self._ctx.thread_count = 1
        self._gaps = H264Gaps() if codec == 'h264' else None
        self._waiting = True            # for the first keyframe, or the next one after a loss
        self._started = False
        self._producing = False         # pictures came out since decoding (re)started

    @staticmethod
    def _device(hardware: str) -> str | None:
        if hardware == 'software':
            return None
        candidates = AUTO_ORDER if hardware == 'auto' else (hardware,)
        reasons = []
        for device in candidates:
            why = _hardware_usable(device)
            if why is None:
                return device
            reasons.append(why)
        if hardware != 'auto':
            log.warning("hardware video decoding on %s is not available (%s); decoding in software", hardware,
                        '; '.join(reasons))
        return None

    def describe(self) -> str:
        where = 'software'
        if self.device is not None:
            where = self.device if getattr(self._ctx, 'is_hwaccel', False) else f"software ({self.device} fallback)"
        return f"{self.codec}, {where}"

    def lost(self) -> None:
        """A packet of this stream is known to be lost: skip until the next keyframe."""
        if self._started and not self._waiting:
            self.stats.losses += 1
            self._waiting = True

    def decode(self, data: bytes) -> list:
        """Decode one packet; the pictures it completes (av.VideoFrame, usually one, none while
        waiting for a keyframe). VideoError for a packet FFmpeg refuses (then the stream waits
        for the next keyframe)."""
        self.stats.packets += 1
        data = bytes(data)
        key = is_keyframe(self.codec, data)
        if self._gaps is not None:
            if key:
                self._gaps.reset()
            if self._gaps.gap(data) and not self._waiting:
                self.stats.losses += 1
                self._waiting = True
        if self._waiting:
            if not key:
                if self._started:
                    self.stats.after_loss += 1
                else:
                    self.stats.before_keyframe += 1
                return []
            if self._started:
                self.stats.recoveries += 1
            self._waiting, self._started = False, True
            self._producing = False
        try:
            frames = self._ctx.decode(self._av.Packet(data))
        except self._av.error.FFmpegError as e:
            self.stats.errors += 1
            self.stats.losses += 1
            self._waiting = True
            reason = 'too large' if self._too_large() else 'cannot be decoded'
            detail = (f"the stream declares {self._ctx.width}x{self._ctx.height} pixels, more than max_pixels "
                      f"{self.max_pixels}" if reason == 'too large' else str(e))
            raise VideoError(f"{self.codec} packet cannot be decoded ({detail}); waiting for the next keyframe",
                             reason=reason) from e
        if any(f.is_corrupt for f in frames):
            # FFmpeg concealed damage in this picture (H.264 flags it), and later ones refer to it.
            self.stats.errors += 1
            self.stats.losses += 1
            self._waiting = True
            raise VideoError(f"{self.codec} packet is damaged (FFmpeg flagged its picture corrupt); waiting for "
                             "the next keyframe", reason='cannot be decoded')
        if frames:
            self._producing = True
        elif self._producing and self._has_picture(data):
            # The decoder gave pictures for every packet since the keyframe and now swallowed one:
            # it is dropping pictures whose references are missing (FFmpeg's HEVC decoder does
            # until the next keyframe). Count the loss, and skip to that keyframe.
            self.stats.losses += 1
            self.stats.after_loss += 1
            self._waiting = True
        self.stats.pictures += len(frames)
        return frames

    def _has_picture(self, data: bytes) -> bool:
        """Whether the packet holds a coded picture (a VCL NAL unit), not just parameter sets or SEI."""
        vcl = range(1, 6) if self.codec == 'h264' else range(0, 32)
        return any(nal_type(self.codec, n) in vcl for n in nal_units(data))

    def _too_large(self) -> bool:
        return self._ctx.width * self._ctx.height > self.max_pixels


def picture_to_rgb(picture) -> np.ndarray:
    """A decoded picture (av.VideoFrame) as HxWx3 uint8 RGB."""
    return picture.to_ndarray(format='rgb24')


class VideoEncoder:
    """Frames -> an H.264 or H.265 packet stream as cameras stream it (Annex B, no B-frames, a
    keyframe every `keyframe_interval` pictures, each keyframe with its parameter sets): what
    make-bag and the tests publish. libx264 / libx265 through PyAV."""

    def __init__(self, codec: str, width: int, height: int, rate_hz: float = 10.0, keyframe_interval: int = 10,
                 crf: int = 23):
        import fractions

        import av
        if codec not in CODECS:
            raise VideoError(f"codec {codec!r} is not one of {', '.join(CODECS)}", reason='unsupported video format')
        if width % 2 or height % 2:
            raise VideoError(f"{codec} in 4:2:0 needs an even width and height, got {width}x{height}",
                             reason='invalid size')
        self.codec = codec
        self._ctx = av.CodecContext.create('libx264' if codec == 'h264' else 'libx265', 'w')
        self._ctx.width, self._ctx.height, self._ctx.pix_fmt = width, height, 'yuv420p'
        self._ctx.time_base = fractions.Fraction(1, 1000)
        self._ctx.framerate = fractions.Fraction(rate_hz).limit_denominator(1000)
        g = str(int(keyframe_interval))
        if codec == 'h264':
            self._ctx.options = {'preset': 'veryfast', 'tune': 'zerolatency', 'g': g, 'bf': '0', 'crf': str(crf),
                                 'x264-params': 'repeat-headers=1:scenecut=0'}
        else:
            self._ctx.options = {
                'preset': 'veryfast',
                'tune': 'zerolatency',
                'crf': str(crf),
                'x265-params': f'keyint={g}:min-keyint={g}:scenecut=0:bframes=0:repeat-headers=1:log-level=error',
            }
        self._av = av
        self._count = 0

    def encode(self, rgb: np.ndarray) -> list[bytes]:
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format='rgb24')
        frame.pts = self._count
        self._count += 1
        return [bytes(p) for p in self._ctx.encode(frame)]

    def flush(self) -> list[bytes]:
        return [bytes(p) for p in self._ctx.encode(None)]
