"""The report of a real run in real headless Chromium: it renders, its scripts run without
errors, every image loads offline, and the accuracy it shows is the one TFMA stored."""
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image


class _Elements(HTMLParser):
    """Collects every start tag with its attributes, and the text of the accuracy element."""

    def __init__(self):
        super().__init__()
        self.tags = []
        self.accuracy_text = ""
        self._in_accuracy = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        self._in_accuracy = attrs.get("id") == "overall-accuracy"

    def handle_data(self, data):
        if self._in_accuracy:
            self.accuracy_text += data

    def handle_endtag(self, tag):
        self._in_accuracy = False

    def first(self, tag, **wanted):
        return next(attrs for t, attrs in self.tags
                    if t == tag and all(attrs.get(k) == v for k, v in wanted.items()))


def _parse(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    return parser


def _tfma_accuracy(evaluation_uri: str) -> float:
    """Overall sparse_categorical_accuracy straight from TFMA's stored metrics."""
    import tensorflow_model_analysis as tfma

    for slice_metrics in tfma.load_metrics(evaluation_uri):
        if not slice_metrics.slice_key.single_slice_keys:
            for kv in slice_metrics.metric_keys_and_values:
                if kv.key.name == "sparse_categorical_accuracy" and not kv.key.is_diff \
                        and kv.key.model_name != "baseline":
                    return kv.value.double_value.value
    raise AssertionError("TFMA stored no overall accuracy")


@pytest.fixture(scope="module")
def loaded(report_file, headless):
    """The report's DOM after it loaded and its scripts ran (Chromium --dump-dom)."""
    run = headless(report_file, "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    return run


def test_console_check_catches_a_script_error(headless, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><script>notDefinedAnywhere();</script>"
                      "</body></html>", encoding="utf-8")
    run = headless(str(broken), "--dump-dom")
    assert any("Uncaught ReferenceError" in line for line in run.console), run.stderr[-2000:]


def test_report_runs_its_scripts_without_errors_and_loads_every_image(loaded):
    assert loaded.console == []
    body = _parse(loaded.stdout).first("body")
    assert body.get("data-report-ready") == "1"
    assert int(body["data-images-total"]) >= 10
    assert body["data-images-loaded"] == body["data-images-total"]


def test_shown_accuracy_is_tfmas_stored_value(loaded, e2e):
    page = _parse(loaded.stdout)
    stored = _tfma_accuracy(e2e.summary["evaluation_uri"])
    element = page.first("strong", id="overall-accuracy")
    assert float(element["data-value"]) == stored
    assert page.accuracy_text.strip() == f"{stored:.4f}"


def test_screenshot_is_not_blank(report_file, headless, tmp_path):
    shot = tmp_path / "report.png"
    run = headless(report_file, f"--screenshot={shot}", "--window-size=1280,2000")
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2000, 1280)
    assert pixels.var() > 500
    _, counts = np.unique(pixels, return_counts=True)
    assert counts.max() / pixels.size < 0.8


def test_report_is_self_contained(report_file):
    html = open(report_file, encoding="utf-8").read()
    page = _parse(html)
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    assert not [attrs for tag, attrs in page.tags if tag in ("link", "iframe", "object", "embed")]
    assert not [attrs for tag, attrs in page.tags if tag == "script" and attrs.get("src")]
    hrefs = [attrs.get("href", "") for tag, attrs in page.tags if tag == "a"]
    assert all(h.startswith(("#", "file://")) for h in hrefs), hrefs


def test_clicking_a_header_sorts_the_slice_table(report_file, headless, tmp_path):
    clicks = ('<script>window.addEventListener("load", function () {'
              ' var th = document.querySelector("#slices-table thead th:nth-child(3)");'
              ' th.click(); th.click(); });</script></body>')
    page = tmp_path / "clicked.html"
    page.write_text(open(report_file, encoding="utf-8").read().replace("</body>", clicks),
                    encoding="utf-8")
    run = headless(str(page), "--dump-dom")
    assert run.console == []
    table = run.stdout[run.stdout.index('id="slices-table"'):]
    table = table[:table.index("</table>")]
    assert 'aria-sort="descending"' in table
    accuracies = [float(v) for v in re.findall(
        r"<tr[^>]*><td>[^<]*</td>\s*<td[^>]*>[^<]*</td><td[^>]*>([0-9.]+)</td>", table)]
    assert len(accuracies) >= 3
    assert accuracies == sorted(accuracies, reverse=True)
