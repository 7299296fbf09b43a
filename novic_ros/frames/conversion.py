"""ROS image messages <-> HxWx3 uint8 RGB numpy arrays, without ROS.

This module deliberately imports neither rclpy nor any message package: the node hands
over plain message fields (``encoding, height, width, step, data, is_bigendian`` for
``sensor_msgs/Image``; ``format, data`` for ``sensor_msgs/CompressedImage``), so the
conversion can be unit-tested and reused (evaluation tools, offline bag readers) on
machines without a ROS installation. cv_bridge is avoided for the same reason, and
because it drags OpenCV in only to reorder bytes.

All work is vectorised numpy on views of the message buffer; the only full-frame copy
is the one that produces the returned array.

Raw encodings (names as in ROS 2 ``sensor_msgs/image_encodings.hpp``)::

    encoding       bytes/px  byte layout of one row (before `step` padding)
    -------------  --------  ----------------------------------------------------
    rgb8           3         R G B  R G B ...
    bgr8, 8UC3     3         B G R  B G R ...   (8UC3 read as bgr8, like cv_bridge)
    rgba8          4         R G B A ...        (alpha dropped)
    bgra8          4         B G R A ...        (alpha dropped)
    mono8, 8UC1    1         Y Y Y ...
    mono16, 16UC1  2         Y16 per pixel, byte order from is_bigendian
                             (0: lo hi, 1: hi lo); shown as the high byte
    yuv422, uyvy   2         U0 Y0 V0 Y1  U2 Y2 V2 Y3 ...  (UYVY; 2 px per 4 bytes)
    yuv422_yuy2,   2         Y0 U0 Y1 V0  Y2 U2 Y3 V2 ...  (YUYV/YUY2)
      yuyv

YUV is BT.601 limited range (Y 16..235, U/V 16..240), the range UVC cameras and
usb_cam deliver.
"""
from __future__ import annotations

import array
import io
import logging
import os
import warnings
from typing import IO, Union

import numpy as np
from PIL import Image

from novic_ros.core.errors import FrameError
from novic_ros.params import DEFAULT_MAX_PIXELS

log = logging.getLogger(__name__)

__all__ = [
    'ImageConversionError',
    'SUPPORTED_ENCODINGS',
    'COMPRESSED_CONTAINERS',
    'check_pixels',
    'raw_to_rgb',
    'compressed_to_rgb',
    'pillow_to_rgb',
    'rgb_to_raw',
    'encode_compressed',
]

ByteSource = Union[bytes, bytearray, memoryview, array.array, np.ndarray]


class ImageConversionError(FrameError, ValueError):
    """A message cannot be turned into an RGB frame; the message says why and how to fix it.

    Subclasses FrameError (itself a ValueError) so callers that already handle bad
    frames from the core handle bad messages the same way. `reason` is a short, stable
    category (diagnostics count rejected frames by it; logs are throttled per reason).
    """


# Canonical name -> (bytes per pixel, kind). Aliases map onto canonical names below.
_LAYOUTS: dict[str, tuple[int, str]] = {
    'rgb8': (3, 'rgb'),
    'bgr8': (3, 'bgr'),
    'rgba8': (4, 'rgba'),
    'bgra8': (4, 'bgra'),
    'mono8': (1, 'mono8'),
    'mono16': (2, 'mono16'),
    'yuv422': (2, 'uyvy'),
    'yuv422_yuy2': (2, 'yuyv'),
}

# Looked up case-insensitively: OpenCV-style names are upper case ('8UC3') while some
# drivers publish 'RGB8'; being strict about case would only produce confusing errors.
_ALIASES: dict[str, str] = {
    '8uc3': 'bgr8',
    '8uc1': 'mono8',
    '16uc1': 'mono16',
    'uyvy': 'yuv422',
    'yuyv': 'yuv422_yuy2',
}

SUPPORTED_ENCODINGS: tuple[str, ...] = (
    'rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16',
    'yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv',
    '8UC3', '8UC1', '16UC1',
)

