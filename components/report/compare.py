"""Render a ``lensflow compare`` result: ``compare.json``, a Markdown table for docs/RESULTS.md and
a self-contained HTML page in the report's style (Jinja2, chart inlined as a PNG data URI)."""
from __future__ import annotations

import json
import os
import shlex
from typing import Any, Dict, List, Optional

from lensflow.components.report import plots
from lensflow.components.report.render import environment

TEMPLATE = "compare.html.j2"
FILES = {"json": "compare.json", "markdown": "compare.md", "html": "compare.html"}
NOTES = ("Per-class recall: the lowest and the highest top-1 recall over the classes of each run "
         "(TFMA accuracy on each class's label slice), averaged over seeds. Trainer wall: the "
         "Trainer execution recorded in ML Metadata, mean over seeds. Blessed: runs that passed "
         "the evaluation thresholds; metrics are reported either way.")


def _num(value: Optional[float], digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def accuracy_text(row: Dict[str, Any]) -> str:
    """``0.8123 ± 0.0101`` (the ± part only with two or more seeds)."""
    text = _num(row["accuracy_mean"])
    return text if row["accuracy_std"] is None else f"{text} ± {_num(row['accuracy_std'])}"


def recall_text(row: Dict[str, Any]) -> str:
    return f"{_num(row['recall_min_mean'], 3)} / {_num(row['recall_max_mean'], 3)}"


def seconds_text(row: Dict[str, Any]) -> str:
    return _num(row["trainer_seconds_mean"], 1)


def params_text(row: Dict[str, Any]) -> str:
    return "—" if row.get("params") is None else f"{row['params']:,}"


def command(result: Dict[str, Any]) -> str:
    """The ``lensflow compare`` command line that reproduces the comparison's settings (its
    config file and ``--set`` values included)."""
    s = result["settings"]
    parts = ["lensflow", "compare"]
    if s.get("config_file"):
        parts += ["--config", s["config_file"]]
    for item in s.get("sets", []):
        parts += ["--set", item]
    parts += ["--data", s["data"], "--variants", ",".join(s["variants"]),
             "--seeds", str(s["seeds"]), "--epochs", str(s["epochs"]),
             "--batch-size", str(s["batch_size"])]
    if s["subset"] is not None:
        parts += ["--subset", str(s["subset"])]
    return " ".join(shlex.quote(p) for p in parts)


def facts(result: Dict[str, Any]) -> Dict[str, str]:
    """Plain sentences: what was trained on, what the metrics are on, how long, how many seeds."""
    s, ev = result["settings"], result["evaluation"]
    totals = ev.get("split_totals") or {}
    ingested = f"train {totals.get('train', '?')}, eval {totals.get('eval', '?')} images ingested"
    if s["subset"] is not None:
        trained = (f"a class-balanced subset of {s['subset']} training images drawn with seed "
                   f"{s['seed_values'][0]}, plus a disjoint balanced eval draw ({ingested})")
    else:
        trained = f"every image of the data ({ingested})"
    count = ev.get("example_count")
    evaluated = (f"the held-out '{ev.get('split')}' split, "
                 f"{'?' if count is None else f'{count:.0f}'} images (TFMA)")
    if s.get("held_out_source"):
        evaluated += f": {s['held_out_source']}, never subsampled"
    image = s["image"]
    return {
        "data": s["data"], "trained": trained, "evaluated": evaluated,
        "training": (f"{s['epochs']} epoch(s), batch {s['batch_size']}, {image['size']} px "
                     f"{image['color_mode']}"),
        "seeds": f"{s['seeds']} per variant ({', '.join(map(str, s['seed_values']))})",
    }


def markdown(result: Dict[str, Any]) -> str:
    """A table ready for docs/RESULTS.md, preceded by the settings it was measured with."""
    f = facts(result)
    lines = [f"Data: `{f['data']}`; trained on {f['trained']}.",
             f"Metrics on {f['evaluated']}.",
             f"Training: {f['training']}; seeds: {f['seeds']}.", "",
             "| variant | what it is | n | accuracy (mean ± std) | per-class recall min / max "
             "| Trainer wall (s) | params | blessed |",
             "|---|---|---|---|---|---|---|---|"]
    info = result["variant_info"]
    for row in result["variants"]:
        lines.append(f"| `{row['variant']}` | {info[row['variant']]['description']} | {row['n']} "
                     f"| {accuracy_text(row)} | {recall_text(row)} | {seconds_text(row)} "
                     f"| {params_text(row)} | {row['blessed']}/{row['n']} |")
    lines += ["", NOTES]
    if result.get("failures"):
        lines += ["", "Failed runs: " + "; ".join(
            f"`{x['variant']}` seed {x['seed']}: {x['error']}" for x in result["failures"])]
    lines += ["", f"Reproduce: `{command(result)}`", ""]
    return "\n".join(lines)


def html(result: Dict[str, Any]) -> str:
    """The comparison page: settings, table, accuracy chart, every run, what was cached."""
    env = environment()
    env.filters.update(accuracy=accuracy_text, recall=recall_text, seconds=seconds_text,
                       params=params_text)
    chart = plots.variant_accuracy(result["variants"]) if result["variants"] else None
    return env.get_template(TEMPLATE).render(r=result, facts=facts(result), chart=chart,
                                             command=command(result), top=best(result["variants"]),
                                             notes=NOTES)


def write_outputs(result: Dict[str, Any], out_dir: str) -> Dict[str, str]:
    """Write the three files into ``out_dir``; returns ``{kind: path}``."""
    paths = {kind: os.path.join(out_dir, name) for kind, name in FILES.items()}
    with open(paths["json"], "w", encoding="utf-8") as fh:
        json.dump({**result, "paths": paths}, fh, indent=2, ensure_ascii=False, default=_json)
    with open(paths["markdown"], "w", encoding="utf-8") as fh:
        fh.write(markdown(result))
    write_html(result, paths["html"])
    return paths


def _json(value: Any) -> Any:
    """Records (``lensflow.pipeline.records``) as their JSON form; anything else as text."""
    return value.to_dict() if hasattr(value, "to_dict") else str(value)


def write_html(result: Dict[str, Any], path: str) -> str:
    """Write the comparison page; returns its absolute path."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(html(result))
    return path


def load(path: str) -> Dict[str, Any]:
    """A comparison from its ``compare.json`` or the folder holding it."""
    if os.path.isdir(path):
        path = os.path.join(path, FILES["json"])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {FILES['json']} at {path}: run `lensflow compare` first")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def best(rows: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The variant with the highest mean accuracy."""
    known = [r for r in rows if r["accuracy_mean"] is not None]
    return max(known, key=lambda r: r["accuracy_mean"]) if known else None
