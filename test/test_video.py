"""H.264 / H.265 decoding (frames/video.py): toy frames encoded with PyAV's libx264 / libx265 come
back as pictures; a stream joined mid-way starts at its first keyframe; a lost packet is noticed and
decoding recovers at the next keyframe; damaged, oversized or unsupported input is refused with its
reason and costs nothing after."""
from __future__ import annotations

import numpy as np
import pytest

from novic_ros.frames.video import (VideoDecoder, VideoEncoder, VideoError, codec_of, is_keyframe,
                                    picture_to_rgb)
from novic_ros.training.toy_sequences import render_sequence

KEYFRAMES = 10


@pytest.fixture(scope='module')
def frames():
    return [f.image for f in render_sequence(frames=30, size=(240, 320), seed=3)]


@pytest.fixture(scope='module', params=['h264', 'h265'])
def stream(request, frames):
    enc = VideoEncoder(request.param, 320, 240, keyframe_interval=KEYFRAMES)
    packets = []
    for f in frames:
        out = enc.encode(f)
        assert len(out) == 1        # zero latency: one packet per picture, as cameras stream
        packets += out
    assert not enc.flush()
    return request.param, packets


def decode_all(decoder, packets):
    return [decoder.decode(p) for p in packets]


def test_every_packet_gives_its_picture(stream, frames):
    codec, packets = stream
    assert [i for i, p in enumerate(packets) if is_keyframe(codec, p)] == [0, 10, 20]
    decoder = VideoDecoder(codec, 'software')
    out = decode_all(decoder, packets)
    assert [len(o) for o in out] == [1] * len(packets)
    for pics, frame in zip(out, frames):
        rgb = picture_to_rgb(pics[0])
        assert rgb.shape == frame.shape and rgb.dtype == np.uint8
        assert np.abs(rgb.astype(int) - frame).mean() < 12        # lossy, but the same picture
    assert decoder.stats.pictures == 30 and decoder.stats.losses == 0 and decoder.describe() == f"{codec}, software"


def test_a_stream_joined_mid_way_starts_at_its_first_keyframe(stream):
    codec, packets = stream
    decoder = VideoDecoder(codec, 'software')
    out = decode_all(decoder, packets[3:])
    assert [len(o) for o in out] == [0] * 7 + [1] * 20
    assert decoder.stats.before_keyframe == 7 and decoder.stats.losses == 0


def test_a_lost_packet_is_noticed_and_decoding_recovers_at_the_next_keyframe(stream, frames):
    codec, packets = stream
    decoder = VideoDecoder(codec, 'software')
    kept = [i for i in range(len(packets)) if i != 13]          # a reference picture of the second chain
    out = dict(zip(kept, decode_all(decoder, [packets[i] for i in kept])))
    assert all(len(out[i]) == 1 for i in range(13)), "pictures before the loss are decoded"
    assert all(not out[i] for i in range(14, 20)), "pictures that refer to the lost one are skipped"
    assert all(len(out[i]) == 1 for i in range(20, 30)), "the next keyframe recovers"
    s = decoder.stats
    assert (s.losses, s.recoveries, s.after_loss) == (1, 1, 6)
    assert np.abs(picture_to_rgb(out[20][0]).astype(int) - frames[20]).mean() < 12


def test_a_loss_the_middleware_reports_waits_for_the_next_keyframe(stream):
    codec, packets = stream
    decoder = VideoDecoder(codec, 'software')
    decode_all(decoder, packets[:5])
    decoder.lost()
    out = decode_all(decoder, packets[5:12])
    assert [len(o) for o in out] == [0] * 5 + [1, 1] and decoder.stats.recoveries == 1


def test_damaged_and_oversized_streams_are_refused_with_their_reason(stream):
    codec, packets = stream
    if codec == 'h264':             # FFmpeg flags concealed damage in H.264 pictures (not in H.265 ones)
        decoder = VideoDecoder(codec, 'software')
        decoder.decode(packets[0])
        damaged = bytearray(packets[1])
        damaged[len(damaged) // 3:] = bytes(len(damaged) - len(damaged) // 3)    # zeroed: no valid slice data
        with pytest.raises(VideoError) as info:
            decoder.decode(bytes(damaged))
        assert info.value.reason == 'cannot be decoded'
        # Nothing that refers to the damaged picture is shown: decoding starts again at the next keyframe.
        assert [len(decoder.decode(p)) for p in packets[2:11]] == [0] * 8 + [1]
        assert decoder.stats.errors == 1 and decoder.stats.recoveries == 1
    small = VideoDecoder(codec, 'software', max_pixels=320 * 240 - 1)
    with pytest.raises(VideoError) as info:
        small.decode(packets[0])
    assert info.value.reason == 'too large' and 'max_pixels' in str(info.value)
    noise = VideoDecoder(codec, 'software')
    assert noise.decode(b'\x00\x00\x01' + bytes(range(256)) * 4) == [] and noise.stats.before_keyframe == 1
    assert len(noise.decode(packets[0])) == 1         # and the stream still starts at its keyframe


def test_formats_and_encoders_map_to_codecs_and_others_are_refused():
    assert [codec_of(n) for n in ('h264', 'H265', 'hevc', 'libx264', 'h264_nvenc', 'hevc_vaapi', 'libx265',
                                  'h264;yuv420p;bgr8;bgr8')] == ['h264', 'h265', 'h265', 'h264', 'h264', 'h265',
                                                                 'h265', 'h264']
    for name in ('vp9', 'av1', '', 'mjpeg'):
        with pytest.raises(VideoError) as info:
            codec_of(name)
        assert info.value.reason == 'unsupported video format' and 'h264' in str(info.value)


def test_hardware_that_is_not_there_falls_back_to_software(stream, caplog):
    codec, packets = stream
    decoder = VideoDecoder(codec, 'cuda')          # no GPU here: FFmpeg cannot open the device
    assert len(decoder.decode(packets[0])) == 1
    assert 'software' in decoder.describe()
    with pytest.raises(ValueError, match="hardware 'quantum' is not one of auto, software"):
        VideoDecoder(codec, 'quantum')
