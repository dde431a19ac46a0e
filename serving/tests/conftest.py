"""Fixtures for the serving tests: the model pushed by the shared e2e run, sample images, the
in-process reference answers, private copies of the serving folder, and a running stand-in."""
import glob
import os

import pytest

from lensflow.pipeline.config import SAMPLE_DATA


@pytest.fixture(scope="session")
def pushed_model_dir(e2e) -> str:
    """The version folder the e2e pipeline run pushed (fails loudly if it pushed nothing)."""
    path = e2e.summary.get("pushed_model_dir")
    if not path:
        pytest.fail(f"the shared e2e run pushed no model (blessing: "
                    f"{e2e.summary.get('blessing', e2e.summary.get('warnings'))})")
    return path


@pytest.fixture(scope="session")
def sample_images():
    """(path, PNG bytes) of the first sample image of each class, classes sorted."""
    out = []
    for folder in sorted(glob.glob(os.path.join(str(SAMPLE_DATA), "*"))):
        path = sorted(glob.glob(os.path.join(folder, "*.png")))[0]
        with open(path, "rb") as fh:
            out.append((path, fh.read()))
    assert len(out) >= 3, f"sample images missing under {SAMPLE_DATA}"
    return out


@pytest.fixture(scope="session")
def reference_model(pushed_model_dir):
    """The pushed SavedModel loaded in-process: the answer every server must reproduce."""
    from lensflow.serving.saved_model import LoadedModel

    return LoadedModel(pushed_model_dir, int(os.path.basename(pushed_model_dir)))


@pytest.fixture(scope="session")
def reference_outputs(reference_model, sample_images):
    """serving_default outputs of the reference model for ``sample_images``."""
    return reference_model.predict({"images": [data for _, data in sample_images]})


@pytest.fixture
def serving_copy(tmp_path, pushed_model_dir):
    """A private serving folder (``<tmp>/serving/<model>/<version>``) holding the pushed model, so
    tests can add and remove versions without touching the e2e run's folder."""
    from lensflow.components.pusher import versions

    name = os.path.basename(os.path.dirname(pushed_model_dir))
    base = tmp_path / "serving" / name
    version = int(os.path.basename(pushed_model_dir))
    versions.publish(pushed_model_dir, str(base), version)
    return str(base), name, version


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory, pushed_model_dir):
    """A running ``lensflow serve`` stand-in (REST + gRPC, free ports) on a private copy."""
    from lensflow.components.pusher import versions
    from lensflow.serving.server import StandInServer

    name = os.path.basename(os.path.dirname(pushed_model_dir))
    base = tmp_path_factory.mktemp("serving") / name
    versions.publish(pushed_model_dir, str(base), int(os.path.basename(pushed_model_dir)))
    server = StandInServer(str(base), name, rest_port=0, grpc_port=0, poll_seconds=0.2,
                           max_request_bytes=2 * 1024 * 1024).start()
    yield server
    server.stop()

