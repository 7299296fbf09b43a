"""Tests for novic_ros.frames.conversion and novic_ros.frames.overlay (no ROS needed
except for the one sensor_msgs test, which is skipped where sensor_msgs is missing)."""
from __future__ import annotations

import array
import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from novic_ros.core.errors import FrameError
from novic_ros.frames.conversion import (
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    compressed_to_rgb,
    encode_compressed,
    raw_to_rgb,
    rgb_to_raw,
)
from novic_ros.frames.overlay import draw_labels

EXACT = ('rgb8', 'bgr8', 'rgba8', 'bgra8', '8UC3')
MONO = ('mono8', 'mono16', '8UC1', '16UC1')
YUV = ('yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv')
H, W = 24, 32


def _random_rgb(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _smooth_rgb(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """Random but spatially smooth, so 4:2:2 chroma subsampling loses little."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(30, 226, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
    img = Image.fromarray(coarse.astype(np.uint8)).resize((w, h), Image.BILINEAR)
    return np.asarray(img).copy()


def _luma(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return np.rint(0.299 * r + 0.587 * g + 0.114 * b)


def _bpp(encoding: str) -> int:
    return {'rgb8': 3, 'bgr8': 3, '8UC3': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1,
            '8UC1': 1, 'mono16': 2, '16UC1': 2}.get(encoding, 2)


def _roundtrip(rgb: np.ndarray, encoding: str, padding: int, **kw) -> np.ndarray:
    data, step = rgb_to_raw(rgb, encoding, row_padding=padding, **kw)
    h, w = rgb.shape[:2]
    assert step == w * _bpp(encoding) + padding
    assert len(data) == step * h
    if padding:
        # Garbage in the padding must be ignored, not decoded.
        buf = bytearray(data)
        for row in range(h):
            buf[row * step + step - padding:(row + 1) * step] = b'\xab' * padding
        data = bytes(buf)
    out = raw_to_rgb(encoding, h, w, step, data, int(kw.get('is_bigendian', False)))
    assert out.shape == (h, w, 3)
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous
    return out


def test_supported_encodings_cover_brief():
    for name in ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', 'yuv422',
                 'yuv422_yuy2', 'yuyv', '8UC3', '8UC1', '16UC1'):
        assert name in SUPPORTED_ENCODINGS


@pytest.mark.parametrize('padding', [0, 5])
@pytest.mark.parametrize('encoding', EXACT)
def test_colour_roundtrip_is_exact(encoding, padding):
    rgb = _random_rgb()
    np.testing.assert_array_equal(_roundtrip(rgb, encoding, padding), rgb)


@pytest.mark.parametrize('padding', [0, 3])
@pytest.mark.parametrize('encoding', MONO)
def test_mono_roundtrip_is_luma(encoding, padding):
    rgb = _random_rgb()
    out = _roundtrip(rgb, encoding, padding)
    expected = _luma(rgb)
    assert np.abs(out[..., 0].astype(np.int32) - expected).max() <= 1
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


@pytest.mark.parametrize('padding', [0, 6])
@pytest.mark.parametrize('encoding', YUV)
def test_yuv_roundtrip_is_close(encoding, padding):
    rgb = _smooth_rgb()
    out = _roundtrip(rgb, encoding, padding)
    assert np.abs(out.astype(np.int32) - rgb).mean() < 3


@pytest.mark.parametrize('encoding', YUV)
@pytest.mark.parametrize('colour', [(255, 0, 0), (0, 255, 0), (0, 0, 255),
                                    (255, 255, 255), (0, 0, 0)])
def test_yuv_primary_patches(encoding, colour):
    rgb = np.zeros((4, 8, 3), dtype=np.uint8)
    rgb[...] = colour
    out = _roundtrip(rgb, encoding, 0)
    assert np.abs(out.astype(np.int32) - np.array(colour)).max() <= 6, out[0, 0]


@pytest.mark.parametrize('encoding', YUV)
def test_yuv_encoder_averages_chroma_of_each_pair(encoding):
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[:, 0] = (200, 0, 0)
    rgb[:, 1] = (0, 0, 200)
    out = _roundtrip(rgb, encoding, 0).astype(np.float64)
    assert np.abs(out.mean(axis=(0, 1)) - rgb.mean(axis=(0, 1))).max() < 20


def test_yuv422_is_uyvy_and_yuy2_is_yuyv():
    """Pin the byte order to image_encodings.hpp: 'yuv422' = UYVY, 'yuv422_yuy2' = YUYV."""
    y, u, v = 81, 90, 240  # BT.601 limited-range red
    uyvy = bytes([u, y, v, y])
    yuyv = bytes([y, u, y, v])
    for enc, data in (('yuv422', uyvy), ('uyvy', uyvy), ('yuv422_yuy2', yuyv), ('yuyv', yuyv)):
        px = raw_to_rgb(enc, 1, 2, 4, data)
        assert px[0, 0, 0] > 240 and px[0, 0, 1] < 10 and px[0, 0, 2] < 10, (enc, px[0, 0])
    # The wrong interpretation must not also look red.
    px = raw_to_rgb('yuv422', 1, 2, 4, yuyv)
    assert not (px[0, 0, 0] > 240 and px[0, 0, 1] < 10)


def test_bgr_reorders_channels():
    data = bytes([1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(raw_to_rgb('bgr8', 1, 2, 6, data)[0], [[3, 2, 1], [6, 5, 4]])
    np.testing.assert_array_equal(raw_to_rgb('8UC3', 1, 2, 6, data)[0], [[3, 2, 1], [6, 5, 4]])
    np.testing.assert_array_equal(
        raw_to_rgb('bgra8', 1, 1, 4, bytes([1, 2, 3, 9]))[0], [[3, 2, 1]])
    np.testing.assert_array_equal(
        raw_to_rgb('rgba8', 1, 1, 4, bytes([1, 2, 3, 9]))[0], [[1, 2, 3]])


def test_mono16_endianness():
    values = np.array([[0x1234, 0xABCD, 0x00FF, 0xFF00]], dtype=np.uint16)
    le = values.astype('<u2').tobytes()
    be = values.astype('>u2').tobytes()
    expected = (values >> 8).astype(np.uint8)
    out_le = raw_to_rgb('mono16', 1, 4, 8, le, is_bigendian=0)
    out_be = raw_to_rgb('mono16', 1, 4, 8, be, is_bigendian=1)
    np.testing.assert_array_equal(out_le[..., 0], expected)
    np.testing.assert_array_equal(out_be[..., 0], expected)
    # Reading big-endian bytes as little-endian gives the low bytes instead.
    assert not np.array_equal(raw_to_rgb('16UC1', 1, 4, 8, be, 0)[..., 0], expected)


@pytest.mark.parametrize('bigendian', [False, True])
def test_mono16_roundtrip_both_byte_orders(bigendian):
    rgb = _random_rgb()
    out = _roundtrip(rgb, 'mono16', 2, is_bigendian=bigendian)
    assert np.abs(out[..., 0].astype(np.int32) - _luma(rgb)).max() <= 1


def test_step_too_small_is_rejected():
    with pytest.raises(ImageConversionError, match='step'):
        raw_to_rgb('rgb8', 2, 4, 11, bytes(100))


def test_truncated_data_is_rejected():
    with pytest.raises(ImageConversionError, match='truncated') as info:
        raw_to_rgb('rgb8', 4, 4, 12, bytes(47))
    assert '48' in str(info.value) and '47' in str(info.value)


def test_trailing_bytes_are_ignored():
    rgb = _random_rgb(2, 2)
    data, step = rgb_to_raw(rgb, 'rgb8')
    np.testing.assert_array_equal(raw_to_rgb('rgb8', 2, 2, step, data + b'\x00' * 7), rgb)


def test_unknown_encoding_lists_supported():
    with pytest.raises(ImageConversionError, match='unsupported encoding') as info:
        raw_to_rgb('bayer_rggb8', 2, 2, 2, bytes(4))
    message = str(info.value)
    for name in SUPPORTED_ENCODINGS:
        assert name in message
    assert 'image_proc' in message


@pytest.mark.parametrize('height, width', [(0, 4), (4, 0), (0, 0)])
def test_empty_image_is_rejected(height, width):
    with pytest.raises(ImageConversionError, match='empty'):
        raw_to_rgb('rgb8', height, width, width * 3, b'')


def test_odd_width_yuv_is_rejected():
    with pytest.raises(ImageConversionError, match='odd width'):
        raw_to_rgb('yuv422', 2, 3, 6, bytes(12))
    with pytest.raises(ImageConversionError, match='odd width'):
        rgb_to_raw(_random_rgb(2, 3), 'yuyv')


def test_errors_are_value_and_frame_errors():
    with pytest.raises(ValueError, match="unsupported encoding 'nope'; supported: rgb8"):
        raw_to_rgb('nope', 1, 1, 3, bytes(3))
    with pytest.raises(FrameError, match='publish one of these, or convert upstream'):
        raw_to_rgb('nope', 1, 1, 3, bytes(3))


def test_accepts_every_buffer_type_rclpy_or_users_hand_over():
    rgb = _random_rgb()
    data, step = rgb_to_raw(rgb, 'bgr8', row_padding=4)
    for source in (data, bytearray(data), memoryview(data), array.array('B', data),
                   np.frombuffer(data, dtype=np.uint8)):
        np.testing.assert_array_equal(raw_to_rgb('bgr8', H, W, step, source), rgb)


def test_result_does_not_alias_message_buffer():
    rgb = _random_rgb()
    data, step = rgb_to_raw(rgb, 'rgb8')
    buf = array.array('B', data)
    out = raw_to_rgb('rgb8', H, W, step, buf)
    assert out.flags.writeable
    buf[0] ^= 0xFF
    assert out[0, 0, 0] == rgb[0, 0, 0]


def test_sensor_msgs_image_with_padding():
    sensor_msgs = pytest.importorskip('sensor_msgs.msg')
    rgb = _random_rgb()
    data, step = rgb_to_raw(rgb, 'bgr8', row_padding=8)
    msg = sensor_msgs.Image()
    msg.height, msg.width, msg.encoding, msg.step = H, W, 'bgr8', step
    msg.is_bigendian = 0
    msg.data = data
    assert isinstance(msg.data, array.array)  # what rclpy hands a callback
    out = raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian)
    np.testing.assert_array_equal(out, rgb)


def test_sensor_msgs_compressed_image():
    sensor_msgs = pytest.importorskip('sensor_msgs.msg')
    rgb = _random_rgb()
    msg = sensor_msgs.CompressedImage()
    msg.format = 'rgb8; png compressed bgr8'
    msg.data = encode_compressed(rgb, 'png')
    np.testing.assert_array_equal(compressed_to_rgb(msg.format, msg.data), rgb)


@pytest.mark.parametrize('fmt', ['png', 'bgr8; png compressed bgr8', ''])
def test_png_roundtrip_is_exact(fmt):
    rgb = _random_rgb()
    np.testing.assert_array_equal(compressed_to_rgb(fmt, encode_compressed(rgb, 'png')), rgb)


@pytest.mark.parametrize('fmt', ['jpeg', 'rgb8; jpeg compressed bgr8'])
def test_jpeg_roundtrip_is_close(fmt):
    rgb = _smooth_rgb()
    out = compressed_to_rgb(fmt, encode_compressed(rgb, 'jpeg', quality=90))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(np.int32) - rgb).mean() < 8


def test_jpeg_keeps_colour_order():
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    out = compressed_to_rgb('bgr8; jpeg compressed bgr8', encode_compressed(rgb, 'jpeg'))
    assert out[..., 0].mean() > 240 and out[..., 2].mean() < 15


def test_16bit_png_uses_high_byte_like_mono16():
    values = np.array([[0x1234, 0xFF00], [0x0080, 0x8000]], dtype=np.uint16)
    buf = io.BytesIO()
    Image.fromarray(values).save(buf, format='PNG')
    out = compressed_to_rgb('16UC1; png compressed', buf.getvalue())
    np.testing.assert_array_equal(out[..., 0], (values >> 8).astype(np.uint8))


def test_corrupt_jpeg_is_rejected():
    junk = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(ImageConversionError, match='cannot decode'):
        compressed_to_rgb('jpeg', junk)


def test_truncated_jpeg_is_rejected():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    jpeg = encode_compressed(_random_rgb(64, 64), 'jpeg')
    with pytest.raises(ImageConversionError, match='truncated'):
        compressed_to_rgb('jpeg', jpeg[:len(jpeg) // 2])


def test_empty_compressed_data_is_rejected():
    with pytest.raises(ImageConversionError, match='empty'):
        compressed_to_rgb('jpeg', b'')
    with pytest.raises(ImageConversionError, match='empty'):
        compressed_to_rgb('jpeg', array.array('B'))


def test_other_containers_are_rejected():
    buf = io.BytesIO()
    Image.fromarray(_random_rgb(8, 8)).save(buf, format='BMP')
    with pytest.raises(ImageConversionError, match='JPEG or PNG'):
        compressed_to_rgb('bmp', buf.getvalue())


def test_compressed_depth_is_rejected_with_fix():
    with pytest.raises(ImageConversionError, match='compressedDepth'):
        compressed_to_rgb('16UC1; compressedDepth png', b'\x00' * 32)


def test_compressed_accepts_array_array():
    rgb = _random_rgb()
    out = compressed_to_rgb('png', array.array('B', encode_compressed(rgb, 'png')))
    np.testing.assert_array_equal(out, rgb)


# --- size limits, checked from the header before decoding ------------------------------------

def _png(h: int, w: int, mode: str = 'L') -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h)).save(buf, format='PNG')
    return buf.getvalue()


def _png_header_only(h: int, w: int) -> bytes:
    """A PNG that declares h x w grey pixels and holds none (what a hostile sender can write in 60 bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'')) + chunk(b'IEND', b''))


