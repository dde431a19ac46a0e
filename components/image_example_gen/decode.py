"""Decode one image file with Pillow, reject bad files with a reason, re-encode it as 8-bit PNG.

Every ingested image leaves here as a lossless PNG in mode ``L`` (grey sources) or ``RGB``
(colour sources), so ``tf.io.decode_png`` reads training and serving inputs the same way.
Transparency is composited over white, 16-bit and float pixels are scaled (not clipped) to
8 bits, and the EXIF orientation is applied.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import zlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from lensflow.pipeline.object_store import ensure_filesystem, is_uri

GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError)


class RejectedImage(Exception):
    """A file that cannot be ingested; ``reason`` (also ``str(e)``) says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class DecodedImage:
    """A normalised image as PNG bytes plus facts about the original file.

    ``channels`` describes the original: 1 grey, 2 grey with alpha, 3 colour, 4 colour with alpha.
    ``mean_brightness`` (0-255) is measured on the normalised 8-bit image, whose ``pixels`` are
    kept for the perceptual hash (``duplicates.fingerprint``).
    """
    png_bytes: bytes
    height: int
    width: int
    channels: int
    original_format: str
    mode: str
    sha256: str
    mean_brightness: float
    original_bytes: bytes = field(default=b"", repr=False)
    pixels: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def png_channels(self) -> int:
        """Channels of ``png_bytes``: 1 (L) for grey sources, 3 (RGB) for colour sources."""
        return 1 if self.channels in (1, 2) else 3