# Containers Pillow may decode from a CompressedImage. Restricted on purpose: frames come
# off the network, and letting Pillow pick any plugin (EPS shells out to Ghostscript,
# TIFF/ICO have a long CVE history) widens the attack surface for no gain, since
# image_transport's compressed plugin only ever writes JPEG or PNG.
COMPRESSED_CONTAINERS: tuple[str, ...] = ('JPEG', 'PNG')

_SUPPORTED_TEXT = ', '.join(SUPPORTED_ENCODINGS)


def check_pixels(width: int, height: int, max_pixels: int, source: str = 'frame', note: str = '') -> None:
    """Refuse a frame whose header says it holds more than `max_pixels` pixels, before any pixel is
    decoded: a 200-byte PNG can declare 40000x1 or 12000x12000 pixels, and decoding it would cost
    memory and time out of all proportion to its size."""
    pixels = int(width) * int(height)
    if pixels > max_pixels:
        raise ImageConversionError(
            f'{source} of {width}x{height} pixels ({pixels / 1e6:.1f} MP) is larger than max_pixels '
            f'({max_pixels:,}); publish smaller frames (e.g. image_proc resize upstream) or raise max_pixels '
            f'if this size is intended (decoding costs about 9 bytes per pixel){note}', reason='too large')


def _canonical_encoding(encoding: str) -> str:
    """Map a message's encoding string onto a key of _LAYOUTS, or explain the fix."""
    key = str(encoding).strip().lower()
    key = _ALIASES.get(key, key)
    if key in _LAYOUTS:
        return key
    if key.startswith('bayer_'):
        fix = 'add a debayer node (image_proc) upstream, or configure the camera for rgb8/bgr8'
    elif key in ('', 'unknown'):
        fix = 'set the encoding field in the publisher (see sensor_msgs/image_encodings.hpp)'
    else:
        fix = 'publish one of these, or convert upstream (e.g. image_proc or a format-converting node)'
    raise ImageConversionError(
        f'unsupported encoding {encoding!r}; supported: {_SUPPORTED_TEXT}; {fix}', reason='unsupported encoding')


def _as_bytes(data: ByteSource) -> np.ndarray:
    """A flat uint8 view of the message buffer; copies only when the source is not a buffer.

    rclpy hands `msg.data` over as array.array('B'); np.frombuffer reads it in place.
    """
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            data = np.ascontiguousarray(data).view(np.uint8)
        return data.reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        # Non-contiguous memoryviews and plain lists of ints end up here.
        try:
            return np.asarray(data, dtype=np.uint8).reshape(-1)
        except (TypeError, ValueError):
            raise ImageConversionError(
                f'image data of type {type(data).__name__} is not a byte buffer ({exc}); '
                'pass msg.data as bytes, bytearray, array.array or a uint8 numpy array',
                reason='bad data buffer',
            ) from exc


def _rows(encoding: str, height: int, width: int, step: int, data: ByteSource,
          bpp: int) -> np.ndarray:
    """Validate geometry and return an (height, width*bpp) view of the pixel bytes.

    Slicing a (height, step) view drops row padding without copying anything.
    """
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(
            f'empty image ({width}x{height}, encoding {encoding!r}); the publisher sent a '
            'frame with no pixels - check the camera driver is streaming', reason='empty image')
    row_bytes = width * bpp
    if step < row_bytes:
        raise ImageConversionError(
            f'step {step} is smaller than one row of {width} px x {bpp} bytes ({row_bytes}) '
            f'for encoding {encoding!r}; the publisher must set step >= width*bytes_per_pixel '
            '(step is the row length in bytes, including padding)', reason='step too small')
    buf = _as_bytes(data)
    needed = step * height
    if buf.size < needed:
        raise ImageConversionError(
            f'truncated frame: expected at least {needed} bytes (step*height = {step}*{height}), '
            f'got {buf.size}; check the publisher fills data completely and sets step/height '
            'correctly', reason='truncated frame')
    # Trailing bytes beyond step*height are ignored: some drivers over-allocate.
    return buf[:needed].reshape(height, step)[:, :row_bytes]


def _lut(scale: int, offset: int) -> np.ndarray:
    """256-entry int32 table of scale*(x - offset); a lookup beats a multiply per pixel."""
    return (scale * (np.arange(256, dtype=np.int32) - offset)).astype(np.int32)


