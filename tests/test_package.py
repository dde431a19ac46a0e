"""lensflow is one installable package: import names are ``lensflow.*`` (setup.py maps the
repository's folders into it), nothing imports the folders under their bare names, so no module is
loaded twice under two names, and a wheel installed outside the checkout runs a pipeline."""
import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from lensflow.pipeline.config import REPO_ROOT
from tests.test_layers import modules

BARE = {"pipeline", "components", "serving"}


def _tracked_python_files():
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    return [REPO_ROOT / name for name in listed]


def bare_imports(paths):
    """``path:line import`` for every import of a folder by its bare name (``pipeline.config``)."""
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found += [f"{path.relative_to(REPO_ROOT)}:{node.lineno} {name}"
                      for name in names if name.split(".")[0] in BARE]
    return found


def test_no_file_imports_a_folder_by_its_bare_name():
    files = _tracked_python_files()
    assert len(files) > 100
    assert bare_imports(files) == []


def test_a_bare_import_is_caught(tmp_path):
    module = REPO_ROOT / "tests" / "_bare_import_probe.py"
    try:
        module.write_text("def f():\n    from pipeline import config\n    import serving.cli\n")
        assert bare_imports([module]) == ["tests/_bare_import_probe.py:2 pipeline",
                                          "tests/_bare_import_probe.py:3 serving.cli"]
    finally:
        module.unlink()


def fresh_interpreter(script: str):
    """Run ``script`` in a new interpreter outside the checkout (no test path set-up) and
    return the JSON its last line prints."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", script], cwd="/", env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_every_module_loads_each_file_once():
    """In a fresh interpreter (no test path set-up), import all of lensflow: every file is in
    ``sys.modules`` under one name, and never under a bare one."""
    names = sorted(name for name, _ in modules())
    script = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "files = [getattr(m, '__file__', None) for n, m in sys.modules.items()\n"
        "         if n.split('.')[0] in ('lensflow', 'system', 'pipeline', 'components', 'serving')]\n"
        "bare = [n for n in sys.modules if n.split('.')[0] in ('pipeline', 'components', 'serving')]\n"
        "print(json.dumps({'files': [f for f in files if f], 'bare': bare}))\n")
    loaded = fresh_interpreter(script)
    assert loaded["bare"] == []
    assert len(loaded["files"]) == len(set(loaded["files"])) >= len(names)


def test_the_local_run_path_imports_no_unused_tfx_extensions():
    """``lensflow run``'s modules (the CLI, the local runner and every component it wires) load
    no ``tfx.v1`` (which imports the Google Cloud AI Platform extensions, ~10 s) and no
    jsonschema IRI grammar (~3 s): a fixed cost of every run and every cached re-run."""
    script = (
        "import json, sys\n"
        "import lensflow.pipeline.cli, lensflow.pipeline.runners.local\n"
        "print(json.dumps(sorted(n for n in sys.modules if n == 'tfx.v1' or\n"
        "    n.startswith(('google.cloud.aiplatform', 'rfc3987_syntax')))))\n")
    assert fresh_interpreter(script) == []


@pytest.mark.slow
def test_the_wheel_runs_a_pipeline_outside_the_checkout(tmp_path):
    """Build the wheel, install it in a new venv and run ``lensflow run`` from another folder.

    The new venv gets lensflow only from the wheel; its dependencies (TFX and the rest of
    requirements.lock) are this test venv's, chained by a .pth file, because installing TFX
    again would take minutes and the registry. The editable install's finder is not among them
    (a chained folder's .pth files are not run), so the checkout cannot leak in."""
    source, wheels = tmp_path / "source", tmp_path / "wheels"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    for name in listed.split("\n"):
        if name and (REPO_ROOT / name).is_file():    # the working tree, built away from it
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), str(source)],
                   check=True, capture_output=True, timeout=300)
    wheel, = wheels.glob("lensflow-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(site, "lensflow_test_dependencies.pth"), "w") as pth:
        pth.write(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--ignore-installed", str(wheel)], check=True, capture_output=True,
                   timeout=300)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    where = subprocess.run(
        [str(python), "-c", "import json, lensflow, system\n"
         "from lensflow.pipeline import config\n"
         "print(json.dumps([lensflow.__file__, system.__file__, str(config.CURATED_SCHEMA),"
         " str(config.SAMPLE_DATA), config.CURATED_SCHEMA.is_file()]))"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert where.returncode == 0, where.stderr[-3000:]
    package, system_file, schema, sample, schema_exists = json.loads(where.stdout.splitlines()[-1])
    for path in (package, system_file, schema, sample):
        assert path.startswith(site), (path, site)
    assert schema_exists

    data = elsewhere / "images"
    for label in ("bag", "sandal"):
        files = sorted(os.listdir(os.path.join(sample, label)))[:12]
        os.makedirs(data / label)
        for name in files:
            shutil.copy(os.path.join(sample, label, name), data / label)
    run = subprocess.run(
        [str(venv / "bin" / "lensflow"), "run", "--data", "images", "--home", "home",
         "--epochs", "1", "--min-accuracy", "0", "--summary-json", "summary.json"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((elsewhere / "summary.json").read_text())
    assert summary["pushed_model_dir"].startswith(str(elsewhere / "home")), summary
    assert not (REPO_ROOT / "images").exists() and not (REPO_ROOT / "home").exists()
