"""Typed records (``lensflow.pipeline.records``): the run summary, compare's run records and the
compile result declare their fields; a wrong key or type fails where it is written, and readers
indexing by a name that is not a field get an error instead of None."""
import json

import pytest
from pydantic import ValidationError

from lensflow.pipeline.compare.records import RunRecord
from lensflow.pipeline.summary import RunSummary


def test_a_summary_rejects_an_undeclared_key_and_a_wrong_type_where_written():
    summary = RunSummary(run_id="r1")
    with pytest.raises(KeyError, match="no field .acuracy."):
        summary["acuracy"] = 0.9
    with pytest.raises(ValidationError):
        summary["found"] = "many"
    with pytest.raises(ValidationError):
        RunSummary(run_id="r1", pushed="yes")


def test_readers_index_it_like_the_dict_it_was_and_typos_are_errors():
    summary = RunSummary(run_id="r1", found=3, outcome={"name": "pushed", "exit_code": 0})
    assert summary["found"] == 3 and summary.outcome.exit_code == 0
    assert summary["outcome"]["name"] == "pushed"
    assert summary.outcome == {"name": "pushed", "exit_code": 0, "reasons": []}
    assert summary.outcome != {"name": "pushed", "exit_code": 3, "reasons": []}
    assert "found" in summary and "blessed" not in summary
    assert summary.get("blessed") is None and summary.get("warnings", ["x"]) == ["x"]
    with pytest.raises(KeyError):
        summary["blessed"]                       # a field this run never produced
    with pytest.raises(KeyError, match="no field 'pushed'"):
        summary.get("pushed")                    # not a field at all: a typo, not None


def test_json_form_holds_only_what_was_set_and_reads_back_equal():
    summary = RunSummary(run_id="r1", blessed=False, pushed_model_dir=None,
                         metrics={"accuracy": 0.5})
    data = json.loads(json.dumps(summary.to_dict()))
    assert data == {"run_id": "r1", "blessed": False, "pushed_model_dir": None,
                    "metrics": {"accuracy": 0.5}}
    assert RunSummary.model_validate(data) == summary


def test_a_run_record_needs_its_identity_and_types_its_numbers():
    with pytest.raises(ValidationError):
        RunRecord(variant="baseline", seed=1)    # no run_id
    record = RunRecord(variant="baseline", seed="2", run_id="r", params="1200")
    assert (record.seed, record["params"]) == (2, 1200)
