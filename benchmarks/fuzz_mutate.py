"""Mutations of real image files for the fuzz run (``fuzz_inputs.py``): seeded and reproducible.

Seeds are real images: files of the bundled Fashion-MNIST sample and the generated decode corpus
(PNG in every colour type and depth, baseline/progressive/CMYK/EXIF JPEG, GIF, BMP), all made from
real garments. Each mutant records the operation and what it changed, so a failure can be
rebuilt from ``(seed, op, detail)``.
"""
from __future__ import annotations

import random
import struct
import zlib
from typing import Callable, Dict, List, Optional, Tuple

from lensflow.pipeline.config import SAMPLE_DATA

OPS = ("none", "zero_length", "truncate", "bitflip", "header", "huge_dims", "garbage")
WEIGHTS = {"none": 2, "truncate": 20, "bitflip": 25, "header": 25, "huge_dims": 12, "garbage": 12}
SIGNATURES = {"PNG": b"\x89PNG\r\n\x1a\n", "JPEG": b"\xff\xd8\xff", "GIF": b"GIF89a", "BMP": b"BM"}
FORMATS = tuple(SIGNATURES)
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Declared sizes: past every limit, at the 16/32-bit edges, and just under the 40 Mpx default.
_HUGE = (0, 1, 6324, 6400, 30000, 65535, 100_000, 2 ** 31 - 1, 2 ** 32 - 1)


def seed_files(rng: random.Random, sample_count: int = 40) -> Dict[str, bytes]:
    """name -> bytes of the real seed images: the decode corpus plus ``sample_count`` sample files."""
    from lensflow.components.transform.tests import corpus

    seeds = {f"corpus/{name}": data for name, data in corpus.corpus().items()}
    sample = sorted(SAMPLE_DATA.glob("*/*.png"))
    for path in rng.sample(sample, min(sample_count, len(sample))):
        seeds[f"sample/{path.parent.name}/{path.name}"] = path.read_bytes()
    return seeds


def file_format(data: bytes) -> Optional[str]:
    for fmt, signature in SIGNATURES.items():
        if data.startswith(signature) or (fmt == "GIF" and data.startswith(b"GIF87a")):
            return fmt
    return None


def by_format(seeds: Dict[str, bytes]) -> Dict[str, List[str]]:
    groups: Dict[str, List[str]] = {fmt: [] for fmt in FORMATS}
    for name, data in seeds.items():
        fmt = file_format(data)
        if fmt:
            groups[fmt].append(name)
    return {fmt: sorted(names) for fmt, names in groups.items() if names}


def mutants(count: int, seed: int) -> List[dict]:
    """``count`` mutants: {"name", "seed_file", "op", "detail", "data"}; the first is zero-length.

    Each picks a format uniformly (so the many sample PNGs do not crowd out GIF and BMP), a seed
    file of that format, and an operation by ``WEIGHTS``."""
    rng = random.Random(seed)
    seeds = seed_files(rng)
    groups = by_format(seeds)
    ops, weights = zip(*WEIGHTS.items())
    out = []
    for index in range(count):
        fmt = rng.choice(sorted(groups))
        seed_name = rng.choice(groups[fmt])
        op = "zero_length" if index == 0 else rng.choices(ops, weights)[0]
        data, detail = MUTATIONS[op](rng, seeds[seed_name], fmt)
        out.append({"name": f"{index:05d}_{op}", "seed_file": seed_name, "format": fmt, "op": op,
                    "detail": detail, "data": data})
    return out


def _none(rng, data, fmt):
    return data, "unchanged seed (control)"


def _zero_length(rng, data, fmt):
    return b"", "empty file"


def _truncate(rng, data, fmt):
    cut = rng.randrange(1, len(data))
    return data[:cut], f"kept {cut} of {len(data)} bytes"


def _bitflip(rng, data, fmt):
    flips = rng.choice((1, 1, 2, 4, 8, 32))
    out = bytearray(data)
    positions = sorted(rng.randrange(len(out)) for _ in range(flips))
    for pos in positions:
        out[pos] ^= 1 << rng.randrange(8)
    return bytes(out), f"{flips} bit(s) flipped at {positions[:8]}"


def _put(data: bytearray, pos: int, fmt: str, value: int) -> None:
    size = struct.calcsize(fmt)
    if pos + size <= len(data):
        data[pos:pos + size] = struct.pack(fmt, value % (1 << (8 * size)))


