"""Tests of decode.py: all formats and modes normalise to 8-bit L/RGB PNG; bad files rejected."""
import hashlib
import io
import os
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageFile

from lensflow.components.image_example_gen.decode import RejectedImage, load_image
from lensflow.components.image_example_gen.tests.badfiles import png_chunk, png_header_only



H, W = 6, 8


def colour_pixels():
    rows, cols = np.mgrid[0:H, 0:W]
    return np.stack([rows * 40, cols * 30, 255 - rows * cols * 5], axis=-1).astype(np.uint8)


def grey_pixels():
    return (np.arange(H * W).reshape(H, W) * 5).astype(np.uint8)


def over_white(colour, alpha):
    a = alpha.astype(np.float64)[..., None] / 255.0 if colour.ndim == 3 else alpha / 255.0
    return np.rint(colour * a + 255.0 * (1.0 - a)).astype(np.uint8)


def alpha_ramp():
    return (np.arange(H * W).reshape(H, W) * 255 // (H * W - 1)).astype(np.uint8)


def save(path, image, fmt, **options):
    image.save(path, format=fmt, **options)
    return str(path)


def case_grey_png(tmp):
    return save(tmp / "g.png", Image.fromarray(grey_pixels()), "PNG"), grey_pixels(), 1, 0


def case_la_png(tmp):
    grey, alpha = grey_pixels(), alpha_ramp()
    image = Image.fromarray(np.stack([grey, alpha], -1), "LA")
    return save(tmp / "la.png", image, "PNG"), over_white(grey, alpha), 2, 0


def case_rgb(fmt, ext, **options):
    def make(tmp):
        path = save(tmp / f"c.{ext}", Image.fromarray(colour_pixels()), fmt, **options)
        return path, colour_pixels(), 3, 0
    return make


def case_rgba(fmt, ext, **options):
    def make(tmp):
        rgba = np.concatenate([colour_pixels(), alpha_ramp()[..., None]], -1)
        path = save(tmp / f"a.{ext}", Image.fromarray(rgba, "RGBA"), fmt, **options)
        return path, over_white(colour_pixels(), alpha_ramp()), 4, 0
    return make


def palette_image():
    palette = [255, 0, 0, 0, 128, 0, 10, 20, 250] + [0] * (256 * 3 - 9)
    indices = (np.arange(H * W).reshape(H, W) % 3).astype(np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette(palette)
    return image, np.array(palette[:9], dtype=np.uint8).reshape(3, 3)[indices]


def case_palette(fmt, ext):
    def make(tmp):
        image, expected = palette_image()
        return save(tmp / f"p.{ext}", image, fmt), expected, 3, 0
    return make


def case_palette_transparent(tmp):
    image, expected = palette_image()
    indices = np.asarray(image)
    expected[indices == 1] = 255
    return save(tmp / "pt.png", image, "PNG", transparency=1), expected, 4, 0


def case_jpeg(progressive):
    def make(tmp):
        path = save(tmp / "c.jpg", Image.fromarray(colour_pixels()), "JPEG",
                    quality=100, subsampling=0, progressive=progressive)
        return path, colour_pixels(), 3, 12
    return make


def case_grey_jpeg(tmp):
    path = save(tmp / "g.jpg", Image.fromarray(grey_pixels()), "JPEG", quality=100)
    return path, grey_pixels(), 1, 4


def case_cmyk_jpeg(tmp):
    cmyk = np.zeros((H, W, 4), np.uint8)
    cmyk[:, : W // 2, 0] = 255
    expected = np.full((H, W, 3), 255, np.uint8)
    expected[:, : W // 2, 0] = 0
    path = save(tmp / "k.jpg", Image.fromarray(cmyk, "CMYK"), "JPEG", quality=100)
    return path, expected, 3, 8


def ramp16():
    values = np.array([0, 1, 128, 129, 257, 32767, 32768, 65534, 65535], np.uint16)
    return np.resize(values, (H, W)).astype(np.uint16)


def scaled16(values):
    return np.rint(values.astype(np.float64) * 255.0 / 65535.0).astype(np.uint8)


def case_16bit(fmt, ext):
    def make(tmp):
        return save(tmp / f"d.{ext}", Image.fromarray(ramp16()), fmt), scaled16(ramp16()), 1, 0
    return make


def case_int32_tiff(tmp):
    image = Image.fromarray(ramp16().astype(np.int32), "I")
    return save(tmp / "i.tif", image, "TIFF"), scaled16(ramp16()), 1, 0


def case_float(scale):
    def make(tmp):
        values = np.linspace(0.0, scale, H * W, dtype=np.float32).reshape(H, W)
        expected = np.rint(values.astype(np.float64) * (255.0 / scale)).astype(np.uint8)
        path = save(tmp / f"f{int(scale)}.tif", Image.fromarray(values, "F"), "TIFF")
        return path, expected, 1, 0
    return make


def case_bilevel(fmt, ext):
    def make(tmp):
        bits = (np.add.outer(np.arange(H), np.arange(W)) % 2).astype(bool)
        path = save(tmp / f"b.{ext}", Image.fromarray(bits), fmt)
        return path, np.where(bits, 255, 0).astype(np.uint8), 1, 0
    return make


def case_gif_first_frame(tmp):
    frames = [Image.new("RGB", (W, H), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = save(tmp / "anim.gif", frames[0], "GIF", save_all=True, append_images=frames[1:])
    return path, np.full((H, W, 3), (255, 0, 0), np.uint8), 3, 0


def case_exif_rotated(tmp):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(tmp / "rot.png", Image.fromarray(colour_pixels()), "PNG", exif=exif)
    return path, np.rot90(colour_pixels(), k=-1), 3, 0


def case_rgb_colour_key(tmp):
    expected = colour_pixels()
    expected[0, 0] = 255
    key = tuple(int(v) for v in colour_pixels()[0, 0])
    path = save(tmp / "key.png", Image.fromarray(colour_pixels()), "PNG", transparency=key)
    return path, expected, 4, 0


def case_exif_rotated_jpeg(tmp):
    exif = Image.Exif()
    exif[0x0112] = 8
    path = save(tmp / "rot.jpg", Image.fromarray(colour_pixels()), "JPEG", exif=exif,
                quality=100, subsampling=0)
    return path, np.rot90(colour_pixels(), k=1), 3, 12


CASES = {
    "grey-png": case_grey_png,
    "la-png": case_la_png,
    "rgb-png": case_rgb("PNG", "png"),
    "rgb-bmp": case_rgb("BMP", "bmp"),
    "rgb-tiff": case_rgb("TIFF", "tif"),
    "rgb-tiff-lzw": case_rgb("TIFF", "tiff", compression="tiff_lzw"),
    "rgb-webp-lossless": case_rgb("WEBP", "webp", lossless=True),
    "rgba-png": case_rgba("PNG", "png"),
    "rgba-webp-lossless": case_rgba("WEBP", "webp", lossless=True, exact=True),
    "rgba-tiff": case_rgba("TIFF", "tif"),
    "palette-png": case_palette("PNG", "png"),
    "palette-gif": case_palette("GIF", "gif"),
    "palette-bmp": case_palette("BMP", "bmp"),
    "palette-transparent-png": case_palette_transparent,
    "jpeg-baseline": case_jpeg(False),
    "jpeg-progressive": case_jpeg(True),
    "jpeg-grey": case_grey_jpeg,
    "jpeg-cmyk": case_cmyk_jpeg,
    "16bit-png": case_16bit("PNG", "png"),
    "16bit-tiff": case_16bit("TIFF", "tif"),
    "int32-tiff": case_int32_tiff,
    "float-unit-tiff": case_float(1.0),
    "float-255-tiff": case_float(255.0),
    "1bit-png": case_bilevel("PNG", "png"),
    "1bit-bmp": case_bilevel("BMP", "bmp"),
    "gif-first-frame": case_gif_first_frame,
    "exif-orientation": case_exif_rotated,
    "exif-orientation-jpeg": case_exif_rotated_jpeg,
    "rgb-colour-key-png": case_rgb_colour_key,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_formats_and_modes_normalise_to_8bit_png(tmp_path, name):
    path, expected, channels, tolerance = CASES[name](tmp_path)
    decoded = load_image(path)
    with Image.open(path) as original:
        assert (decoded.original_format, decoded.mode) == (original.format, original.mode)
    assert decoded.channels == channels
    assert (decoded.height, decoded.width) == expected.shape[:2]
    with Image.open(io.BytesIO(decoded.png_bytes)) as png:
        assert png.format == "PNG" and png.mode == ("L" if expected.ndim == 2 else "RGB")
        pillow_pixels = np.asarray(png)
    assert decoded.png_channels == (1 if expected.ndim == 2 else 3)
    difference = np.abs(pillow_pixels.astype(int) - expected.astype(int)).max()
    assert difference <= tolerance, (name, difference)
    tf_pixels = tf.io.decode_png(decoded.png_bytes).numpy()
    np.testing.assert_array_equal(tf_pixels.reshape(pillow_pixels.shape), pillow_pixels)
    assert decoded.mean_brightness == pytest.approx(pillow_pixels.mean())
    with open(path, "rb") as handle:
        assert decoded.sha256 == hashlib.sha256(handle.read()).hexdigest()


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_an_already_normal_png_keeps_its_bytes(tmp_path, mode):
    pixels = grey_pixels() if mode == "L" else colour_pixels()
    path = save(tmp_path / "normal.png", Image.fromarray(pixels), "PNG")
    decoded = load_image(path)
    with open(path, "rb") as handle:
        assert decoded.png_bytes == handle.read()
    np.testing.assert_array_equal(tf.io.decode_png(decoded.png_bytes).numpy().reshape(pixels.shape),
                                  pixels)


@pytest.mark.parametrize("case", ["exif-orientation", "rgb-colour-key-png", "16bit-png",
                                  "1bit-png", "jpeg-grey"])
def test_pngs_that_need_normalising_are_re_encoded(tmp_path, case):
    path, expected, _, _ = CASES[case](tmp_path)
    decoded = load_image(path)
    with open(path, "rb") as handle:
        assert decoded.png_bytes != handle.read()
    assert decoded.png_bytes.startswith(b"\x89PNG")


def test_sixteen_bit_ramp_is_scaled_not_clipped(tmp_path):
    path = save(tmp_path / "ramp.png", Image.fromarray(ramp16()), "PNG")
    pixels = np.asarray(Image.open(io.BytesIO(load_image(path).png_bytes)))
    assert pixels.reshape(-1)[:9].tolist() == [0, 0, 0, 1, 1, 127, 128, 255, 255]


def valid_png_bytes():
    buffer = io.BytesIO()
    Image.fromarray(colour_pixels()).save(buffer, format="PNG")
    return buffer.getvalue()


def corrupt_idat_data():
    data = bytearray(valid_png_bytes())
    start = data.index(b"IDAT") + 4
    length = struct.unpack(">I", data[start - 8:start - 4])[0]
    for offset in range(2, length, 3):
        data[start + offset] ^= 0x5A
    return bytes(data)


def zero_width_png():
    ihdr = struct.pack(">IIBBBBB", 0, 5, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 5)) + png_chunk(b"IEND", b""))


def truncated_jpeg():
    buffer = io.BytesIO()
    Image.fromarray(colour_pixels()).save(buffer, format="JPEG")
    return buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3]


BAD_FILES = {
    "zero-byte": (b"", "zero-byte file"),
    "text": (b"hello, I am a text file\n", "not an image"),
    "truncated-png": (valid_png_bytes()[:-40], "truncated or corrupt"),
    "truncated-jpeg": (truncated_jpeg(), "truncated or corrupt"),
    "corrupt-png-data": (corrupt_idat_data(), "truncated or corrupt image data"),
    "garbled-png-header": (valid_png_bytes()[:30], "corrupt PNG file"),
    "bomb-pillow-limit": (png_header_only(100_000, 100_000), "decompression bomb"),
    "bomb-own-limit": (png_header_only(9_000, 9_000),
                       "decompression bomb: header claims 9000x9000"),
    "zero-width": (zero_width_png(), "zero dimensions"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_are_rejected_with_reason(tmp_path, name):
    content, reason = BAD_FILES[name]
    path = tmp_path / f"{name}.png"
    path.write_bytes(content)
    with pytest.raises(RejectedImage, match=reason) as caught:
        load_image(str(path))
    assert caught.value.reason == str(caught.value)


def test_limits_are_configurable(tmp_path):
    path = tmp_path / "ok.png"
    path.write_bytes(valid_png_bytes())
    with pytest.raises(RejectedImage, match="file too large"):
        load_image(str(path), max_bytes=100)
    with pytest.raises(RejectedImage, match=f"{W}x{H} = {W * H} pixels, limit is 10"):
        load_image(str(path), max_pixels=10)
    assert load_image(str(path), max_pixels=W * H).width == W


def test_missing_directory_and_pipe_are_rejected(tmp_path):
    with pytest.raises(RejectedImage, match="unreadable file"):
        load_image(str(tmp_path / "absent.png"))
    with pytest.raises(RejectedImage, match="not a regular file"):
        load_image(str(tmp_path))
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(RejectedImage, match="not a regular file"):
        load_image(str(tmp_path / "pipe.png"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_file_is_rejected(tmp_path):
    path = tmp_path / "locked.png"
    path.write_bytes(valid_png_bytes())
    path.chmod(0)
    with pytest.raises(RejectedImage, match="unreadable file"):
        load_image(str(path))


def test_out_of_range_pixels_are_rejected(tmp_path):
    wide_pixels = Image.fromarray(np.full((2, 2), 70_000, np.int32), "I")
    wide = save(tmp_path / "wide.tif", wide_pixels, "TIFF")
    with pytest.raises(RejectedImage, match="outside the 16-bit range"):
        load_image(wide)
    nan_pixels = Image.fromarray(np.full((2, 2), np.nan, np.float32), "F")
    nan = save(tmp_path / "nan.tif", nan_pixels, "TIFF")
    with pytest.raises(RejectedImage, match="NaN"):
        load_image(nan)


def test_truncated_loading_must_stay_off(tmp_path, monkeypatch):
    path = tmp_path / "ok.png"
    path.write_bytes(valid_png_bytes())
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        load_image(str(path))


def _taller_header(png: bytes, extra_rows: int) -> bytes:
    """``png`` with IHDR declaring ``extra_rows`` more rows than its pixel stream holds (the CRC
    recomputed, so only the short stream is wrong)."""
    data = bytearray(png)
    data[20:24] = struct.pack(">I", struct.unpack(">I", data[20:24])[0] + extra_rows)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def test_png_with_fewer_rows_than_its_header_is_rejected(tmp_path):
    """Pillow fills the missing rows with black and raises nothing; the served graph refuses
    the same bytes. Found by benchmarks/fuzz_inputs.py (IHDR height raised, CRC fixed)."""
    from lensflow.components.transform import decode as graph_decode
    from lensflow.pipeline.config import SAMPLE_DATA

    real = Image.open(sorted((SAMPLE_DATA / "bag").glob("*.png"))[0])
    buffer = io.BytesIO()
    real.save(buffer, format="PNG")
    whole = buffer.getvalue()
    path = tmp_path / "short.png"
    path.write_bytes(_taller_header(whole, 10))
    with pytest.raises(RejectedImage, match=r"pixel stream holds \d+ of the \d+ bytes its "
                                            rf"{real.width}x{real.height + 10} header"):
        load_image(str(path))
    with pytest.raises(tf.errors.InvalidArgumentError):
        graph_decode.decode_raw_image(tf.constant(path.read_bytes()), 40_000_000)
    path.write_bytes(whole)
    assert load_image(str(path)).height == real.height


def test_png_with_corrupt_exif_chunk_is_rejected_not_raised(tmp_path):
    """A real PNG whose eXIf chunk does not start with a TIFF byte order (CRC fixed): Pillow's
    getexif raised SyntaxError, which escaped load_image and would stop ingestion. Found by
    benchmarks/fuzz_inputs.py."""
    from lensflow.pipeline.config import SAMPLE_DATA

    real = Image.open(sorted((SAMPLE_DATA / "bag").glob("*.png"))[0])
    exif = Image.Exif()
    exif[0x0112] = 1
    buffer = io.BytesIO()
    real.save(buffer, format="PNG", exif=exif.tobytes())
    data = bytearray(buffer.getvalue())
    start = data.index(b"eXIf")
    data[start + 4:start + 6] = b"KM"       # "MM" byte order with one bit flipped
    length = struct.unpack(">I", data[start - 4:start])[0]
    data[start + 4 + length:start + 8 + length] = struct.pack(
        ">I", zlib.crc32(bytes(data[start:start + 4 + length])) & 0xFFFFFFFF)
    path = tmp_path / "bad_exif.png"
    path.write_bytes(bytes(data))
    with pytest.raises(RejectedImage, match="corrupt EXIF metadata: not a TIFF file"):
        load_image(str(path))