def test_raw_frames_over_max_pixels_are_refused_before_reading_the_data():
    # No data at all: the size is refused from the header fields, so the buffer is never read.
    with pytest.raises(ImageConversionError, match=r'5000x4000 pixels \(20.0 MP\) is larger than max_pixels') as e:
        raw_to_rgb('rgb8', 4000, 5000, 15000, b'')
    assert e.value.reason == 'too large' and 'image_proc' in str(e.value)
    rgb = _random_rgb()
    data, step = rgb_to_raw(rgb, 'rgb8')
    with pytest.raises(ImageConversionError, match='max_pixels'):
        raw_to_rgb('rgb8', H, W, step, data, max_pixels=H * W - 1)
    np.testing.assert_array_equal(raw_to_rgb('rgb8', H, W, step, data, max_pixels=H * W), rgb)


def test_a_decompression_bomb_is_refused_from_its_header_and_pillow_stays_quiet():
    """A 445 KB PNG of 12000x12000 pixels: refused with Pillow's own warning in the message, and
    nothing printed by the warnings module (it would go to stderr, which nobody reads on a robot)."""
    import warnings
    bomb = _png(12000, 12000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with pytest.raises(ImageConversionError, match='12000x12000 pixels') as e:
            compressed_to_rgb('png', bomb)
    assert e.value.reason == 'too large' and 'decompression bomb' in str(e.value)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_extreme_shapes_within_max_pixels_decode():
    for h, w in ((1, 40000), (40000, 1)):
        out = compressed_to_rgb('png', _png(h, w))
        assert out.shape == (h, w, 3) and out.dtype == np.uint8
    with pytest.raises(ImageConversionError, match='too large|max_pixels'):
        compressed_to_rgb('png', _png(1, 40000, 'RGB'), max_pixels=39999)
    with pytest.raises(ImageConversionError, match='max_pixels'):
        compressed_to_rgb('png', _png_header_only(100000, 100000))


def test_beyond_pillows_own_limit_is_refused_naming_it():
    """Twice Image.MAX_IMAGE_PIXELS is Pillow's hard limit: raising max_pixels past it cannot help."""
    huge = _png_header_only(1, 2 * Image.MAX_IMAGE_PIXELS + 2)
    with pytest.raises(ImageConversionError, match='Pillow refuses') as e:
        compressed_to_rgb('png', huge, max_pixels=10**10)
    assert e.value.reason == 'too large'


def test_image_files_have_the_same_bound(tmp_path):
    from novic_ros.frames.image_files import read_image
    path = tmp_path / 'bomb.png'
    path.write_bytes(_png(12000, 12000))
    with pytest.raises(ImageConversionError, match='bomb.png: image of 12000x12000') as e:
        read_image(path)
    assert e.value.reason == 'too large'
    small = tmp_path / 'small.png'
    small.write_bytes(_png(3, 4))
    assert read_image(small).shape == (3, 4, 3)
    with pytest.raises(ImageConversionError, match='max_pixels'):
        read_image(small, max_pixels=11)


def test_bag_frames_have_the_same_bound():
    from novic_ros.eval.bagio import COMPRESSED, BagFrame, decode, typestore
    store = typestore()
    Msg = store.types[COMPRESSED]
    Header, Time = store.types['std_msgs/msg/Header'], store.types['builtin_interfaces/msg/Time']
    msg = Msg(header=Header(stamp=Time(sec=0, nanosec=0), frame_id='cam'), format='png',
              data=np.frombuffer(_png(12000, 12000), np.uint8))
    frame = BagFrame('/cam/compressed', 0, 0, 0, 'cam', COMPRESSED, store.serialize_cdr(msg, COMPRESSED))
    with pytest.raises(ImageConversionError, match='max_pixels') as e:
        decode(frame)
    assert e.value.reason == 'too large'


def test_encoders_reject_bad_input():
    with pytest.raises(ImageConversionError, match='HxWx3 uint8'):
        rgb_to_raw(np.zeros((4, 4), dtype=np.uint8), 'rgb8')
    with pytest.raises(ImageConversionError, match='HxWx3 uint8'):
        encode_compressed(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ImageConversionError, match='jpeg'):
        encode_compressed(_random_rgb(), 'tiff')


def test_draw_labels_draws_box_and_copies():
    frame = np.full((240, 320, 3), 200, dtype=np.uint8)
    before = frame.copy()
    out = draw_labels(frame, [('a cat', 0.87), ('a dog', 0.1)])
    assert out.shape == frame.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(frame, before)
    box = out[:20, :40].astype(np.int32)
    assert (box != 200).mean() > 0.9           # darkened box
    assert (out[:30, :80] > 230).any()         # white text
    np.testing.assert_array_equal(out[-40:, -40:], before[-40:, -40:])


def test_draw_labels_respects_max_labels():
    frame = np.full((480, 640, 3), 200, dtype=np.uint8)
    labels = [(f'label {i}', 0.5) for i in range(10)]
    two = draw_labels(frame, labels, max_labels=2)
    ten = draw_labels(frame, labels, max_labels=10)
    rows_two = np.nonzero((two != 200).any(axis=(1, 2)))[0].max()
    rows_ten = np.nonzero((ten != 200).any(axis=(1, 2)))[0].max()
    assert rows_ten > rows_two


def test_draw_labels_tiny_frame_and_no_labels():
    tiny = np.full((8, 8, 3), 100, dtype=np.uint8)
    out = draw_labels(tiny, [('something long', 0.5)])
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert not np.array_equal(out, tiny)
    np.testing.assert_array_equal(tiny, 100)
    unchanged = draw_labels(tiny, [])
    np.testing.assert_array_equal(unchanged, tiny)
    assert unchanged is not tiny


def test_draw_labels_rejects_non_rgb():
    with pytest.raises(ValueError, match=r'HxWx3 uint8 RGB array, got shape \(8, 8\).*raw_to_rgb first'):
        draw_labels(np.zeros((8, 8), dtype=np.uint8), [('x', 1.0)])


def test_conversion_modules_do_not_import_ros():
    """The node passes plain fields so these modules stay usable without a ROS install."""
    import subprocess
    import sys
    code = ('import sys, novic_ros.frames.conversion, novic_ros.frames.overlay; '
            'bad = [m for m in sys.modules if m.split(".")[0] in '
            '("rclpy", "sensor_msgs", "cv_bridge", "cv2")]; '
            'assert not bad, bad')
    subprocess.run([sys.executable, '-c', code], check=True)