def _field_value(rng, width_bits: int) -> int:
    top = (1 << width_bits) - 1
    return rng.choice((0, 1, 2, 3, 4, 6, 7, 8, 15, 16, 24, 32, 255, top, top - 1,
                       rng.randrange(top + 1)))


# ---- header corruption, per format: pick a real header field and set an odd value ----

def _png_chunks(data: bytes) -> List[Tuple[int, bytes, int]]:
    """(offset, type, length) of each chunk header that fits in the file."""
    chunks, pos = [], 8
    while pos + 8 <= len(data) and len(chunks) < 64:
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        chunks.append((pos, data[pos + 4:pos + 8], length))
        pos += 12 + length
    return chunks


def _png_fix_crc(data: bytearray, pos: int) -> None:
    length = struct.unpack(">I", data[pos:pos + 4])[0]
    end = pos + 8 + length
    if end + 4 <= len(data):
        data[end:end + 4] = struct.pack(">I", zlib.crc32(bytes(data[pos + 4:end])) & 0xFFFFFFFF)


_PNG_IHDR = {"width": (16, ">I"), "height": (20, ">I"), "bit_depth": (24, "B"),
             "colour_type": (25, "B"), "compression": (26, "B"), "filter": (27, "B"),
             "interlace": (28, "B")}


def _png_header(rng, data):
    out = bytearray(data)
    chunks = _png_chunks(data)
    choice = rng.random()
    if choice < 0.6 or len(chunks) < 2:
        name = rng.choice(sorted(_PNG_IHDR))
        pos, fmt = _PNG_IHDR[name]
        value = _field_value(rng, 8 * struct.calcsize(fmt))
        _put(out, pos, fmt, value)
        fixed = rng.random() < 0.7
        if fixed:
            _png_fix_crc(out, 8)
        return bytes(out), f"IHDR {name}={value}{' (CRC fixed)' if fixed else ''}"
    pos, kind, _ = rng.choice(chunks[1:])
    if choice < 0.8:
        value = _field_value(rng, 32)
        _put(out, pos, ">I", value)
        return bytes(out), f"{kind!r} chunk length={value}"
    if kind in (b"eXIf", b"tRNS", b"PLTE") and pos + 12 < len(out):
        start = pos + 8 + rng.randrange(max(1, struct.unpack(">I", data[pos:pos + 4])[0]))
        value = rng.randrange(256)
        _put(out, start, "B", value)
        _png_fix_crc(out, pos)
        return bytes(out), f"{kind!r} body byte {start}={value} (CRC fixed)"
    new = rng.choice((b"IDAT", b"IEND", b"tRNS", b"eXIf", b"PLTE", b"zzzz"))
    out[pos + 4:pos + 8] = new
    return bytes(out), f"chunk type {kind!r} -> {new!r}"


def _jpeg_segments(data: bytes) -> List[Tuple[int, int]]:
    """(offset, marker) of each marker segment before the first scan."""
    segments, pos = [], 2
    while pos + 4 <= len(data) and len(segments) < 64 and data[pos] == 0xFF:
        marker = data[pos + 1]
        segments.append((pos, marker))
        if marker == 0xDA:
            break
        pos += 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
    return segments


def _jpeg_header(rng, data):
    out = bytearray(data)
    segments = _jpeg_segments(data)
    sofs = [pos for pos, marker in segments if marker in _SOF]
    choice = rng.random()
    if sofs and choice < 0.5:
        sof = sofs[0]
        fields = {"precision": (sof + 4, "B"), "height": (sof + 5, ">H"),
                  "width": (sof + 7, ">H"), "components": (sof + 9, "B"),
                  "sampling": (sof + 11, "B"), "quant_table": (sof + 12, "B")}
        name = rng.choice(sorted(fields))
        pos, fmt = fields[name]
        value = _field_value(rng, 8 * struct.calcsize(fmt))
        _put(out, pos, fmt, value)
        return bytes(out), f"SOF {name}={value}"
    if not segments:
        return _bitflip(rng, data, "JPEG")
    pos, marker = rng.choice(segments)
    length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
    if choice < 0.75:
        value = _field_value(rng, 16)
        _put(out, pos + 2, ">H", value)
        return bytes(out), f"marker 0x{marker:02X} segment length={value}"
    at = pos + 4 + rng.randrange(max(1, length - 2))
    value = rng.randrange(256)
    _put(out, at, "B", value)
    return bytes(out), f"marker 0x{marker:02X} body byte {at}={value}"


