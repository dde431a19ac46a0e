"""Turn the collected report data into ONE self-contained HTML file (Jinja2 + inline PNGs)."""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Dict, Optional

import jinja2

from lensflow.components.report import build, plots, reuse

TEMPLATE = "report.html.j2"
_TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def _fmt(value, digits: int = 4) -> str:
    """Numbers for tables: fixed decimals, missing as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return str(value)


def _count(value) -> str:
    """Counts (TFMA stores them as floats) without decimals."""
    return "—" if value is None else f"{value:,.0f}"


def _signed(value, digits: int = 4) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:+.{digits}f}"


def environment() -> jinja2.Environment:
    """Jinja2 environment over the package's templates, HTML-escaping on."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    env.filters["signed"] = _signed
    env.filters["count"] = _count
    env.filters["png"] = plots.png_uri
    return env


def charts(data: Dict[str, Any]) -> Dict[str, Optional[str]]:
    """Every chart of the report as a PNG data URI (None when its data is missing)."""
    out: Dict[str, Optional[str]] = {}
    ev = data.get("evaluation")
    if ev:
        names = data["class_names"]
        out["confusion"] = plots.confusion_heatmap(ev["confusion"], names)
        out["per_class"] = plots.per_class_bars(ev["per_class"])
        out["reliability"] = plots.reliability(ev["calibration"]["top1"])
    if data.get("training"):
        out["training"] = plots.training_curves(data["training"]["history"])
    interp = data.get("interpretation")
    if interp and interp["samples"]:
        out["explanations"] = plots.explanations(interp["samples"], interp["cam_layer"])
        if interp["filter_bank"]:
            out["filter_bank"] = plots.filter_bank(interp["filter_bank"],
                                                   interp["filter_bank_image"])
    return out


def render(data: Dict[str, Any]) -> str:
    """The report HTML for data from ``build.collect``; the charts are drawn once and kept in
    ``data["charts"]`` (``reuse.save`` keeps them with the sections they show)."""
    if data.get("charts") is None:
        data["charts"] = charts(data)
    template = environment().get_template(TEMPLATE)
    return template.render(d=data, charts=data["charts"])


def write_report(metadata_path: str, run_id: Optional[str], out_path: str,
                 kept_sections: Optional[str] = None) -> str:
    """Collect, render and write the report of a local run; returns the absolute path.
    ``kept_sections``: a ``reuse`` file of a report of the same artifacts (a cached RunReport's),
    whose costly sections are taken when their key matches."""
    kept = reuse.load(kept_sections) if kept_sections else None
    return write_html(lambda: render(build.collect(metadata_path, run_id, kept=kept)), out_path)


def write_artifacts_report(run_root: str, out_path: str) -> str:
    """Collect, render and write the report of a Kubeflow run from its folder in the bucket."""
    from lensflow.components.report import sources

    return write_html(lambda: render(build.collect_artifacts(sources.from_kfp_run(run_root))),
                      out_path)


def write_html(make_html: Callable[[], str], out_path: str) -> str:
    """Check ``out_path`` is a file path, then build the page and write it there."""
    out_path = os.path.abspath(os.path.expanduser(out_path))
    if os.path.isdir(out_path):
        raise IsADirectoryError(f"the report path must be a file path, {out_path} is a directory")
    html = make_html()
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as fh:
        fh.write(html)
    return out_path
