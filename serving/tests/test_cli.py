"""``lensflow predict`` from each source (local SavedModel, REST, gRPC) gives the in-process
answer; ``lensflow serve`` starts, answers and stops cleanly; bad use gets clear errors."""
import base64
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from lensflow.pipeline.config import REPO_ROOT
from lensflow.serving import client
from lensflow.serving.cli import predict, serve
from lensflow.serving.tests.helpers import http


@pytest.fixture(scope="module")
def image_paths(sample_images):
    return [path for path, _ in sample_images]


@pytest.fixture(scope="module")
def expected(reference_outputs, reference_model):
    """Top-3 per sample image from the in-process SavedModel, names from its vocabulary."""
    prediction = client.Prediction(reference_outputs["probabilities"], reference_outputs["class_ids"],
                                   [n.decode() for n in reference_outputs["class_names"]])
    return client.top_k(prediction, 3, reference_model.class_names)


def run_predict(*args):
    result = CliRunner().invoke(predict, [*args], catch_exceptions=False)
    return result.exit_code, result.output


def ranked(output):
    return [row["top_k"] for row in json.loads(output)]


def assert_same_ranking(got, expected, names=True):
    for got_row, want_row in zip(got, expected, strict=True):
        assert [e["class_id"] for e in got_row] == [e["class_id"] for e in want_row]
        assert [e["probability"] for e in got_row] == pytest.approx(
            [e["probability"] for e in want_row], rel=1e-6, abs=1e-7)
        assert got_row[0]["class_name"] == want_row[0]["class_name"]
        if names:
            assert [e["class_name"] for e in got_row] == [e["class_name"] for e in want_row]


def test_predict_from_a_version_folder(pushed_model_dir, image_paths, expected, tmp_path):
    code, output = run_predict("--home", str(tmp_path), "--model-dir", pushed_model_dir, "--json",
                               *image_paths)
    assert code == 0, output
    assert_same_ranking(ranked(output), expected)
    assert {row["model_version"] for row in json.loads(output)} == \
        {int(os.path.basename(pushed_model_dir))}


def test_predict_defaults_to_the_newest_version_in_the_homes_serving_dir(serving_copy, image_paths,
                                                                        expected):
    base, _, version = serving_copy
    home = os.path.dirname(os.path.dirname(base))
    code, output = run_predict("--home", home, "--json", *image_paths)
    assert code == 0, output
    assert_same_ranking(ranked(output), expected)
    assert json.loads(output)[0]["model_version"] == version
    code, text = run_predict("--home", home, "--top-k", "2", image_paths[0])
    assert code == 0 and f"(version {version})" in text
    assert text.count("\n  ") == 2, "two ranked lines for one image"


def test_predict_over_rest(stand_in, image_paths, expected, pushed_model_dir, tmp_path):
    code, output = run_predict("--home", str(tmp_path), "--url", stand_in.rest_url,
                               "--class-names", pushed_model_dir, "--json", *image_paths)
    assert code == 0, output
    assert_same_ranking(ranked(output), expected)


def test_predict_over_grpc(stand_in, image_paths, expected, tmp_path):
    code, output = run_predict("--home", str(tmp_path), "--grpc", stand_in.grpc_address, "--json",
                               *image_paths)
    assert code == 0, output
    assert_same_ranking(ranked(output), expected, names=False)
    assert {row["model_version"] for row in json.loads(output)} == {stand_in.store.get().version}


def test_remote_predict_names_other_classes_from_the_home_when_it_matches(stand_in, serving_copy,
                                                                          image_paths, expected):
    home = os.path.dirname(os.path.dirname(serving_copy[0]))
    code, output = run_predict("--home", home, "--grpc", stand_in.grpc_address, "--json", *image_paths)
    assert code == 0, output
    assert_same_ranking(ranked(output), expected)


