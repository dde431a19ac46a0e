"""What a run came to, as one of a few named outcomes with an exit code of its own, so a
scheduler or CI can tell "trained and pushed" from "trained and refused" without parsing JSON.

Decided from the run summary (``lensflow.pipeline.summary``, read back from ML Metadata). Codes 1 and 2
keep click's meanings (an error before the run starts, a usage error), so no outcome uses them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

PUSHER = "LensflowPusher"
DATA_GATE = "DataGate"


@dataclass(frozen=True)
class Outcome:
    """One way a run can end: its name (in ``--summary-json``), exit code and meaning."""

    name: str
    code: int
    meaning: str


PUSHED = Outcome("pushed", 0, "blessed, passed the serving check and pushed as a new version")
ALREADY_SERVING = Outcome("already_serving", 3, "blessed, but identical to the version serving "
                          "now (or the push was reused from the cache): no new version")
NOT_BLESSED = Outcome("not_blessed", 4, "refused by the evaluation thresholds (TFMA did not "
                      "bless it): not pushed")
NOT_SERVEABLE = Outcome("not_serveable", 5, "blessed, but refused by the serving check (a model "
                        "server could not load it or answer): not pushed")
DATA_STOPPED = Outcome("data_stopped", 6, "stopped by the data gate before Transform: the data "
                       "is not fit to train on; nothing trained")
FAILED = Outcome("failed", 7, "a step failed, or the run was interrupted: see the log")

OUTCOMES = (PUSHED, ALREADY_SERVING, NOT_BLESSED, NOT_SERVEABLE, DATA_STOPPED, FAILED)
RESERVED_CODES = {1: "click: an error before the run starts (a missing path, a bad config file)",
                  2: "click: a usage error (an unknown option, a value out of range)"}


def decide(summary: Dict[str, Any], data_stop_reasons: Optional[List[str]] = None) -> Outcome:
    """The outcome of a run from its summary (and the data gate's reasons, when it stopped the
    run): the gate's stop, then any failed step, then the Evaluator's verdict, the serving
    check's, and whether the push made a new version."""
    executions = summary.get("executions") or {}
    if data_stop_reasons:
        return DATA_STOPPED
    if "FAILED" in executions.values() or executions.get(PUSHER) not in ("COMPLETE", "CACHED"):
        return FAILED
    if summary.get("blessed") is False:
        return NOT_BLESSED
    check = summary.get("serving_check")
    if check is not None and not check.get("passed"):
        return NOT_SERVEABLE
    if not summary.get("pushed_model_dir"):
        return FAILED
    if summary.get("already_serving") or executions.get(PUSHER) == "CACHED":
        return ALREADY_SERVING
    return PUSHED


def reasons(outcome: Outcome, summary: Dict[str, Any],
            data_stop_reasons: Optional[List[str]] = None) -> List[str]:
    """Why the run ended that way, in the words of the step that decided it."""
    executions = summary.get("executions") or {}
    if outcome is DATA_STOPPED:
        return list(data_stop_reasons or [])
    if outcome is NOT_BLESSED:
        return list(summary.get("failed_thresholds") or [])
    if outcome is NOT_SERVEABLE:
        return [summary["serving_check"].get("reason", "")]
    if outcome is FAILED:
        failed = sorted(name for name, state in executions.items() if state == "FAILED")
        if failed:
            return [f"{name} failed (its error is in the run's log)" for name in failed]
        if executions.get(PUSHER) in ("COMPLETE", "CACHED"):
            return ["the model was blessed and checked, but the Pusher recorded no push"]
        return ["the run ended before the Pusher (interrupted, or still running)"]
    if outcome is ALREADY_SERVING:
        how = ("identical to the version serving now" if summary.get("already_serving")
               else "the push was reused from the cache")
        return [f"{how}: {summary['pushed_model_dir']}"]
    return [f"pushed: {summary['pushed_model_dir']}"]


def describe(summary: Dict[str, Any], data_stop_reasons: Optional[List[str]] = None
             ) -> Dict[str, Any]:
    """The ``outcome`` field of the summary: name, exit code and reasons."""
    outcome = decide(summary, data_stop_reasons)
    return {"name": outcome.name, "exit_code": outcome.code,
            "reasons": reasons(outcome, summary, data_stop_reasons)}


def by_name(name: str) -> Outcome:
    """The outcome called ``name``."""
    for outcome in OUTCOMES:
        if outcome.name == name:
            return outcome
    raise KeyError(f"no outcome {name!r}; known: {', '.join(o.name for o in OUTCOMES)}")
