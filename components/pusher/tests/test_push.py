"""Version publication as TF Serving sees it: atomic folders, retention, models.config, collisions."""
import os
import stat
import threading
import time

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from lensflow.components.pusher import models_config, versions

BIG_FILE_BYTES = 48 * 1024 * 1024
SMALL_FILES = 400


def _model(root, big_bytes=0, small_files=0):
    """A folder shaped like a SavedModel: saved_model.pb first, then variables and assets."""
    os.makedirs(os.path.join(root, "variables"))
    os.makedirs(os.path.join(root, "assets"))
    with open(os.path.join(root, "saved_model.pb"), "wb") as fh:
        fh.write(b"graph")
    with open(os.path.join(root, "variables", "variables.data-00000-of-00001"), "wb") as fh:
        fh.truncate(big_bytes)
    for i in range(small_files):
        with open(os.path.join(root, "assets", f"a{i:04d}.txt"), "w") as fh:
            fh.write(str(i) * 100)
    return str(root)


def _snapshot(folder):
    """Relative path -> size of every file under ``folder``."""
    out = {}
    for parent, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(parent, name)
            out[os.path.relpath(path, folder)] = os.path.getsize(path)
    return out


class Reader(threading.Thread):
    """Lists the base folder in a loop, like TF Serving's poller, recording what it saw."""

    def __init__(self, base, expected):
        super().__init__(daemon=True)
        self.base, self.expected = base, expected
        self.done = threading.Event()
        self.partial, self.complete, self.staging_seen, self.listings = [], set(), 0, 0

    def run(self):
        while not self.done.is_set():
            self.look()
        self.look()

    def look(self):
        names = os.listdir(self.base) if os.path.isdir(self.base) else []
        self.listings += 1
        self.staging_seen += sum(n.startswith(versions.STAGING_PREFIX) for n in names)
        for name in names:
            if name.isdigit():
                seen = _snapshot(os.path.join(self.base, name))
                (self.complete.add(name) if seen == self.expected else self.partial.append(name))


def _watch(base, expected, copy):
    reader = Reader(base, expected)
    reader.start()
    try:
        copy()
    finally:
        reader.done.set()
        reader.join(timeout=60)
    return reader


@pytest.fixture(scope="module")
def big_model(tmp_path_factory):
    return _model(tmp_path_factory.mktemp("src") / "model", BIG_FILE_BYTES, SMALL_FILES)


def test_reader_never_sees_a_partial_version_while_publishing(big_model, tmp_path):
    base = str(tmp_path / "lensflow")
    os.makedirs(base)
    reader = _watch(base, _snapshot(big_model), lambda: versions.publish(big_model, base, 7))
    assert reader.staging_seen > 0, "the reader never overlapped the copy; the test proved nothing"
    assert reader.partial == []
    assert reader.complete == {"7"}
    assert sorted(os.listdir(base)) == ["7"]


def test_the_reader_does_catch_a_non_atomic_copy(big_model, tmp_path):
    """Control: copying straight into the numeric folder is seen half-written by the same reader."""
    import shutil

    base = str(tmp_path / "lensflow")
    os.makedirs(base)
    reader = _watch(base, _snapshot(big_model),
                    lambda: shutil.copytree(big_model, os.path.join(base, "7")))
    assert reader.partial, "a plain copy should have been observed incomplete"


def test_retention_keeps_the_newest_n_and_only_stale_staging(tmp_path):
    src = _model(tmp_path / "src")
    base = str(tmp_path / "lensflow")
    for version in (10, 11, 12, 13, 14):
        versions.publish(src, base, version)
    os.makedirs(os.path.join(base, "99"))                      # numeric but not a SavedModel
    stale = os.path.join(base, versions.STAGING_PREFIX + "old")
    fresh = os.path.join(base, versions.STAGING_PREFIX + "in-progress")
    os.makedirs(stale)
    os.makedirs(fresh)
    hour_ago = time.time() - 2 * versions.STALE_STAGING_SECONDS
    os.utime(stale, (hour_ago, hour_ago))

    removed = versions.prune(base, keep=2)

    assert removed == [10, 11, 12]
    assert versions.versions(base) == [13, 14]
    assert not os.path.exists(stale)
    assert os.path.isdir(fresh), "a staging folder still being written must survive pruning"
    assert os.path.isdir(os.path.join(base, "99"))


def test_models_config_parses_with_tf_serving_proto(tmp_path, monkeypatch):
    serving = tmp_path / "serving"
    path = models_config.update(str(serving), "lensflow", str(serving / "lensflow"), keep_versions=5)
    models_config.update(str(serving), "lensflow", str(serving / "lensflow"), keep_versions=1)
    monkeypatch.chdir(tmp_path)
    models_config.update(str(serving), "other", "serving/other", keep_versions=3)

    config = model_server_config_pb2.ModelServerConfig()
    with open(path, encoding="utf-8") as fh:
        text_format.Parse(fh.read(), config)
    entries = {e.name: e for e in config.model_config_list.config}
    assert sorted(entries) == ["lensflow", "other"]
    assert entries["lensflow"].base_path == str(serving / "lensflow")
    assert entries["lensflow"].model_platform == "tensorflow"
    assert entries["lensflow"].model_version_policy.WhichOneof("policy_choice") == "latest"
    assert entries["lensflow"].model_version_policy.latest.num_versions == 1
    assert entries["other"].base_path == str(serving / "other"), "TF Serving needs absolute paths"
    assert entries["other"].model_version_policy.latest.num_versions == 2
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(serving) == ["models.config"], "no temporary files left behind"