@pytest.mark.parametrize("args, code, message", [
    (["--url", "http://127.0.0.1:1", "--grpc", "127.0.0.1:1"], 2, "at most one of"),
    (["--url", "http://127.0.0.1:{closed}"], 1, "cannot reach the server"),
    (["--grpc", "127.0.0.1:{closed}", "--timeout", "2"], 1, "UNAVAILABLE"),
    (["--model-dir", "{empty}"], 1, "no numeric version folder"),
    (["--version", "3"], 2, "--version applies to --url and --grpc"),
])
def test_predict_usage_errors_are_clear(tmp_path, image_paths, args, code, message):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    (tmp_path / "empty").mkdir()
    args = [a.format(closed=closed, empty=tmp_path / "empty") for a in args]
    exit_code, output = run_predict("--home", str(tmp_path), *args, image_paths[0])
    assert exit_code == code and message in output


def test_predict_refuses_a_file_that_is_not_an_image(pushed_model_dir, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("hello")
    code, output = run_predict("--model-dir", pushed_model_dir, str(text))
    assert code == 1 and "not a PNG, JPEG, GIF or BMP image" in output


def test_predict_refuses_class_names_that_do_not_match(stand_in, image_paths, tmp_path):
    names = tmp_path / "names.json"
    names.write_text(json.dumps([f"x{i}" for i in range(len(stand_in.store.get().class_names))]))
    code, output = run_predict("--url", stand_in.rest_url, "--class-names", str(names),
                               image_paths[0])
    assert code == 1 and "do not match the model" in output


def test_serve_refuses_missing_or_version_folders(tmp_path, pushed_model_dir):
    runner = CliRunner()
    missing = runner.invoke(serve, ["--model-dir", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    version = runner.invoke(serve, ["--model-dir", pushed_model_dir])
    assert version.exit_code == 2 and "is a version folder" in version.output


def _lines(stream, sink):
    for line in iter(stream.readline, ""):
        sink.put(line)


@contextlib.contextmanager
def serve_process(*args):
    """``lensflow serve ARGS`` on free ports as its own process: (process, its output lines,
    its banner); killed on the way out if the test did not stop it."""
    command = [sys.executable, "-c", "from lensflow.serving.cli import serve; serve()", *args,
               "--rest-port", "0", "--grpc-port", "0", "--poll-seconds", "0.2"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(command, cwd=str(REPO_ROOT), env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        yield proc, lines, _read_until(lines, "Ctrl-C", timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_serve_command_starts_answers_and_stops(serving_copy):
    base, name, version = serving_copy
    with serve_process("--model-dir", base) as (proc, lines, banner):
        assert "stand-in for local development and tests" in banner
        assert "production serving is TF Serving itself" in banner
        url = next(w for w in banner.split() if w.startswith("http://"))
        status, body = http(url)
        assert status == 200
        assert body["model_version_status"][0] == {
            "version": str(version), "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}
        proc.send_signal(signal.SIGTERM)
        assert "stopped" in _read_until(lines, "stopped", timeout=60)
        assert proc.wait(timeout=60) == 0


def test_serve_reads_labels_and_batching_from_the_config_files(serving_copy, sample_images):
    """``lensflow serve --model-config-file`` takes the base path and labels from models.config
    and batches as the cluster's batching file says."""
    from lensflow.components.pusher import models_config, versions

    base, name, version = serving_copy
    config = models_config.update(os.path.dirname(base), name, base, 5, newest=version)
    models_config.set_labels(config, name, {"stable": version}, on_disk=versions.versions(base))
    batching = str(REPO_ROOT / "kubeflow" / "serving" / "batching.config")
    with serve_process("--model-config-file", config, "--model-name", name,
                       "--batching-parameters-file", batching) as (proc, _, banner):
        assert f"labels: stable={version}" in banner and "batching: BatchingConfig" in banner
        url = next(w for w in banner.split() if w.startswith("http://"))
        status, body = http(f"{url}/labels/stable:predict", "POST", {"instances": [
            {"b64": base64.b64encode(sample_images[0][1]).decode()}]})
        assert status == 200, body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def _read_until(lines, marker, timeout):
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            continue
        if marker in seen[-1]:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} within {timeout}s; output so far: {''.join(seen)!r}")