def load_image(path: str, max_pixels: int = 40_000_000, max_bytes: int = 64 << 20) -> DecodedImage:
    """Read ``path`` once, validate and fully decode it; raise RejectedImage on bad input."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; truncated files would "
                           "be ingested silently. Leave it False.")
    data = _read_bytes(path, max_bytes)
    image = _open(data, max_pixels)
    original_format, original_mode = image.format or "UNKNOWN", image.mode
    _full_decode(image)
    if original_format == "PNG":
        _check_png_stream(data)
    passthrough = is_normal_png(data, image)
    pixels, channels = normalise(_apply_orientation(image))
    return DecodedImage(
        png_bytes=data if passthrough else encode_png(pixels),
        height=pixels.shape[0],
        width=pixels.shape[1],
        channels=channels,
        original_format=original_format,
        mode=original_mode,
        sha256=hashlib.sha256(data).hexdigest(),
        mean_brightness=float(pixels.mean()),
        original_bytes=data,
        pixels=pixels,
    )


def is_normal_png(data: bytes, image: Image.Image) -> bool:
    """True when the file already is what ingestion would write: an 8-bit grey or RGB PNG
    without transparency or an EXIF orientation, whose bytes can be kept as they are (re-encoding
    it would yield the same pixels at a quarter of ingestion's cost)."""
    if image.format != "PNG" or len(data) < 26 or image.mode not in ("L", "RGB"):
        return False
    bit_depth, colour_type = data[24], data[25]
    if bit_depth != 8 or colour_type not in (0, 2) or "transparency" in image.info:
        return False
    try:
        return image.getexif().get(0x0112, 1) == 1
    except _DECODE_ERRORS as exc:   # a corrupt eXIf chunk raised SyntaxError out of ingestion
        raise RejectedImage(f"corrupt EXIF metadata: {exc}") from exc


def _read_bytes(path: str, max_bytes: int) -> bytes:
    """Return the bytes; reject missing, unreadable, non-regular, empty or oversized files."""
    if is_uri(path):
        return _check_read(_read_object(path, max_bytes), max_bytes)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise RejectedImage("not a regular file")
        if info.st_size > max_bytes:
            raise RejectedImage(f"file too large: {info.st_size} bytes, limit is {max_bytes}")
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise RejectedImage(f"unreadable file: {exc.strerror or exc}") from exc
    return _check_read(data, max_bytes)


def _check_read(data: bytes, max_bytes: int) -> bytes:
    if not data:
        raise RejectedImage("zero-byte file")
    if len(data) > max_bytes:
        raise RejectedImage(f"file too large: more than {max_bytes} bytes")
    return data


def _read_object(uri: str, max_bytes: int) -> bytes:
    """An object's bytes through ``tf.io.gfile`` (any process, e.g. a Beam worker, registers
    the scheme first); the size is checked before reading."""
    import tensorflow as tf

    try:
        ensure_filesystem(uri)
        size = tf.io.gfile.stat(uri).length
        if size > max_bytes:
            raise RejectedImage(f"file too large: {size} bytes, limit is {max_bytes}")
        with tf.io.gfile.GFile(uri, "rb") as handle:
            return handle.read(max_bytes + 1)
    except tf.errors.NotFoundError as exc:
        raise RejectedImage("unreadable file: not found") from exc
    except (tf.errors.OpError, RuntimeError) as exc:
        raise RejectedImage(f"unreadable file: {getattr(exc, 'message', exc)}") from exc


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Identify the format and check the header's dimensions before any pixel is decoded."""
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise RejectedImage(_unidentified_reason(data)) from exc
    except Image.DecompressionBombError as exc:
        raise RejectedImage(f"decompression bomb: {exc}") from exc
    except _DECODE_ERRORS as exc:
        raise RejectedImage(f"truncated or corrupt image header: {exc}") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise RejectedImage(f"zero dimensions: {width}x{height}")
    if width * height > max_pixels:
        raise RejectedImage(f"decompression bomb: header claims {width}x{height} = "
                            f"{width * height} pixels, limit is {max_pixels}")
    return image


def _unidentified_reason(data: bytes) -> str:
    """Explain a file Pillow cannot identify: zero dimensions, a corrupt header, or not an image."""
    fmt, size = _sniff_header(data)
    if size is not None and 0 in size:
        return f"zero dimensions: {fmt} header claims {size[0]}x{size[1]}"
    if fmt is not None:
        return f"corrupt {fmt} file: Pillow cannot read its header"
    return "not an image: Pillow cannot identify the file format"


def _sniff_header(data: bytes):
    """Return (format, (width, height) or None) from the file signature, or (None, None)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return "PNG", struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return "GIF", struct.unpack("<HH", data[6:10])
    if data.startswith(b"BM") and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return "BMP", (abs(width), abs(height))
    signatures = {b"\xff\xd8\xff": "JPEG", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}
    for signature, fmt in signatures.items():
        if data.startswith(signature):
            return fmt, None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP", None
    return None, None


def _full_decode(image: Image.Image) -> None:
    """Decode every pixel now, so truncated or corrupt data is caught here and not later."""
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise RejectedImage(f"decompression bomb: {exc}") from exc
    except _DECODE_ERRORS as exc:
        raise RejectedImage(f"truncated or corrupt image data: {exc}") from exc


_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}   # colour type -> samples per pixel
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))


def _check_png_stream(data: bytes) -> None:
    """Reject a PNG whose pixel stream ends before the rows its header declares: Pillow fills the
    missing rows with black and raises nothing (found by benchmarks/fuzz_inputs.py), while the
    served graph's decoder refuses the same file."""
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    bits = depth * _PNG_SAMPLES.get(colour, 1)
    need = 0
    for x0, y0, dx, dy in (_ADAM7 if interlace else ((0, 0, 1, 1),)):
        columns, rows = max(0, -(-(width - x0) // dx)), max(0, -(-(height - y0) // dy))
        if columns and rows:
            need += rows * (1 + (columns * bits + 7) // 8)
    inflater, got, pos = zlib.decompressobj(), 0, 8
    try:
        while pos + 8 <= len(data) and got < need and not inflater.eof:
            length, kind = struct.unpack(">I4s", data[pos:pos + 8])
            if kind == b"IDAT":
                pending = data[pos + 8:pos + 8 + length]
                while pending and got < need:
                    got += len(inflater.decompress(pending, 1 << 20))
                    pending = inflater.unconsumed_tail
            pos += 12 + length
    except zlib.error as exc:
        raise RejectedImage(f"truncated or corrupt image data: {exc}") from exc
    if got < need:
        raise RejectedImage(f"truncated or corrupt image data: the PNG pixel stream holds {got} "
                            f"of the {need} bytes its {width}x{height} header declares")


def _apply_orientation(image: Image.Image) -> Image.Image:
    """Rotate/flip as the EXIF orientation tag says; a corrupt EXIF block rejects the file."""
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS as exc:
        raise RejectedImage(f"corrupt EXIF metadata: {exc}") from exc


def normalise(image: Image.Image):
    """Return (uint8 array HxW for grey or HxWx3 for colour, channels of the original)."""
    image = _expand_transparency_key(image)
    mode = image.mode
    if mode in ALPHA_MODES:
        rgba = image.convert("LA" if mode in GREY_MODES else "RGBA")
        channels = 2 if mode in GREY_MODES else 4
        return _over_white(np.asarray(rgba)), channels
    if mode in GREY_MODES:
        return _grey_to_uint8(image), 1
    try:
        return np.asarray(image.convert("RGB")), 3
    except ValueError as exc:
        raise RejectedImage(f"unsupported image mode {mode!r}: {exc}") from exc


def _expand_transparency_key(image: Image.Image) -> Image.Image:
    """Palettes and colour-key transparency (PNG tRNS) become an explicit alpha band."""
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if "transparency" in image.info and image.mode in ("L", "RGB"):
        return image.convert("LA" if image.mode == "L" else "RGBA")
    return image


def _over_white(pixels: np.ndarray) -> np.ndarray:
    """Composite colour bands over a white background using the last band as alpha."""
    colour = pixels[..., :-1].astype(np.uint32)
    alpha = pixels[..., -1:].astype(np.uint32)
    blended = (colour * alpha + 255 * (255 - alpha) + 127) // 255
    out = blended.astype(np.uint8)
    return out[..., 0] if out.shape[-1] == 1 else out


def _grey_to_uint8(image: Image.Image) -> np.ndarray:
    """Map 1-bit, 8-bit, 16-bit, 32-bit integer and float grey pixels onto 0..255."""
    if image.mode == "1":
        return np.asarray(image.convert("L"))
    pixels = np.asarray(image)
    if pixels.dtype == np.uint8:
        return pixels
    if image.mode == "F":
        return _float_to_uint8(pixels)
    return _int16_range_to_uint8(pixels, image.mode)


def _int16_range_to_uint8(pixels: np.ndarray, mode: str) -> np.ndarray:
    """Scale 0..65535 to 0..255 by rounding value/257; other integer ranges are rejected."""
    wide = pixels.astype(np.int64)
    low, high = int(wide.min()), int(wide.max())
    if low < 0 or high > 65535:
        raise RejectedImage(f"mode {mode!r} pixels span {low}..{high}, outside the 16-bit range "
                            "0..65535 that can be scaled to 8 bits")
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _float_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Floats in 0..1 are scaled by 255; floats in 0..255 are rounded; anything else is rejected."""
    if not np.all(np.isfinite(pixels)):
        raise RejectedImage("float image contains NaN or infinite pixels")
    low, high = float(pixels.min()), float(pixels.max())
    if low < 0 or high > 255:
        raise RejectedImage(f"float pixels span {low}..{high}, outside 0..1 and 0..255")
    scale = 255.0 if high <= 1.0 else 1.0
    return np.rint(pixels.astype(np.float64) * scale).astype(np.uint8)


def encode_png(pixels: np.ndarray) -> bytes:
    """Losslessly encode an HxW (L) or HxWx3 (RGB) uint8 array as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
