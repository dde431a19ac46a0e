"""Batching in ``lensflow serve`` (the TF Serving stand-in), driven by TF Serving's batching
parameters file: concurrent requests share one model call with the answers they would get
alone, a bad image fails only its own request, and a full queue is refused with 503."""
import base64
import threading
import time

import numpy as np

from lensflow.pipeline.config import REPO_ROOT
from lensflow.serving.batching import BatchingConfig
from lensflow.serving.server import StandInServer
from lensflow.serving.tests.helpers import http


def _body(images):
    return {"instances": [{"b64": base64.b64encode(i).decode()} for i in images]}


def _concurrently(calls):
    results = [None] * len(calls)

    def run(index):
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_the_cluster_batching_file_is_what_the_stand_in_reads():
    config = BatchingConfig.from_file(str(REPO_ROOT / "kubeflow" / "serving" / "batching.config"))
    assert config == BatchingConfig(max_batch_size=32, batch_timeout_micros=2000,
                                    max_enqueued_batches=64, num_batch_threads=2)


def test_concurrent_requests_are_batched_and_a_bad_one_fails_alone(serving_copy, sample_images,
                                                                   reference_outputs):
    base, name, _ = serving_copy
    images = [data for _, data in sample_images]
    batching = BatchingConfig(max_batch_size=64, batch_timeout_micros=500_000,
                              max_enqueued_batches=4, num_batch_threads=1)
    with StandInServer(base, name, rest_port=0, grpc_port=0, batching=batching) as server:
        url = f"{server.rest_url}/v1/models/{name}:predict"
        results = _concurrently([lambda i=i: http(url, "POST", _body([images[i]]))
                                 for i in range(len(images))])
        for index, (status, answer) in enumerate(results):
            assert status == 200, answer
            row = answer["predictions"][0]
            assert row["class_ids"] == int(reference_outputs["class_ids"][index])
            np.testing.assert_allclose(row["probabilities"],
                                       reference_outputs["probabilities"][index], atol=1e-5)
        assert server.store.batcher.largest_batch > 1, "nothing was batched"
        assert server.store.batcher.batches_run < len(images)

        mixed = _concurrently([lambda: http(url, "POST", _body([images[0]])),
                               lambda: http(url, "POST", _body([b"not an image"])),
                               lambda: http(url, "POST", _body([images[1]]))])
        assert [status for status, _ in mixed] == [200, 400, 200], mixed
        assert mixed[0][1]["predictions"][0]["class_ids"] == \
            int(reference_outputs["class_ids"][0])


def test_a_full_batch_queue_is_refused_with_503(serving_copy, sample_images):
    base, name, _ = serving_copy
    images = [data for _, data in sample_images][:3]
    batching = BatchingConfig(max_batch_size=4, batch_timeout_micros=3_000_000,
                              max_enqueued_batches=1, num_batch_threads=1)
    with StandInServer(base, name, rest_port=0, grpc_port=0, batching=batching) as server:
        url = f"{server.rest_url}/v1/models/{name}:predict"
        waiting = threading.Thread(target=http, args=(url, "POST", _body(images)))
        waiting.start()
        time.sleep(0.5)
        status, answer = http(url, "POST", _body(images))
        waiting.join(timeout=60)
    assert status == 503 and "batch queue is full" in answer["error"]


def test_a_bad_batching_file_is_a_usage_error(tmp_path):
    from click.testing import CliRunner

    from lensflow.serving.cli import serve

    path = tmp_path / "batching.config"
    path.write_text("max_batch_sise { value: 8 }\n")
    result = CliRunner().invoke(serve, ["--model-dir", str(tmp_path),
                                        "--batching-parameters-file", str(path)])
    assert result.exit_code == 2 and "max_batch_sise" in result.output
    path.write_text("max_batch_size { value: 0 }\n")
    result = CliRunner().invoke(serve, ["--model-dir", str(tmp_path),
                                        "--batching-parameters-file", str(path)])
    assert result.exit_code == 2 and "must be positive" in result.output
