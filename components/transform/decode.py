"""The one in-graph image decode: raw file bytes -> the pixels ingestion's Pillow code makes of them.

Transform decodes the PNGs ingestion wrote, and the served graph decodes whatever a client sends,
with this same function, so a served raw file reaches the model as the Trainer saw it:

- the format and the declared dimensions are read from the header first; WebP, TIFF and anything
  that is not PNG/JPEG/GIF/BMP, and headers over ``max_pixels``, are refused (InvalidArgument,
  TF Serving's 400) before a pixel is decoded, so a decompression bomb costs nothing;
- JPEG: the EXIF orientation (APP1, IFD0 tag 0x0112) is read with string ops and applied (TF has no
  EXIF op); ``INTEGER_ACCURATE`` IDCT, as libjpeg's default that Pillow uses; CMYK is converted by
  TF's decoder (equal to Pillow on the test corpus; the tests allow JPEGs one grey level);
- PNG: the EXIF orientation of an eXIf chunk before the pixels is applied as for a JPEG; alpha,
  grey/colour tRNS keys and palette tRNS are composited over white with ingestion's integer formula; 16-bit grey is scaled as ingestion scales it, 16-bit colour keeps the high byte
  as Pillow does;
- GIF: the first frame; its transparent colour index is painted white (what compositing a
  binary alpha over white gives). ``tf.io.decode_gif`` decodes every frame, so the pixel limit
  bounds one frame, not an animation's total;
- grey sources stay grey and colour sources colour, exactly as ingestion's L/RGB PNGs.

The reference is ``components/image_example_gen/decode.py``; ``tests/test_decode.py`` holds the two
to equality on a generated corpus.
"""
from __future__ import annotations

import functools
import re
from typing import Optional

import tensorflow as tf

PNG, JPEG, GIF, BMP, WEBP, TIFF, UNKNOWN = range(7)
SERVEABLE_FORMATS = ("PNG", "JPEG", "GIF", "BMP")
_NOT_SERVEABLE = {
    WEBP: "WebP images cannot be decoded by the served model (TensorFlow has no WebP decoder); "
          "send PNG or JPEG",
    TIFF: "TIFF images cannot be decoded by the served model (TensorFlow has no TIFF decoder); "
          "send PNG or JPEG",
    UNKNOWN: "not an image the served model can decode: expected PNG, JPEG, GIF or BMP bytes",
}
_PNG_CHUNK_LIMIT = 256    # chunks walked before the pixels while looking for tRNS
_JPEG_SCAN_LIMIT = 64      # markers walked before the first scan while looking for EXIF
_IFD_ENTRY_LIMIT = 512     # IFD0 entries examined for the orientation tag
_GIF_BLOCK_LIMIT = 4096    # GIF blocks/sub-blocks walked before the first image descriptor
_TRNS, _IDAT = int.from_bytes(b"tRNS", "big"), int.from_bytes(b"IDAT", "big")
_EXIF = int.from_bytes(b"eXIf", "big")
# Bytes a file needs before its header is whole: PNG signature + IHDR chunk, GIF header +
# logical screen descriptor, BMP file header + the smallest (core) DIB header.
_HEADER_BYTES = {PNG: 33, GIF: 13, BMP: 26}


def _bytes(data, length, pos, n):
    """``n`` bytes at ``pos`` as int64 (zeros past the end, never an out-of-range error)."""
    pos = tf.clip_by_value(tf.cast(pos, tf.int32), 0, length)
    raw = tf.io.decode_raw(tf.strings.substr(data, pos, n), tf.uint8)
    raw = tf.pad(raw, [[0, n - tf.size(raw)]])
    return tf.cast(raw, tf.int64)


def _uint(data, length, pos, n, little):
    """Unsigned ``n``-byte integer at ``pos`` in the given byte order."""
    raw = _bytes(data, length, pos, n)
    weights = tf.constant([256 ** i for i in range(n)], tf.int64)
    return tf.cond(little, lambda: tf.reduce_sum(raw * weights),
                   lambda: tf.reduce_sum(raw * tf.reverse(weights, [0])))


