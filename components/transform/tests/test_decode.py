"""The in-graph decode equals ingestion's Pillow decode, file by file, on a generated corpus.

"The Trainer's pixels" are what Transform decodes from the PNG ingestion writes; "the served
pixels" are what the same graph decodes from the raw file a client sends.
"""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from lensflow.components.image_example_gen.decode import load_image
from lensflow.components.transform import decode, preprocessing
from lensflow.components.transform.tests import corpus
from lensflow.pipeline.config import DataConfig, ImageConfig

LIMIT = DataConfig.max_image_pixels
FILES = corpus.corpus()


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """name -> (ingestion's PNG bytes, ingestion's uint8 array)."""
    root = tmp_path_factory.mktemp("corpus")
    out = {}
    for name, data in {**FILES, **corpus.not_serveable()}.items():
        path = root / name
        path.write_bytes(data)
        image = load_image(str(path))
        out[name] = image.png_bytes, np.asarray(Image.open(io.BytesIO(image.png_bytes)))
    return out


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _decode_native(data):
    return decode.decode_raw_image(data, LIMIT)


def served(data: bytes) -> np.ndarray:
    """The graph's decode of raw bytes in ingestion's layout (HxW grey or HxWx3 colour)."""
    image, is_grey = _decode_native(tf.constant(data))
    image = image.numpy()
    return image[..., 0] if bool(is_grey) else image


def tolerance(name: str) -> int:
    """JPEG decoders may legitimately differ by one grey level; everything else is exact."""
    return 1 if name in corpus.JPEG_NAMES else 0


@pytest.mark.parametrize("name", sorted(FILES))
def test_served_pixels_equal_ingestion_pixels(name, ingested):
    png, expected = ingested[name]
    got = served(FILES[name])
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= tolerance(name)
    assert np.array_equal(served(png), expected)  # the Trainer's decode of the ingested PNG


def test_the_corpus_exercises_what_it_claims(ingested):
    base = corpus.base_image()
    assert base.shape[0] != base.shape[1]
    for orientation in (5, 6, 7, 8):
        assert ingested[f"exif_{orientation}"][1].shape[:2] == base.shape[1::-1]
    rotated = {ingested[f"exif_{o}"][1].tobytes() for o in (1, 2, 3, 4)}
    assert len(rotated) == 4
    for orientation in (5, 6, 7, 8):  # Pillow applies a PNG's eXIf orientation too
        assert ingested[f"png_exif_{orientation}"][1].shape[:2] == base.shape[1::-1]
    assert len({ingested[f"png_exif_{o}"][1].tobytes() for o in range(1, 9)}) == 8
    for name in ("png_rgba", "png_la", "png_palette_trns", "png_grey_trns", "gif_transparent"):
        pixels = ingested[name][1]
        assert pixels.min() < 255 and (pixels == 255).any(), name
    assert ingested["png_la"][1].ndim == 2 and ingested["png16_la"][1].ndim == 3
    assert ingested["gif_grey_ramp"][1].ndim == 2


@pytest.mark.parametrize("color_mode", ["grayscale", "rgb"])
def test_model_input_from_raw_files_equals_the_trainers(color_mode, ingested):
    cfg = ImageConfig(size=12, color_mode=color_mode, resize_policy="crop")
    names = sorted(FILES)
    raw = preprocessing.decode_and_resize(tf.constant([FILES[n] for n in names]), cfg, LIMIT)
    trainer = preprocessing.decode_and_resize(
        tf.constant([ingested[n][0] for n in names]), cfg, LIMIT)
    for i, name in enumerate(names):
        worst = float(tf.reduce_max(tf.abs(raw[i] - trainer[i])))
        assert worst <= tolerance(name) / 255 + 1e-6, (name, worst)


@pytest.mark.parametrize("name, fmt", sorted(corpus.NOT_SERVEABLE.items()))
def test_formats_the_graph_cannot_decode_are_refused_by_name(name, fmt):
    data = corpus.not_serveable()[name]
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"{fmt} images cannot be decoded"):
        served(data)
    assert fmt in decode.serving_refusal(data, LIMIT)
    assert decode.serving_refusal(FILES["jpeg"], LIMIT) is None


@pytest.mark.parametrize("name, fmt, keep", [
    ("png_rgb", "PNG", 20), ("gif", "GIF", 10), ("bmp", "BMP", 20)])
def test_a_file_cut_inside_its_header_is_called_truncated(name, fmt, keep):
    """Not a made-up size from zero-padded bytes: the message names the cut."""
    cut = FILES[name][:keep]
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"truncated {fmt} file: {keep} bytes"):
        served(cut)
    assert decode.serving_refusal(cut, LIMIT) == (
        f"truncated {fmt} file: {keep} bytes cannot hold its header")


def test_declared_pixels_over_the_limit_are_refused_before_decoding():
    bomb = corpus.bomb_png()
    assert len(bomb) < 1_000_000
    with pytest.raises(tf.errors.InvalidArgumentError, match="12000x12000"):
        served(bomb)
    small = FILES["jpeg"]
    check = tf.function(lambda d: decode.check(d, 100))
    with pytest.raises(tf.errors.InvalidArgumentError, match="data.max_image_pixels"):
        check(tf.constant(small))
    assert decode.serving_refusal(FILES["gif"], 26 * 20) is None
    assert "limit is 519" in decode.serving_refusal(FILES["gif"], 26 * 20 - 1)


def test_request_bytes_over_the_limit_or_empty_are_refused():
    check = tf.function(lambda images: decode.check_request_bytes(images, 10))
    assert check(tf.constant([b"0123456789"])).shape == [1]
    with pytest.raises(tf.errors.InvalidArgumentError, match="11 bytes .* limit of 10 bytes"):
        check(tf.constant([b"x", b"0123456789a"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty image"):
        check(tf.constant([b""]))
