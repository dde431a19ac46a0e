"""``make test`` runs on pytest-xdist workers with the groups ``conftest.xdist_group`` gives:
if xdist does not see them (pytest 9.2's structured node ids ignore the group suffix xdist 3.8
writes), two workers run pipelines on the shared run's home at once and its users fail busy."""
import pytest


def test_the_worker_groups_reach_xdist(request):
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not under pytest-xdist --dist loadgroup (make test uses it)")
    assert request.node.nodeid.endswith("@tests/test_suite_grouping.py")
