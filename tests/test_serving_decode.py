"""What serving sees is what training saw: the pushed model of the shared end-to-end run
(``conftest.e2e``) answers a raw file as the pipeline answers the example ingestion made of it.

``lensflow.serving.saved_model.LoadedModel`` is the loader of ``lensflow serve`` (the TF Serving stand-in);
its BadRequest is what the stand-in returns as ``{"error": ...}`` with HTTP 400.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from lensflow.components.image_example_gen.decode import load_image
from lensflow.components.transform import features
from lensflow.components.transform.tests import corpus
from lensflow.serving.errors import BadRequest
from lensflow.serving.saved_model import LoadedModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def pushed(e2e):
    return LoadedModel(e2e.summary["pushed_model_dir"])


def _ingested_example(tmp_path, name: str, data: bytes) -> bytes:
    """The tf.Example ImageExampleGen would write for this file (image feature only)."""
    path = tmp_path / name
    path.write_bytes(data)
    png = load_image(str(path)).png_bytes
    feature = {features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[png]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_served_raw_files_get_the_in_pipeline_predictions(pushed, tmp_path):
    files = corpus.corpus()
    names = sorted(files)
    served = pushed.predict({features.SERVING_IMAGES_INPUT: [files[n] for n in names]})
    examples = [_ingested_example(tmp_path, n, files[n]) for n in names]
    pipeline = pushed.predict({features.SERVING_EXAMPLES_INPUT: examples}, "serving_examples")
    for i, name in enumerate(names):
        atol = 1e-2 if name in corpus.JPEG_NAMES else 1e-6
        np.testing.assert_allclose(served[features.PROBABILITIES][i],
                                   pipeline[features.PROBABILITIES][i], atol=atol, err_msg=name)
    assert list(served[features.CLASS_IDS]) == list(pipeline[features.CLASS_IDS])


@pytest.mark.parametrize("name, fmt", sorted(corpus.NOT_SERVEABLE.items()))
def test_webp_and_tiff_are_refused_with_a_clear_error(pushed, name, fmt):
    data = corpus.not_serveable()[name]
    with pytest.raises(BadRequest, match=f"{fmt} images cannot be decoded by the served model"):
        pushed.predict({features.SERVING_IMAGES_INPUT: [corpus.corpus()["png_rgb"], data]})


def test_oversized_request_is_refused_by_the_configured_byte_limit(e2e):
    serve = tf.saved_model.load(e2e.summary["pushed_model_dir"]).signatures["serving_default"]
    limit = e2e.config.data.max_file_bytes  # the graph's own check, not the stand-in's
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=f"limit of {limit} bytes .data.max_file_bytes"):
        serve(images=tf.constant([b"\x89PNG" + b"\0" * limit]))


_MEMORY_PROBE = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    from lensflow.components.transform.tests import corpus

    def status_mb(key):
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith(key + ":"))
        return int(line.split()[1]) / 1024

    def cost(step):
        \"\"\"MB the peak RSS rose above the current RSS while ``step`` ran (Linux resets the
        high-water mark through clear_refs, so an earlier peak such as loading hides nothing).\"\"\"
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        start = status_mb("VmRSS")
        step()
        return status_mb("VmHWM") - start

    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    normal, bomb = corpus.corpus()["jpeg"], corpus.bomb_png()
    serve(images=tf.constant([normal]))
    errors = []

    def serve_bomb():
        try:
            serve(images=tf.constant([bomb]))
        except tf.errors.InvalidArgumentError as err:
            errors.append(err.message)

    def decode_bomb():  # what the graph would do without the header check: decode, float, resize
        pixels = tf.cast(tf.io.decode_png(bomb), tf.float32) / 255.0
        tf.image.resize(pixels, [28, 28], antialias=True)

    normal_cost = cost(lambda: serve(images=tf.constant([normal])))
    bomb_cost = cost(serve_bomb)
    decoded_cost = cost(decode_bomb)
    print(json.dumps({"normal": normal_cost, "bomb": bomb_cost, "decoded": decoded_cost,
                      "bomb_bytes": len(bomb), "error": errors[0] if errors else None}))
""")


def test_a_decompression_bomb_costs_no_more_memory_than_a_normal_request(e2e):
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, e2e.summary["pushed_model_dir"]],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["bomb_bytes"] < 1_000_000
    assert "12000x12000" in probe["error"] and "data.max_image_pixels" in probe["error"]
    assert probe["bomb"] <= probe["normal"] + 16, probe       # MB of peak RSS
    assert probe["decoded"] >= probe["bomb"] + 100, probe    # decoding it would show