# BT.601 limited range in 8.8 fixed point (1.164, 1.596, -0.392, -0.813, 2.017). The +128
# rounds the final >> 8; folding it into the luma table saves a full-frame add.
_Y_TERM = _lut(298, 16) + 128
_R_FROM_V = _lut(409, 128)
_G_FROM_U = _lut(-100, 128)
_G_FROM_V = _lut(-208, 128)
_B_FROM_U = _lut(516, 128)


def _yuv_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV 4:2:2 -> RGB, using the fixed-point formula from
    Microsoft's "Converting 8-bit YUV to RGB888" (what most UVC pipelines use).

    y is (H, W/2, 2) - the two lumas that share one chroma pair - and u, v are (H, W/2).
    Chroma terms are computed once per pair and broadcast, so the half-resolution planes
    are never upsampled into memory; one int32 scratch buffer is reused for all channels.
    """
    luma = _Y_TERM[y]
    h, pairs = u.shape
    out = np.empty((h, pairs, 2, 3), dtype=np.uint8)
    scratch = np.empty_like(luma)
    chroma_terms = (_R_FROM_V[v], _G_FROM_U[u] + _G_FROM_V[v], _B_FROM_U[u])
    for channel, chroma in enumerate(chroma_terms):
        np.add(luma, chroma[..., None], out=scratch)
        np.right_shift(scratch, 8, out=scratch)
        np.clip(scratch, 0, 255, out=scratch)
        out[..., channel] = scratch
    return out.reshape(h, pairs * 2, 3)


def _interleave(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Stack three (H, W) planes into a new HxWx3 array.

    Three per-channel assignments are ~3-5x faster in numpy than copying a channel-reversed
    or broadcast view in one go. Always a fresh array: the result must not alias (or be
    read-only like) the message buffer, which the executor may reuse after the callback.
    """
    out = np.empty(r.shape + (3,), dtype=np.uint8)
    out[..., 0], out[..., 1], out[..., 2] = r, g, b
    return out


