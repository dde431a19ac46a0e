"""A push that runs out of room (a file-size limit in a child process) fails with the cause
named and leaves the serving folder as it was: no partial version, no staging left behind."""
import os

from lensflow.components.pusher import versions
from lensflow.components.pusher.tests.test_push import _model, _snapshot
from tests.disk_limit import run_limited

LIMIT = 1 << 20          # 1 MiB per file: the model's variables file (4 MiB) cannot be written

PUSH = """
from lensflow.components.pusher import versions
try:
    versions.publish_next(sys.argv[1], sys.argv[2], record={"training_fingerprint": "x"})
except versions.PushWriteError as err:
    print(err, file=sys.stderr)
    sys.exit(9)
print("published")
"""


def test_a_push_that_hits_the_limit_publishes_nothing_and_names_the_cause(tmp_path):
    model = _model(tmp_path / "model", big_bytes=4 * LIMIT)
    base = str(tmp_path / "serving" / "lensflow")
    old_version, old_path = versions.publish_next(_model(tmp_path / "old"), base)  # unlimited
    before = _snapshot(base)

    result = run_limited(PUSH, LIMIT, argv=(model, base))

    assert result.returncode == 9, result.stderr
    assert "file too large" in result.stderr and base in result.stderr, result.stderr
    assert "nothing was published" in result.stderr
    assert versions.versions(base) == [old_version]
    assert sorted(os.listdir(base)) == [str(old_version)]   # no staging folder left either
    assert _snapshot(base) == before


def test_the_same_push_within_the_limit_publishes(tmp_path):
    """The limit, not the code path, is what failed above."""
    model = _model(tmp_path / "model", big_bytes=LIMIT // 2)
    base = str(tmp_path / "serving" / "lensflow")
    result = run_limited(PUSH, LIMIT, argv=(model, base))
    assert result.returncode == 0, result.stderr
    assert len(versions.versions(base)) == 1


def test_withdrawing_a_version_leaves_the_others(tmp_path):
    base = str(tmp_path / "serving" / "lensflow")
    first, _ = versions.publish_next(_model(tmp_path / "a"), base, now=100)
    second, _ = versions.publish_next(_model(tmp_path / "b"), base, now=200)
    versions.withdraw(base, second)
    assert sorted(os.listdir(base)) == [str(first)]