def test_two_pushes_in_the_same_second_get_distinct_versions(tmp_path):
    src = _model(tmp_path / "src")
    base = str(tmp_path / "lensflow")
    now = 1_700_000_000.0
    first = versions.publish_next(src, base, now=now)
    second = versions.publish_next(src, base, now=now)
    assert (first[0], second[0]) == (1_700_000_000, 1_700_000_001)
    assert versions.versions(base) == [1_700_000_000, 1_700_000_001]


def test_concurrent_pushes_in_the_same_second_get_distinct_versions(tmp_path):
    src = _model(tmp_path / "src", big_bytes=8 * 1024 * 1024, small_files=50)
    base = str(tmp_path / "lensflow")
    barrier, results, errors = threading.Barrier(3), [], []

    def push():
        barrier.wait()
        try:
            results.append(versions.publish_next(src, base, now=1_700_000_000.0))
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=push) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(v for v, _ in results) == [1_700_000_000, 1_700_000_001, 1_700_000_002]
    expected = _snapshot(src)
    assert all(_snapshot(path) == expected for _, path in results)
    assert sorted(os.listdir(base)) == ["1700000000", "1700000001", "1700000002"]


def test_next_version_skips_numeric_folders_that_are_not_models(tmp_path):
    base = tmp_path / "lensflow"
    (base / "1700000005").mkdir(parents=True)
    assert versions.next_version(str(base), now=1_700_000_000) == 1_700_000_006


def test_publishing_over_an_existing_version_is_refused(tmp_path):
    src = _model(tmp_path / "src")
    base = str(tmp_path / "lensflow")
    versions.publish(src, base, 5)
    with pytest.raises(FileExistsError, match="version 5 already exists"):
        versions.publish(src, base, 5)
    assert sorted(os.listdir(base)) == ["5"]


def test_a_model_identical_to_the_newest_version_is_recognised_as_serving(tmp_path):
    from lensflow.components.pusher import versions as v

    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"graph")
    (model / "variables" / "variables.index").write_bytes(b"index")
    base = tmp_path / "serving" / "m"
    assert v.serving_copy_of(str(model), str(base)) is None
    version, _ = v.publish_next(str(model), str(base))
    assert v.serving_copy_of(str(model), str(base)) == version
    (model / "variables" / "variables.index").write_bytes(b"changed")
    assert v.serving_copy_of(str(model), str(base)) is None


def test_the_push_record_travels_with_the_version_but_not_into_its_identity(tmp_path):
    src = _model(tmp_path / "src")
    base = str(tmp_path / "lensflow")
    version, final = versions.publish_next(src, base, now=100, record={"training_fingerprint": "a"})
    assert versions.push_record(base, version) == {"training_fingerprint": "a"}
    assert os.path.isfile(os.path.join(final, versions.PUSH_RECORD))
    assert versions.serving_copy_of(src, base) == version


def test_added_files_travel_with_the_version_but_not_into_its_identity(tmp_path):
    from lensflow.components.pusher import training_statistics

    src = _model(tmp_path / "src")
    base = str(tmp_path / "lensflow")
    record = {training_statistics.RECORD_FIELD: training_statistics.PATH_IN_VERSION}
    version, final = versions.publish_next(
        src, base, now=100, record=record,
        added={training_statistics.PATH_IN_VERSION: b"\x0a\x00"})
    with open(os.path.join(final, training_statistics.PATH_IN_VERSION), "rb") as fh:
        assert fh.read() == b"\x0a\x00"
    assert training_statistics.load(final, record) is not None
    assert training_statistics.load(final, {}) is None
    assert versions.serving_copy_of(src, base) == version
    with pytest.raises(ValueError, match="assets.extra"):
        versions.publish_next(src, base, added={"variables/extra.bin": b"x"})
    assert versions.versions(base) == [version]
    assert not [name for name in os.listdir(base) if name.startswith(versions.STAGING_PREFIX)]


def test_the_incumbent_is_the_newest_version_trained_from_other_inputs(tmp_path):
    src = _model(tmp_path / "src")
    base = str(tmp_path / "lensflow")
    assert versions.incumbent(base, "a") is None
    legacy = 10
    versions.publish(src, base, legacy)
    first, _ = versions.publish_next(src, base, now=100, record={"training_fingerprint": "a"})
    assert versions.incumbent(base, "a") == legacy
    assert versions.incumbent(base, "b") == first
    second, _ = versions.publish_next(src, base, now=200, record={"training_fingerprint": "b"})
    assert versions.incumbent(base, "a") == second
    assert versions.incumbent(base, "b") == first
    assert versions.incumbent(base, "c") == second