def _switch(index, branches):
    """``tf.switch_case`` as nested ``tf.cond``: TFT cannot serialise the Case op's branch list."""
    index = tf.cast(index, tf.int32)
    result = branches[-1]
    for position in range(len(branches) - 2, -1, -1):
        result = (lambda i, then, other: lambda: tf.cond(tf.equal(index, i), then, other))(
            position, branches[position], result)
    return result()


def sniff(data: tf.Tensor) -> tf.Tensor:
    """Format id (``PNG`` ... ``UNKNOWN``) of one encoded image from its signature."""
    head = tf.strings.join([tf.strings.substr(data, 0, 12), b"\x00" * 12])
    first8 = tf.strings.substr(head, 0, 8)
    first4 = tf.strings.substr(head, 0, 4)
    first6 = tf.strings.substr(head, 0, 6)
    cases = [
        (tf.equal(first8, b"\x89PNG\r\n\x1a\n"), PNG),
        (tf.equal(tf.strings.substr(head, 0, 3), b"\xff\xd8\xff"), JPEG),
        (tf.logical_or(tf.equal(first6, b"GIF87a"), tf.equal(first6, b"GIF89a")), GIF),
        (tf.equal(tf.strings.substr(head, 0, 2), b"BM"), BMP),
        (tf.logical_and(tf.equal(first4, b"RIFF"),
                        tf.equal(tf.strings.substr(head, 8, 4), b"WEBP")), WEBP),
        (tf.logical_or(tf.equal(first4, b"II*\x00"), tf.equal(first4, b"MM\x00*")), TIFF),
    ]
    result = tf.constant(UNKNOWN)
    for cond, fmt in reversed(cases):
        result = tf.where(cond, tf.constant(fmt), result)
    return result


def _batch_uint(images, pos, n, little: bool):
    """Unsigned ``n``-byte integer at ``pos`` of every image of a batch [B] (0 past the end)."""
    shape = tf.shape(images)
    length = tf.strings.length(images)
    pos = tf.clip_by_value(tf.cast(pos, tf.int32) + tf.zeros(shape, tf.int32), 0, length)
    piece = tf.strings.substr(images, pos, tf.fill(shape, n))
    piece = tf.strings.substr(tf.strings.join([piece, b"\x00" * n]), tf.zeros(shape, tf.int32),
                              tf.fill(shape, n))
    raw = tf.cast(tf.io.decode_raw(piece, tf.uint8), tf.int64)
    weights = [256 ** i for i in range(n)]
    return tf.reduce_sum(raw * tf.constant(weights if little else weights[::-1], tf.int64), -1)


def _declared_size(images, fmt):
    """[B] heights and widths the PNG/GIF/BMP headers declare (JPEG: see ``_jpeg_size_ok``)."""
    core_bmp = tf.equal(_batch_uint(images, 14, 4, True), 12)

    def signed32(pos):
        value = _batch_uint(images, pos, 4, True)
        return tf.abs(tf.where(value >= 2 ** 31, value - 2 ** 32, value))
    bmp_h = tf.where(core_bmp, _batch_uint(images, 20, 2, True), signed32(22))
    bmp_w = tf.where(core_bmp, _batch_uint(images, 18, 2, True), signed32(18))
    height = tf.where(tf.equal(fmt, PNG), _batch_uint(images, 20, 4, False),
                      tf.where(tf.equal(fmt, GIF), _batch_uint(images, 8, 2, True), bmp_h))
    width = tf.where(tf.equal(fmt, PNG), _batch_uint(images, 16, 4, False),
                     tf.where(tf.equal(fmt, GIF), _batch_uint(images, 6, 2, True), bmp_w))
    return height, width


def _first(values, where):
    """The first of ``values`` where ``where`` holds (0 when none does)."""
    return tf.gather(tf.concat([tf.boolean_mask(values, where), tf.zeros([1], values.dtype)], 0),
                     0)


def _pixel_limit_message(width, height, max_pixels: int):
    return tf.strings.format("image header declares {}x{} pixels (width x height); the limit is "
                             f"{max_pixels} pixels (data.max_image_pixels) and both sides must be "
                             "positive", (width, height))