def _decode_rows(kind: str, rows: np.ndarray, height: int, width: int,
                 is_bigendian: int) -> np.ndarray:
    """Turn validated pixel rows into a fresh C-contiguous HxWx3 uint8 array."""
    if kind in ('rgb', 'bgr', 'rgba', 'bgra'):
        px = rows.reshape(height, width, len(kind))
        if kind == 'rgb':
            # Same layout: one block copy (np.array always copies) is fastest.
            return np.array(px, dtype=np.uint8, order='C')
        if kind.startswith('bgr'):
            return _interleave(px[..., 2], px[..., 1], px[..., 0])
        return _interleave(px[..., 0], px[..., 1], px[..., 2])
    if kind in ('mono8', 'mono16'):
        if kind == 'mono16':
            # The high byte is value >> 8: the same linear 16->8 bit scaling cv_bridge
            # applies for display. Picking it by byte position avoids a uint16 pass and
            # handles either endianness without byteswapping.
            rows = rows[:, 0::2] if is_bigendian else rows[:, 1::2]
        return _interleave(rows, rows, rows)
    quads = rows.reshape(height, width // 2, 4)
    if kind == 'uyvy':
        u, y, v = quads[..., 0], quads[..., 1::2], quads[..., 2]
    else:  # yuyv
        y, u, v = quads[..., 0::2], quads[..., 1], quads[..., 3]
    return _yuv_to_rgb(y, u, v)


def raw_to_rgb(encoding: str, height: int, width: int, step: int, data: ByteSource,
               is_bigendian: int = 0, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Convert sensor_msgs/Image fields to an HxWx3 uint8 RGB array (C-contiguous, owned).

    Takes the fields rather than the message so this works without ROS. Honours row
    padding (`step` > width*bytes_per_pixel) and `is_bigendian` (mono16/16UC1 only; the
    8-bit encodings have no byte order). mono16 is reduced to its high byte (value >> 8)
    and replicated to three channels. Raises ImageConversionError on anything it
    cannot convert (reason 'too large' above `max_pixels`, before converting); extra
    bytes after step*height are ignored.
    """
    key = _canonical_encoding(encoding)
    check_pixels(width, height, max_pixels)
    bpp, kind = _LAYOUTS[key]
    if kind in ('uyvy', 'yuyv') and int(width) % 2:
        raise ImageConversionError(
            f'odd width {width} for 4:2:2 encoding {encoding!r}: two pixels share one chroma '
            'pair, so the width must be even; configure the camera for an even width or '
            'publish rgb8/bgr8', reason='odd width')
    rows = _rows(encoding, height, width, step, data, bpp)
    return _decode_rows(kind, rows, int(height), int(width), is_bigendian)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    """Reject anything but an HxWx3 uint8 array with pixels, so encoders fail loudly."""
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ImageConversionError(
            f'expected an HxWx3 uint8 RGB array, got shape {arr.shape} dtype {arr.dtype}; '
            'convert with np.asarray(img, dtype=np.uint8)[..., :3] first')
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageConversionError(
            f'empty image (shape {arr.shape}); pass a frame with at least one pixel', reason='empty image')
    return arr


def _luma601(rgb: np.ndarray) -> np.ndarray:
    """Full-range ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B) in 8.8 fixed point.

    The weights 77/150/29 sum to 256, so white stays exactly 255.
    """
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    return ((77 * r + 150 * g + 29 * b + 128) >> 8).astype(np.uint8)


def _rgb_to_yuv422(rgb: np.ndarray, kind: str) -> np.ndarray:
    """RGB -> packed BT.601 limited-range 4:2:2; chroma is the mean of each pixel pair."""
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    u = (u[:, 0::2] + u[:, 1::2] + 1) >> 1
    v = (v[:, 0::2] + v[:, 1::2] + 1) >> 1
    h, w = y.shape
    quads = np.empty((h, w // 2, 4), dtype=np.uint8)
    if kind == 'uyvy':
        quads[..., 0], quads[..., 1], quads[..., 2], quads[..., 3] = u, y[:, 0::2], v, y[:, 1::2]
    else:
        quads[..., 0], quads[..., 1], quads[..., 2], quads[..., 3] = y[:, 0::2], u, y[:, 1::2], v
    return quads.reshape(h, w * 2)


def _encode_pixels(rgb: np.ndarray, kind: str, is_bigendian: bool) -> np.ndarray:
    """Produce the unpadded (H, W*bpp) uint8 rows of one encoding."""
    h, w, _ = rgb.shape
    if kind == 'rgb':
        px = rgb
    elif kind == 'bgr':
        px = rgb[..., ::-1]
    elif kind in ('rgba', 'bgra'):
        px = np.empty((h, w, 4), dtype=np.uint8)
        px[..., :3] = rgb if kind == 'rgba' else rgb[..., ::-1]
        px[..., 3] = 255
    elif kind == 'mono8':
        px = _luma601(rgb)
    elif kind == 'mono16':
        # x * 257 maps 0..255 onto 0..65535 exactly and keeps x as the high byte, so
        # raw_to_rgb's >> 8 gives the 8-bit luma back unchanged.
        px = (_luma601(rgb).astype(np.uint16) * 257).astype('>u2' if is_bigendian else '<u2')
        px = px.view(np.uint8)
    else:
        px = _rgb_to_yuv422(rgb, kind)
    return np.ascontiguousarray(px).reshape(h, -1)


def rgb_to_raw(rgb: np.ndarray, encoding: str, row_padding: int = 0, *,
               is_bigendian: bool = False) -> tuple[bytes, int]:
    """Encode an HxWx3 uint8 RGB array as sensor_msgs/Image ``(data, step)``.

    The inverse of raw_to_rgb, so tests and the evaluation tool can publish frames in any
    supported encoding. `row_padding` zero bytes are appended to each row (step grows
    accordingly) to exercise consumers' step handling. Alpha is written as 255; mono is
    BT.601 luma; `is_bigendian` only changes mono16/16UC1 and must be copied into the
    message's is_bigendian field.
    """
    arr = _check_rgb(rgb)
    key = _canonical_encoding(encoding)
    _, kind = _LAYOUTS[key]
    if kind in ('uyvy', 'yuyv') and arr.shape[1] % 2:
        raise ImageConversionError(
            f'odd width {arr.shape[1]} cannot be packed as 4:2:2 {encoding!r}; crop or pad '
            'the frame to an even width')
    if row_padding < 0:
        raise ImageConversionError(
            f'row_padding must be >= 0, got {row_padding}; pass 0 for tightly packed rows')
    rows = _encode_pixels(arr, kind, is_bigendian)
    if row_padding:
        padded = np.zeros((rows.shape[0], rows.shape[1] + row_padding), dtype=np.uint8)
        padded[:, :rows.shape[1]] = rows
        rows = padded
    return rows.tobytes(), rows.shape[1]


def _compressed_kind(fmt: str) -> str:
    """Reject format strings whose payload is not a plain image file.

    image_transport writes e.g. 'jpeg', 'rgb8; jpeg compressed bgr8' or
    '16UC1; compressedDepth png'. Only compressedDepth is refused up front: its payload
    starts with a private header, so Pillow would misreport it as corrupt.
    """
    text = str(fmt).strip().lower()
    if 'compresseddepth' in text:
        raise ImageConversionError(
            f'compressedDepth format {fmt!r} is depth data with a private header, not a '
            'colour image; subscribe to the colour topic or its /compressed variant instead',
            reason='unsupported format',
        )
    return text


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Pillow image -> HxWx3 uint8, treating 16-bit grey like raw mono16 (high byte).

    Copies as little as it can: Pillow holds 4 bytes per RGB pixel, and `np.asarray` adds
    one 3-byte copy (read-only; nothing downstream writes to frames), so an RGB file peaks
    at about 7 bytes per pixel instead of the 14 of convert() + np.array().
    """
    if img.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
        # Pillow's own I->RGB conversion clamps at 255, which turns ordinary 16-bit depth
        # or IR PNGs white; >> 8 matches raw_to_rgb's mono16 handling instead.
        grey = (np.asarray(img).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8)
        return _interleave(grey, grey, grey)
    if img.mode == 'L':
        grey = np.asarray(img)
        return _interleave(grey, grey, grey)
    if img.mode == 'F':
        return _float_to_rgb(img)
    return np.asarray(img if img.mode == 'RGB' else img.convert('RGB'))


def _float_to_rgb(img: Image.Image) -> np.ndarray:
    """A 32-bit float image (mode F, e.g. a float TIFF) converted as Pillow documents F -> L (values
    rounded and clipped to 0..255), when its values lie in that range; otherwise refused with the
    range, because the conversion would clip it to a black (values 0..1) or saturated frame that the
    model labels with confidence."""
    values = np.asarray(img)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (float('nan'), float('nan'))
    if finite.size != values.size or lo < 0 or hi > 255 or hi <= 1:
        what = 'NaN or infinite values' if finite.size != values.size else f'values {lo:.3g}..{hi:.3g}'
        raise ImageConversionError(
            f'a 32-bit float image ({what}): its 8-bit conversion (Pillow clips to 0..255) would not show '
            'the picture; scale it to 0..255 and save it as 8-bit (e.g. numpy: (a / a.max() * 255).astype'
            "('uint8'))", reason='float image')
    grey = np.asarray(img.convert('L'))
    return _interleave(grey, grey, grey)


def pillow_to_rgb(source: Union[str, os.PathLike, IO[bytes]], max_pixels: int = DEFAULT_MAX_PIXELS,
                  formats: tuple[str, ...] | None = None) -> np.ndarray:
    """Decode an image file (a path or a binary file object) to an HxWx3 uint8 RGB array, after
    checking its size from the header against `max_pixels` (ImageConversionError, reason 'too
    large'). The one Pillow decoder behind CompressedImage frames and image files.

    Pillow's own decompression-bomb check (Image.MAX_IMAGE_PIXELS) warns on stderr and, at twice
    that, raises; both are turned into this function's rejection or a log record, so they reach
    the node's log and diagnostics instead of a terminal nobody reads. Other Pillow errors (not an
    image, truncated, corrupt) propagate for the caller to name.
    """
    # catch_warnings is process-wide; each caller decodes on one thread (the node's worker, a CLI).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', Image.DecompressionBombWarning)
        try:
            img = Image.open(source, formats=formats)
        except Image.DecompressionBombError as exc:
            raise ImageConversionError(
                f'{exc}; Pillow refuses images this large whatever max_pixels says (it allows up to '
                f'{2 * Image.MAX_IMAGE_PIXELS:,} pixels); publish smaller frames', reason='too large') from exc
    with img:
        bomb = [str(w.message) for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
        check_pixels(img.width, img.height, max_pixels, 'image', f' (Pillow: {bomb[0]})' if bomb else '')
        if bomb:   # allowed by max_pixels, which was raised above Pillow's own limit on purpose
            log.warning('decoding a very large image (%dx%d) because max_pixels allows it: %s',
                        img.width, img.height, bomb[0])
        img.load()
        return _to_rgb_array(img)


def compressed_to_rgb(format: str, data: ByteSource,  # noqa: A002 - ROS field name
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode sensor_msgs/CompressedImage fields to an HxWx3 uint8 RGB array.

    The bytes decide the container, not the `format` string: publishers are inconsistent
    ('jpeg', 'jpg', 'rgb8; jpeg compressed bgr8', sometimes empty), and the magic bytes
    are authoritative. The string is advisory - used only to refuse compressedDepth and
    to make errors readable - and never triggers warnings. Only JPEG and PNG are decoded
    (COMPRESSED_CONTAINERS). Colour order needs no fixing for 'bgr8' variants: the
    publisher hands OpenCV a BGR matrix, so the file itself holds correct colours.

    The size is checked from the header before decoding (reason 'too large' above
    `max_pixels`). Truncated files are detected because the image is fully loaded here,
    which relies on Pillow's ImageFile.LOAD_TRUNCATED_IMAGES staying False (its default;
    this module never sets it). The array may be read-only.
    """
    fmt_text = _compressed_kind(format)
    buf = _as_bytes(data)
    if buf.size == 0:
        raise ImageConversionError(
            f'empty CompressedImage data (format {fmt_text!r}); the publisher sent no bytes - '
            'check the compressed image_transport publisher is running correctly', reason='empty data')
    # BytesIO shares an immutable bytes object, so bytes input is never copied; other
    # buffers (rclpy's array.array) are copied exactly once.
    raw = data if isinstance(data, bytes) else buf.tobytes()
    try:
        return pillow_to_rgb(io.BytesIO(raw), max_pixels, COMPRESSED_CONTAINERS)
    except ImageConversionError:
        raise
    except Exception as exc:  # noqa: BLE001
        # Pillow raises a zoo of types on malformed input (OSError, SyntaxError,
        # ValueError, struct.error, DecompressionBombError, ...); each means "this frame
        # cannot be decoded", and the node must log and drop it rather than die.
        raise ImageConversionError(
            f'cannot decode CompressedImage (format {fmt_text!r}, {buf.size} bytes): '
            f'{type(exc).__name__}: {exc}; only complete JPEG or PNG frames are supported - '
            'check the publisher uses the compressed transport with jpeg or png, and that '
            'frames are not cut off (QoS/transport limits)', reason='undecodable') from exc


def encode_compressed(rgb: np.ndarray, fmt: str = 'jpeg', quality: int = 90) -> bytes:
    """Encode an HxWx3 uint8 RGB array as JPEG or PNG bytes for a CompressedImage.

    Set the message's format to 'jpeg' or 'png' (or image_transport's
    'rgb8; jpeg compressed bgr8' style); compressed_to_rgb reads either. `quality` only
    applies to JPEG.
    """
    arr = _check_rgb(rgb)
    key = str(fmt).strip().lower()
    out = io.BytesIO()
    img = Image.fromarray(np.ascontiguousarray(arr))
    if key in ('jpeg', 'jpg'):
        img.save(out, format='JPEG', quality=int(quality))
    elif key == 'png':
        img.save(out, format='PNG')
    else:
        raise ImageConversionError(
            f'unsupported compressed format {fmt!r}; use "jpeg" or "png" (what '
            'image_transport\'s compressed plugin writes)', reason='unsupported format')
    return out.getvalue()
