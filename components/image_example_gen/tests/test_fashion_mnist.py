"""``lensflow data fashion-mnist``: Debian's idx files -> a pre-split image tree."""
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lensflow.components.image_example_gen import fashion_mnist


@pytest.fixture(scope="module")
def idx_dir():
    """The idx files of Debian's dataset-fashion-mnist (installed by set-up, never by a test)."""
    path = fashion_mnist.DEFAULT_IDX_DIR
    if not os.path.exists(os.path.join(path, "t10k-labels-idx1-ubyte.gz")):
        pytest.skip(f"Debian package dataset-fashion-mnist not installed ({path} missing)")
    return path


def test_export_keeps_official_splits_apart_and_pixels_intact(idx_dir, tmp_path):
    counts = fashion_mnist.export(str(tmp_path), idx_dir=idx_dir, per_class=2)
    assert set(counts) == {"train", "test"}
    for split in ("train", "test"):
        assert counts[split] == {name: 2 for name in fashion_mnist.CLASS_NAMES}
        assert sorted(os.listdir(tmp_path / split)) == sorted(fashion_mnist.CLASS_NAMES)
    images, labels = fashion_mnist.load_split("test", idx_dir)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    first = fashion_mnist.CLASS_NAMES[int(labels[0])]
    written = np.asarray(Image.open(tmp_path / "test" / first / "test_00000.png"))
    np.testing.assert_array_equal(written, images[0])
    assert "MIT" in (tmp_path / "ATTRIBUTION.txt").read_text()


def test_cli_reports_a_missing_dataset_clearly(tmp_path):
    from lensflow.pipeline.cli import main

    result = CliRunner().invoke(main, ["data", "fashion-mnist", "--out", str(tmp_path / "o"),
                                       "--idx-dir", str(tmp_path / "nowhere")])
    assert result.exit_code != 0
    assert "apt-get install dataset-fashion-mnist" in result.output
