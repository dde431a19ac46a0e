"""notebooks/model_analysis.ipynb runs top to bottom on the real run and shows TFMA's views."""
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "model_analysis.ipynb"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _kernel_manager(tmp_path) -> KernelManager:
    """A ``python3`` kernel that runs on this interpreter (this venv), whatever other
    kernelspecs the machine has."""
    spec_dir = tmp_path / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (lensflow venv)", "language": "python"}))
    specs = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)])
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


def _outputs(nb, mime: str):
    return [out["data"][mime] for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if mime in out.get("data", {})]


@pytest.fixture(scope="module")
def executed(e2e, tmp_path_factory):
    """The notebook executed with LENSFLOW_HOME pointing at the session's pipeline run."""
    tmp_path = tmp_path_factory.mktemp("notebook")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    km = _kernel_manager(tmp_path)
    previous = os.environ.get("LENSFLOW_HOME")
    os.environ["LENSFLOW_HOME"] = e2e.home
    try:
        NotebookClient(nb, km=km, timeout=600,
                       resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    finally:
        if previous is None:
            os.environ.pop("LENSFLOW_HOME")
        else:
            os.environ["LENSFLOW_HOME"] = previous
    assert km.kernel_spec.argv[0] == sys.executable
    return nb


def test_notebook_runs_without_errors(executed):
    errors = [out for cell in executed.cells if cell.cell_type == "code"
              for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert errors == []


def test_notebook_shows_tfma_slicing_metrics_and_plots(executed):
    shown = "\n".join(_outputs(executed, "text/plain"))
    assert shown.count("SlicingMetricsViewer") == 2
    assert "PlotViewer" in shown
    assert len(_outputs(executed, WIDGET_MIME)) == 3


def test_notebook_reads_the_latest_run_in_lensflow_home(executed, e2e):
    """Other tests may have run the pipeline again in the shared home: the notebook must show
    whichever run is the latest there."""
    from lensflow.pipeline import summary

    latest = summary.summarise(e2e.config.metadata_path)
    printed = "".join(out.get("text", "") for cell in executed.cells if cell.cell_type == "code"
                      for out in cell.get("outputs", []) if out.get("output_type") == "stream")
    assert f"run {latest['run_id']}" in printed
    assert f"validation ok: {latest['blessed']}" in printed
