"""``lensflow report`` on bad input: clear errors, no traceback."""
from click.testing import CliRunner

from lensflow.components.report.cli import report


def test_home_without_runs_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(report, ["--home", str(tmp_path), "--out",
                                         str(tmp_path / "r.html")])
    assert result.exit_code == 1
    assert "no metadata store" in result.output and "run the pipeline first" in result.output
    assert not (tmp_path / "r.html").exists()


def test_out_is_required(tmp_path):
    result = CliRunner().invoke(report, ["--home", str(tmp_path)])
    assert result.exit_code == 2
    assert "--out" in result.output


def test_unknown_run_id_lists_known_runs(e2e, tmp_path):
    result = CliRunner().invoke(report, ["--home", e2e.home, "--run", "no-such-run",
                                         "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 1
    assert "no run 'no-such-run'" in result.output and e2e.summary["run_id"] in result.output