def _gif_descriptor(data: bytes) -> Optional[int]:
    """Offset of the first image descriptor (0x2C) after the global colour table, or None."""
    if len(data) < 13:
        return None
    table = 3 * (2 << (data[10] & 7)) if data[10] & 0x80 else 0
    pos = 13 + table
    while pos < len(data):
        if data[pos] == 0x2C:
            return pos
        if data[pos] != 0x21 or pos + 2 >= len(data):
            return None
        pos += 2
        while pos < len(data) and data[pos]:
            pos += 1 + data[pos]
        pos += 1
    return None


def _gif_header(rng, data):
    out = bytearray(data)
    fields = {"screen_width": (6, "<H"), "screen_height": (8, "<H"), "screen_packed": (10, "B"),
              "background": (11, "B")}
    descriptor = _gif_descriptor(data)
    if descriptor is not None:
        fields.update({"frame_left": (descriptor + 1, "<H"), "frame_top": (descriptor + 3, "<H"),
                       "frame_width": (descriptor + 5, "<H"), "frame_height": (descriptor + 7, "<H"),
                       "frame_packed": (descriptor + 9, "B"),
                       "lzw_min_code_size": (descriptor + 10, "B")})
    gce = data.find(b"\x21\xf9\x04")
    if gce >= 0:
        fields.update({"gce_flags": (gce + 3, "B"), "gce_transparent_index": (gce + 6, "B")})
    name = rng.choice(sorted(fields))
    pos, fmt = fields[name]
    value = _field_value(rng, 8 * struct.calcsize(fmt))
    _put(out, pos, fmt, value)
    return bytes(out), f"GIF {name}={value}"


_BMP = {"file_size": (2, "<I"), "pixel_offset": (10, "<I"), "dib_size": (14, "<I"),
        "width": (18, "<i"), "height": (22, "<i"), "planes": (26, "<H"), "bits": (28, "<H"),
        "compression": (30, "<I"), "image_size": (34, "<I"), "colours_used": (46, "<I")}


def _bmp_header(rng, data):
    out = bytearray(data)
    name = rng.choice(sorted(_BMP))
    pos, fmt = _BMP[name]
    value = _field_value(rng, 8 * struct.calcsize(fmt))
    if fmt == "<i":
        value = value - (1 << 32) if value >= 1 << 31 else value
        _put(out, pos, "<I", value)
    else:
        _put(out, pos, fmt, value)
    return bytes(out), f"BMP {name}={value}"


_HEADERS: Dict[str, Callable] = {"PNG": _png_header, "JPEG": _jpeg_header, "GIF": _gif_header,
                                 "BMP": _bmp_header}


def _header(rng, data, fmt):
    return _HEADERS[fmt](rng, data)


def _huge_dims(rng, data, fmt):
    """Declare a large width and/or height; the pixel data stays the seed's."""
    out = bytearray(data)
    width, height = rng.choice(_HUGE), rng.choice(_HUGE)
    if fmt == "PNG":
        _put(out, 16, ">I", width)
        _put(out, 20, ">I", height)
        _png_fix_crc(out, 8)
    elif fmt == "JPEG":
        sofs = [pos for pos, marker in _jpeg_segments(data) if marker in _SOF]
        width, height = width % 65536, height % 65536
        if sofs:
            _put(out, sofs[0] + 5, ">H", height)
            _put(out, sofs[0] + 7, ">H", width)
    elif fmt == "GIF":
        width, height = width % 65536, height % 65536
        descriptor = _gif_descriptor(data)
        for pos in (6,) + ((descriptor + 5,) if descriptor is not None else ()):
            _put(out, pos, "<H", width)
            _put(out, pos + 2, "<H", height)
    else:
        width, height = width % (1 << 31), height % (1 << 31)
        _put(out, 18, "<I", width)
        _put(out, 22, "<I", height if rng.random() < 0.5 else (1 << 32) - height)
    return bytes(out), f"declared {width}x{height}"


def _garbage(rng, data, fmt):
    body = rng.randbytes(rng.randrange(1, 4096))
    if rng.random() < 0.5:
        return SIGNATURES[fmt] + body, f"{fmt} signature + {len(body)} random bytes"
    return body, f"{len(body)} random bytes"


MUTATIONS: Dict[str, Callable] = {"none": _none, "zero_length": _zero_length,
                                  "truncate": _truncate, "bitflip": _bitflip, "header": _header,
                                  "huge_dims": _huge_dims, "garbage": _garbage}
