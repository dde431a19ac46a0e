"""CLI commands that need no pipeline run."""
import json

import pytest
from click.testing import CliRunner

from lensflow.pipeline.cli import main


def test_models_lists_families_and_backbone_availability(tmp_path):
    result = CliRunner().invoke(main, ["models", "--home", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    assert set(listing["families"]) == {"baseline_cnn", "transfer", "filter_bank", "compact_resnet"}
    by_name = {b["name"]: b for b in listing["backbones"]}
    assert {"efficientnet_lite0", "mobilenet_v2", "efficientnet_b0", "resnet50", "vgg16"} <= set(by_name)
    assert by_name["efficientnet_lite0"]["available"] is True


def test_bad_config_values_are_usage_errors(tmp_path):
    result = CliRunner().invoke(main, ["run", "--home", str(tmp_path), "--image-size", "4"])
    assert result.exit_code == 2
    assert "image.size=4" in result.output


def test_unknown_config_file_key_is_named(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  epochz: 3\n")
    result = CliRunner().invoke(main, ["run", "--home", str(tmp_path), "--config", str(config)])
    assert result.exit_code == 2
    assert "epochz" in result.output


@pytest.mark.slow
def test_installed_console_script_runs_a_command_that_builds_the_pipeline(tmp_path):
    """``.venv/bin/lensflow`` resolves every requirement through pkg_resources at start-up
    (TFX imports setuptools): a lock file missing a run-time requirement fails here."""
    import os
    import subprocess
    import sys

    import pytest

    script = os.path.join(os.path.dirname(sys.executable), "lensflow")
    if not os.path.exists(script):
        pytest.skip(f"no installed console script at {script} (run through make)")
    out = tmp_path / "pipeline.yaml"
    done = subprocess.run([script, "compile", "--target", "kubeflow", "--out", str(out),
                           "--pipeline-root", "gs://bucket/root"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.exists() and "pipelineInfo" in out.read_text()
