"""A corpus of awkward image files, generated with Pillow, for the decode-equality tests.

Every file is made from one real, non-symmetric image (a Fashion-MNIST garment from the bundled
sample, cropped to a non-square shape and coloured), so a wrong rotation or flip shows.
"""
from __future__ import annotations

import io
import struct
import zlib
from typing import Dict

import numpy as np
from PIL import Image

from lensflow.pipeline.config import SAMPLE_DATA

JPEG_NAMES = ("jpeg", "jpeg_progressive", "jpeg_grey", "cmyk_jpeg",
              *(f"exif_{o}" for o in range(1, 9)), *(f"exif_{o}_grey" for o in range(1, 9)))
NOT_SERVEABLE = {"webp": "WebP", "tiff": "TIFF"}


def base_image() -> np.ndarray:
    """A real garment as a non-square RGB array (26 x 20), with a distinct tint per channel."""
    path = sorted((SAMPLE_DATA / "ankle_boot").glob("*.png"))[0]
    grey = np.asarray(Image.open(path).convert("L"))[1:27, 3:23].astype(np.int32)
    ramp = np.linspace(0, 60, grey.shape[1]).astype(np.int32)[None, :]
    rgb = np.stack([grey, np.clip(grey * 3 // 4 + ramp, 0, 255), 255 - grey], axis=-1)
    return rgb.astype(np.uint8)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png16(pixels: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG (grey 0, RGB 2, grey+alpha 4, RGBA 6) of a uint16 array."""
    height, width = pixels.shape[:2]
    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b""))


def bomb_png(width: int = 12_000, height: int = 12_000) -> bytes:
    """A valid grey PNG of ``width`` x ``height`` black pixels, compressed to a few hundred KB."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body)
            + _png_chunk(b"IEND", b""))


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def corpus() -> Dict[str, bytes]:
    """name -> file bytes: every EXIF orientation, alpha, palettes, CMYK, 16-bit, GIF, BMP."""
    rgb = base_image()
    grey = rgb[..., 0]
    rgb_image, grey_image = Image.fromarray(rgb), Image.fromarray(grey)
    alpha = np.zeros(grey.shape, np.uint8)
    alpha[:, 5:] = np.linspace(0, 255, grey.shape[1] - 5).astype(np.uint8)[None, :]
    alpha[grey > 40] = 255                      # an opaque garment on a graded transparent field
    palette = rgb_image.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    key = int(np.asarray(palette)[0, 0])
    gif = rgb_image.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    wide = rgb.astype(np.uint16) * 257 + np.arange(rgb.size, dtype=np.uint16).reshape(rgb.shape) % 257
    files = {
        "png_rgb": encode(rgb_image, "PNG"),
        "png_grey": encode(grey_image, "PNG"),
        "png_rgba": encode(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "PNG"),
        "png_la": encode(Image.fromarray(np.dstack([grey, alpha]), "LA"), "PNG"),
        "png_palette": encode(palette, "PNG"),
        "png_palette_trns": encode(palette, "PNG", transparency=key),
        "png_grey_trns": encode(grey_image, "PNG", transparency=int(grey[0, 0])),
        "png_rgb_trns": encode(rgb_image, "PNG", transparency=tuple(int(v) for v in rgb[0, 0])),
        "png_1bit": encode(grey_image.point(lambda v: 255 if v > 60 else 0).convert("1"), "PNG"),
        "png16_grey": encode(Image.fromarray(wide[..., 0], "I;16"), "PNG"),
        "png16_rgb": png16(wide, 2),
        "png16_rgba": png16(np.dstack([wide, alpha.astype(np.uint16) * 257]), 6),
        "png16_la": png16(np.dstack([wide[..., 0], alpha.astype(np.uint16) * 257]), 4),
        "jpeg": encode(rgb_image, "JPEG", quality=90),
        "jpeg_progressive": encode(rgb_image, "JPEG", quality=90, progressive=True),
        "jpeg_grey": encode(grey_image, "JPEG", quality=90),
        "cmyk_jpeg": encode(rgb_image.convert("CMYK"), "JPEG", quality=90),
        "gif": encode(gif, "GIF"),
        "gif_transparent": encode(gif, "GIF", transparency=int(np.asarray(gif)[0, 0])),
        "gif_grey_ramp": encode(grey_image, "GIF", optimize=False),
        "bmp": encode(rgb_image, "BMP"),
        "bmp32": encode(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "BMP"),
    }
    for orientation in range(1, 9):
        files[f"exif_{orientation}"] = encode(rgb_image, "JPEG", quality=90,
                                              exif=_exif(orientation))
        files[f"exif_{orientation}_grey"] = encode(grey_image, "JPEG", quality=90,
                                                   exif=_exif(orientation))
        files[f"png_exif_{orientation}"] = encode(rgb_image, "PNG", exif=_exif(orientation))
    files["png_exif_6_grey"] = encode(grey_image, "PNG", exif=_exif(6))
    files["png_exif_8_rgba"] = encode(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "PNG",
                                      exif=_exif(8))
    return files


def not_serveable() -> Dict[str, bytes]:
    """Files Pillow ingests but the served graph cannot decode."""
    rgb_image = Image.fromarray(base_image())
    return {"webp": encode(rgb_image, "WEBP", lossless=True), "tiff": encode(rgb_image, "TIFF")}
