"""Serve a candidate version in a separate model-server process and require it to answer its
warmup requests and a canary over REST and gRPC, within a time limit, with the outputs the model
gives in-process (what TFX's InfraValidator checks, runnable wherever the pipeline runs)."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tfx.utils import io_utils

from lensflow.components.serving_check.model_server import ModelServer, ServerError, find_binary
from lensflow.components.transform import features
from lensflow.serving import client
from lensflow.serving.errors import BadRequest
from lensflow.serving.saved_model import LoadedModel

CHECK_VERSION = 1
ATOL = 1e-5


class CheckFailed(RuntimeError):
    """The candidate is not serveable; the message says why."""


@dataclass
class CheckResult:
    """What the check did; ``passed`` False comes with the ``reason``."""

    passed: bool
    server: str
    reason: str = ""
    seconds: float = 0.0
    load_seconds: Optional[float] = None
    answered: Dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def request_images(request: predict_pb2.PredictRequest) -> List[bytes]:
    """The encoded images a ``serving_default`` PredictRequest carries."""
    return [bytes(v) for v in tf.make_ndarray(request.inputs[features.SERVING_IMAGES_INPUT])
            .reshape(-1).tolist()]


def _compare(where: str, got: client.Prediction, expected: Dict[str, np.ndarray]) -> None:
    probabilities = np.asarray(expected[features.PROBABILITIES], np.float32)
    if got.probabilities.shape != probabilities.shape:
        raise CheckFailed(f"{where}: probabilities of shape {got.probabilities.shape}, "
                          f"in-process {probabilities.shape}")
    worst = float(np.max(np.abs(got.probabilities - probabilities)))
    if worst > ATOL:
        raise CheckFailed(f"{where}: probabilities differ from the in-process model's by up to "
                          f"{worst:.3g} (tolerance {ATOL})")
    if got.class_ids.tolist() != np.asarray(expected[features.CLASS_IDS]).reshape(-1).tolist():
        raise CheckFailed(f"{where}: class ids {got.class_ids.tolist()} differ from the "
                          f"in-process model's")


def _in_process(model: LoadedModel, images: Sequence[bytes], where: str) -> Dict[str, np.ndarray]:
    try:
        return model.predict({features.SERVING_IMAGES_INPUT: list(images)})
    except BadRequest as err:
        raise CheckFailed(f"{where}: the model cannot answer in-process either: {err}") from err


def _ask(predictor, images: Sequence[bytes], where: str) -> client.Prediction:
    try:
        return predictor.predict(images)
    except client.PredictError as err:
        raise CheckFailed(f"{where}: {err}") from err


def run(model_dir: str, model_name: str, warmup: Sequence[predict_pb2.PredictRequest],
        canary: Sequence[bytes], timeout_seconds: float, binary: Optional[str] = None,
        workdir: Optional[str] = None) -> CheckResult:
    """Serve a local copy of ``model_dir`` (warmup file included) as version 1 of ``model_name``
    and check it against the same copy loaded in-process;
    ``binary`` defaults to ``tensorflow_model_server`` on PATH, else ``lensflow serve``."""
    started = time.monotonic()
    deadline = started + timeout_seconds
    binary = binary or find_binary()
    scratch = tempfile.mkdtemp(prefix="serving-check-", dir=workdir)
    base = os.path.join(scratch, model_name)
    local = os.path.join(base, str(CHECK_VERSION))
    io_utils.copy_dir(model_dir, local)      # model_dir may be remote (gs://, s3:// on Kubeflow)
    server = ModelServer(base, model_name, os.path.join(scratch, "server.log"), binary)
    result = CheckResult(False, server.kind)
    try:
        with server:
            result.load_seconds = server.wait_available(deadline, CHECK_VERSION)
            result.answered = _answer_all(server, local, model_name, warmup, canary, deadline)
        result.passed = True
    except (CheckFailed, ServerError) as err:
        result.reason = str(err)
    except Exception as err:  # noqa: BLE001 - an unforeseen failure refuses, with its reason
        result.reason = f"the check could not complete: {type(err).__name__}: {err}"
    finally:
        result.seconds = time.monotonic() - started
        shutil.rmtree(scratch, ignore_errors=True)
    if result.passed and result.seconds > timeout_seconds:
        result.passed = False
        result.reason = f"answered, but took {result.seconds:.1f}s (limit {timeout_seconds}s)"
    return result


def _answer_all(server: ModelServer, model_dir: str, model_name: str,
                warmup: Sequence[predict_pb2.PredictRequest], canary: Sequence[bytes],
                deadline: float) -> Dict[str, int]:
    """Every warmup request and the canary over REST and gRPC against the in-process answers."""
    model = LoadedModel(model_dir, CHECK_VERSION)
    batches = [("warmup request %d" % i, request_images(r)) for i, r in enumerate(warmup)]
    batches.append(("canary request", list(canary)))
    answered = {"rest": 0, "grpc": 0}
    remaining = max(1.0, deadline - time.monotonic())
    rest = client.RestPredictor(server.rest_url, model_name, CHECK_VERSION, remaining)
    grpc_client = client.GrpcPredictor(server.grpc_address, model_name, CHECK_VERSION, remaining)
    try:
        for where, images in batches:
            expected = _in_process(model, images, where)
            for protocol, predictor in (("rest", rest), ("grpc", grpc_client)):
                if time.monotonic() > deadline:
                    raise CheckFailed(f"time limit reached before {where} over {protocol}")
                _compare(f"{where} over {protocol}",
                         _ask(predictor, images, f"{where} over {protocol}"), expected)
                answered[protocol] += 1
    finally:
        grpc_client.close()
    return answered