def inspect(images: tf.Tensor, max_pixels: int):
    """Header checks of a batch [B] of encoded images, before any pixel is decoded: refuse
    formats the graph cannot decode and PNG/GIF/BMP headers over ``max_pixels`` (JPEG's are
    checked by ``_decode_jpeg`` before it decodes). Returns (format ids [B], PNG kinds [B],
    offsets of each PNG's EXIF data [B], 0 when it has none)."""
    fmt = sniff(images)
    asserts = [tf.debugging.Assert(tf.reduce_all(tf.not_equal(fmt, code)), [message])
               for code, message in _NOT_SERVEABLE.items()]
    length = tf.strings.length(images)
    truncated = tf.zeros_like(fmt, tf.bool)
    for code, need in _HEADER_BYTES.items():
        truncated = tf.logical_or(truncated, tf.logical_and(tf.equal(fmt, code), length < need))
    names = tf.gather(tf.constant(["PNG", "JPEG", "GIF", "BMP", "", "", ""]), fmt)
    asserts.append(tf.debugging.Assert(tf.logical_not(tf.reduce_any(truncated)), [
        tf.strings.join(["truncated ", _first(names, truncated), " file: ",
                         tf.strings.as_string(_first(length, truncated)),
                         " bytes cannot hold its header"])]))
    height, width = _declared_size(images, fmt)
    pixels = height * width
    sized = tf.logical_or(tf.equal(fmt, PNG), tf.logical_or(tf.equal(fmt, GIF),
                                                              tf.equal(fmt, BMP)))
    sized = tf.logical_and(sized, tf.logical_not(truncated))
    bad = tf.logical_and(sized, tf.logical_or(pixels <= 0, pixels > max_pixels))
    asserts.append(tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [
        _pixel_limit_message(_first(width, bad), _first(height, bad), max_pixels)]))
    bits = _batch_uint(images, 28, 2, True)
    compression = _batch_uint(images, 30, 4, True)
    plain = tf.logical_and(tf.logical_or(tf.equal(bits, 24), tf.equal(bits, 32)),
                           tf.equal(compression, 0))
    bad_bmp = tf.logical_and(tf.logical_and(tf.equal(fmt, BMP), tf.logical_not(truncated)),
                             tf.logical_not(plain))
    asserts.append(tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad_bmp)), [
        tf.strings.format("BMP images with {} bits per pixel (compression {}) cannot be decoded "
                          "by the served model (only uncompressed 24/32-bit BMP); send PNG or "
                          "JPEG", (_first(bits, bad_bmp), _first(compression, bad_bmp)))]))
    with tf.control_dependencies(asserts):
        fmt = tf.identity(fmt)
        has_trns, exif = _png_chunks(images, fmt)
        return fmt, _png_kinds(images, fmt, has_trns), exif


def _jpeg_size_ok(data, max_pixels: int):
    """Assert a JPEG's declared size (read by ``extract_jpeg_shape``, no decoding) is in limit."""
    shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
    pixels = shape[0] * shape[1]
    return tf.debugging.Assert(tf.logical_and(pixels > 0, pixels <= max_pixels), [
        _pixel_limit_message(shape[1], shape[0], max_pixels)])


def check(data: tf.Tensor, max_pixels: int) -> tf.Tensor:
    """Every header check of one encoded image (format, BMP depth, declared pixels, JPEG's
    included); returns its format id."""
    fmt = inspect(data[None], max_pixels)[0][0]
    return tf.cond(tf.equal(fmt, JPEG), lambda: _with(_jpeg_size_ok(data, max_pixels), fmt),
                   lambda: fmt)


def _with(dependency, value):
    with tf.control_dependencies([dependency]):
        return tf.identity(value)


def check_request_bytes(images: tf.Tensor, max_bytes: int) -> tf.Tensor:
    """Assert no request image is empty or larger than ``max_bytes`` (data.max_file_bytes)."""
    lengths = tf.strings.length(images)
    ok = tf.debugging.Assert(
        tf.reduce_all(lengths <= max_bytes),
        [tf.strings.format("image of {} bytes is larger than the limit of "
                           f"{max_bytes} bytes (data.max_file_bytes)",
                           tf.reduce_max(tf.concat([lengths, [0]], 0)))])
    empty = tf.debugging.Assert(tf.reduce_all(lengths > 0), ["empty image (zero bytes)"])
    with tf.control_dependencies([ok, empty]):
        return tf.identity(images)


def over_white(colour: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """Ingestion's compositing, ``(c*a + 255*(255-a) + 127) // 255``, on uint8 tensors."""
    c = tf.cast(colour, tf.int32)
    a = tf.cast(alpha, tf.int32)
    return tf.cast((c * a + 255 * (255 - a) + 127) // 255, tf.uint8)


def _as_rgb(image: tf.Tensor) -> tf.Tensor:
    """[H, W, 1|3] uint8 -> [H, W, 3]; the grey flag travels separately."""
    return tf.cond(tf.shape(image)[-1] == 1, lambda: tf.tile(image, [1, 1, 3]),
                   lambda: image)


_OPAQUE, _ALPHA, _GREY16, _GREY_SOURCE = 0, 1, 2, 4


def _png_kinds(images, fmt, has_trns):
    """[B] how each PNG is decoded (``_OPAQUE``/``_ALPHA``/``_GREY16``, plus ``_GREY_SOURCE``
    when ingestion keeps it grey), read from IHDR for the whole batch at once."""
    depth = _batch_uint(images, 24, 1, False)
    colour_type = _batch_uint(images, 25, 1, False)
    # Pillow opens 16-bit grey+alpha as RGBA (a colour source) and ignores a 16-bit grey tRNS.
    grey16 = tf.logical_and(tf.equal(colour_type, 0), tf.equal(depth, 16))
    grey = tf.logical_or(tf.equal(colour_type, 0),
                         tf.logical_and(tf.equal(colour_type, 4), tf.not_equal(depth, 16)))
    alpha = tf.logical_or(tf.logical_or(tf.equal(colour_type, 4), tf.equal(colour_type, 6)),
                          has_trns)
    mode = tf.where(grey16, _GREY16, tf.where(alpha, _ALPHA, _OPAQUE))
    kinds = mode + tf.where(grey, _GREY_SOURCE, 0)
    return tf.cast(tf.where(tf.equal(fmt, PNG), kinds, 0), tf.int64)


def _decode_png(data, kind, exif):
    """PNG -> ([H, W, 3] uint8, is_grey) as ingestion normalises it (``kind``: ``_png_kinds``;
    ``exif``: where its EXIF data starts, whose orientation Pillow applies as for a JPEG)."""
    mode = tf.math.floormod(kind, _GREY_SOURCE)
    grey = kind >= _GREY_SOURCE

    def scaled16():
        wide = tf.cast(tf.io.decode_png(data, channels=1, dtype=tf.uint16), tf.int64)
        return tf.tile(tf.cast((wide * 255 + 32767) // 65535, tf.uint8), [1, 1, 3])

    def composited():
        pixels = tf.io.decode_png(data, channels=4)  # 16-bit keeps the high byte, as Pillow
        return over_white(pixels[..., :3], pixels[..., 3:])

    def opaque():  # TF fills alpha wrongly for palettes under 8 bits: decode without it
        return tf.cond(grey, lambda: tf.tile(tf.io.decode_png(data, channels=1), [1, 1, 3]),
                       lambda: tf.io.decode_png(data, channels=3))

    image = tf.cond(tf.equal(mode, _ALPHA), composited,
                    lambda: tf.cond(tf.equal(mode, _GREY16), scaled16, opaque))
    return orient(image, _exif_orientation(data, exif)), grey


def _png_chunks(images, fmt):
    """[B] whether each PNG has a tRNS chunk (a colour key or palette alpha) and [B] where its
    eXIf chunk's TIFF data starts (0: none), from the chunks before its pixels, walking the
    whole batch at once. (The PNG extensions place eXIf before IDAT; Pillow writes it there.)"""
    def cond(pos, found, exif, done, steps):
        return tf.logical_and(tf.logical_not(tf.reduce_all(done)),
                              tf.less(steps, _PNG_CHUNK_LIMIT))

    def body(pos, found, exif, done, steps):
        kind = _batch_uint(images, pos + 4, 4, False)
        live = tf.logical_not(done)
        hit = tf.logical_and(live, tf.equal(kind, _TRNS))
        exif = tf.where(tf.logical_and(live, tf.logical_and(tf.equal(kind, _EXIF),
                                                            tf.equal(exif, 0))), pos + 8, exif)
        stop = tf.logical_or(tf.equal(kind, _IDAT), tf.equal(kind, 0))
        step = 12 + _batch_uint(images, pos, 4, False)
        return (tf.where(done, pos, pos + step), tf.logical_or(found, hit), exif,
                tf.logical_or(done, stop), steps + 1)

    not_png = tf.not_equal(fmt, PNG)
    start = tf.fill(tf.shape(images), tf.constant(8, tf.int64))
    _, found, exif, _, _ = tf.while_loop(
        cond, body, [start, tf.zeros_like(not_png), tf.zeros_like(start), not_png,
                     tf.constant(0)])
    return found, exif


def _jpeg_orientation(data):
    """EXIF orientation (1-8; 1 when absent or unreadable) from the first Exif APP1 segment."""
    length = tf.strings.length(data)

    def cond(pos, found, steps):
        return tf.logical_and(tf.less(found, 0), tf.less(steps, _JPEG_SCAN_LIMIT))

    def body(pos, found, steps):
        head = _bytes(data, length, pos, 4)
        marker = head[1]
        valid = tf.logical_and(tf.equal(head[0], 0xFF),
                               tf.logical_and(tf.not_equal(marker, 0xDA),
                                              tf.not_equal(marker, 0xD9)))
        is_exif = tf.logical_and(tf.equal(marker, 0xE1), tf.equal(
            tf.strings.substr(data, tf.cast(tf.minimum(pos + 4, tf.cast(length, tf.int64)),
                                            tf.int32), 6), b"Exif\x00\x00"))
        found = tf.where(tf.logical_and(valid, is_exif), pos + 10, found)
        found = tf.where(tf.logical_or(valid, tf.greater_equal(found, 0)), found,
                         tf.constant(0, tf.int64))  # stop: 0 means "no EXIF"
        return pos + 2 + head[2] * 256 + head[3], found, steps + 1

    _, tiff, _ = tf.while_loop(cond, body, [tf.constant(2, tf.int64),
                                            tf.constant(-1, tf.int64), tf.constant(0)])
    return _exif_orientation(data, tiff)


def _exif_orientation(data, tiff):
    """EXIF orientation (1-8; 1 when absent or unreadable) from the TIFF-structured EXIF data
    starting at byte ``tiff`` of ``data`` (0: there is none)."""
    length = tf.strings.length(data)

    def read_orientation():
        order = tf.strings.substr(data, tf.cast(tiff, tf.int32), 2)
        little = tf.equal(order, b"II")
        known = tf.logical_or(little, tf.equal(order, b"MM"))
        ifd = tiff + _uint(data, length, tiff + 4, 4, little)
        count = tf.minimum(_uint(data, length, ifd, 2, little), _IFD_ENTRY_LIMIT)

        def entry(i):
            at = ifd + 2 + 12 * i
            tag = _uint(data, length, at, 2, little)
            kind = _uint(data, length, at + 2, 2, little)
            n = _uint(data, length, at + 4, 4, little)
            value = _switch(tf.cast(tf.clip_by_value(kind, 0, 4), tf.int32), [
                lambda: tf.constant(1, tf.int64),
                lambda: _uint(data, length, at + 8, 1, little),
                lambda: tf.constant(1, tf.int64),
                lambda: _uint(data, length, at + 8, 2, little),
                lambda: _uint(data, length, at + 8, 4, little)])
            hit = tf.logical_and(tf.equal(tag, 0x0112), tf.equal(n, 1))
            return tf.where(hit, value, tf.constant(-1, tf.int64))

        values = tf.map_fn(entry, tf.range(count, dtype=tf.int64),
                           fn_output_signature=tf.int64)
        values = tf.boolean_mask(values, values >= 0)
        value = tf.cond(tf.size(values) > 0, lambda: values[0], lambda: tf.constant(1, tf.int64))
        return tf.where(known, value, tf.constant(1, tf.int64))

    value = tf.cond(tiff > 0, read_orientation, lambda: tf.constant(1, tf.int64))
    return tf.where(tf.logical_and(value >= 1, value <= 8), value, tf.constant(1, tf.int64))


def orient(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Apply an EXIF orientation (1-8) to [H, W, C] as Pillow's ``ImageOps.exif_transpose``."""
    def transpose(x):
        return tf.transpose(x, [1, 0, 2])
    return _switch(tf.cast(orientation, tf.int32) - 1, [
        lambda: image,
        lambda: image[:, ::-1],                  # 2: mirror left-right
        lambda: image[::-1, ::-1],               # 3: rotate 180
        lambda: image[::-1],                     # 4: mirror top-bottom
        lambda: transpose(image),                # 5: transpose
        lambda: tf.image.rot90(image, k=3),      # 6: rotate 90 clockwise
        lambda: transpose(image[::-1, ::-1]),    # 7: transverse
        lambda: tf.image.rot90(image, k=1)])     # 8: rotate 90 counter-clockwise


def _decode_jpeg(data, max_pixels: int):
    """JPEG (grey, YCbCr, CMYK; baseline or progressive) with its EXIF orientation applied; the
    declared size is checked first."""
    with tf.control_dependencies([_jpeg_size_ok(data, max_pixels)]):
        image = tf.io.decode_jpeg(data, channels=0, dct_method="INTEGER_ACCURATE")
    image = orient(image, _jpeg_orientation(data))
    return _as_rgb(image), tf.equal(tf.shape(image)[-1], 1)


def _gif_layout(data):
    """(first image descriptor offset, offset of the transparency-flag byte of the last
    Graphics Control Extension before it that sets one, or -1)."""
    length = tf.strings.length(data)
    packed = _bytes(data, length, 10, 1)[0]
    table = tf.where(packed >= 128, 3 * tf.bitwise.left_shift(
        tf.constant(2, tf.int64), tf.bitwise.bitwise_and(packed, 7)), 0)

    def cond(pos, in_sub, gce, done, steps):
        return tf.logical_and(tf.logical_not(done), tf.less(steps, _GIF_BLOCK_LIMIT))

    def body(pos, in_sub, gce, done, steps):
        head = _bytes(data, length, pos, 4)

        def sub_block():
            return pos + 1 + head[0], tf.not_equal(head[0], 0), gce, tf.constant(False)

        def block():
            extension = tf.equal(head[0], 0x21)
            transparent_gce = tf.logical_and(
                tf.logical_and(extension, tf.equal(head[1], 0xF9)),
                tf.equal(tf.bitwise.bitwise_and(head[3], 1), 1))
            return (tf.where(extension, pos + 2, pos), extension,
                    tf.where(transparent_gce, pos + 3, gce), tf.logical_not(extension))

        pos, in_sub, gce, done = tf.cond(in_sub, sub_block, block)
        return pos, in_sub, gce, done, steps + 1

    pos, _, gce, _, _ = tf.while_loop(cond, body, [
        13 + table, tf.constant(False), tf.constant(-1, tf.int64), tf.constant(False),
        tf.constant(0)])
    return pos, gce, table


def _decode_gif(data):
    """First GIF frame; the transparent index painted white (binary alpha over white)."""
    length = tf.strings.length(data)
    descriptor, gce, global_table = _gif_layout(data)
    packed = _bytes(data, length, descriptor + 9, 1)[0]
    local = packed >= 128
    local_table = 3 * tf.bitwise.left_shift(tf.constant(2, tf.int64),
                                            tf.bitwise.bitwise_and(packed, 7))
    table_at = tf.where(local, descriptor + 10, tf.constant(13, tf.int64))
    table_len = tf.where(local, local_table, global_table)
    table = _bytes(data, length, table_at, 768)
    ramp = tf.repeat(tf.range(256, dtype=tf.int64), 3)
    in_table = tf.range(768, dtype=tf.int64) < table_len
    grey = tf.reduce_all(tf.logical_or(tf.logical_not(in_table), tf.equal(table, ramp)))

    def paint():
        index = _bytes(data, length, gce + 3, 1)[0]
        flag = tf.bitwise.bitwise_and(_bytes(data, length, gce, 1)[0], 0xFE)
        cleared = _replace(data, gce, _byte(flag))  # TF would paint it black: clear the flag
        return tf.cond(3 * index + 3 <= table_len,
                       lambda: _replace(cleared, table_at + 3 * index, b"\xff\xff\xff"),
                       lambda: cleared)

    painted = tf.cond(gce >= 0, paint, lambda: data)
    return tf.io.decode_gif(painted)[0], grey


def _byte(value):
    """A one-byte string holding ``value`` (0-255)."""
    return tf.strings.substr(tf.constant(bytes(range(256))), tf.cast(value, tf.int32), 1)


def _replace(data, pos, replacement):
    """``data`` with the bytes at ``pos`` overwritten by ``replacement`` (same length)."""
    pos = tf.cast(pos, tf.int32)
    rest = pos + tf.strings.length(replacement)
    return tf.strings.join([tf.strings.substr(data, 0, pos), replacement,
                            tf.strings.substr(data, rest, tf.strings.length(data) - rest)])


def _decode_bmp(data):
    """24/32-bit uncompressed BMP; a 32-bit BMP's fourth byte is ignored, as Pillow's BGRX."""
    image = tf.io.decode_bmp(data, channels=0)
    return _as_rgb(image[..., :3]), tf.constant(False)


def decode_inspected(data: tf.Tensor, fmt: tf.Tensor, png_kind: tf.Tensor, png_exif: tf.Tensor,
                     max_pixels: int):
    """One encoded image whose batch passed ``inspect`` -> ([H, W, 3] uint8, is_grey)."""
    return _switch(tf.minimum(fmt, 3), [
        lambda: _decode_png(data, png_kind, png_exif),
        lambda: _decode_jpeg(data, max_pixels),
        lambda: _decode_gif(data),
        lambda: _decode_bmp(data)])


def decode_raw_image(data: tf.Tensor, max_pixels: int):
    """One encoded image -> ([H, W, 3] uint8, is_grey): ingestion's pixels, in the graph."""
    fmt, png_kind, png_exif = inspect(data[None], max_pixels)
    return decode_inspected(data, fmt[0], png_kind[0], png_exif[0], max_pixels)


def to_channels(image: tf.Tensor, is_grey: tf.Tensor, channels: int) -> tf.Tensor:
    """Ingestion's L/RGB image -> the model's colour mode, as Transform always converted it."""
    if channels == 1:
        return tf.cond(is_grey, lambda: image[..., :1],
                       lambda: tf.image.rgb_to_grayscale(image))
    return image


def decode(data: tf.Tensor, channels: int, max_pixels: int) -> tf.Tensor:
    """One encoded image -> uint8 [H, W, channels] as the Trainer saw the same file."""
    image, is_grey = decode_raw_image(data, max_pixels)
    return to_channels(image, is_grey, channels)


@functools.lru_cache(maxsize=4)
def _check_function(max_pixels: int):
    return tf.function(lambda data: check(data, max_pixels),
                       input_signature=[tf.TensorSpec([], tf.string)])


def serving_refusal(data: bytes, max_pixels: int) -> Optional[str]:
    """Why the served graph would refuse these file bytes as sent (its own header check, run
    eagerly: format, BMP depth, declared pixels), or None when it would decode them."""
    try:
        _check_function(max_pixels)(tf.constant(data))
    except tf.errors.InvalidArgumentError as err:
        found = re.search(r"assertion failed: \[(.*?)\]", err.message, re.S)
        return found.group(1) if found else err.message.splitlines()[0]
    return None
