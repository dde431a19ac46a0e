"""Imports point one way: each part of lensflow imports only parts of lower layers (or itself).

The layers, lowest first, as docs/ARCHITECTURE.md draws them. Every import counts, including
the ones inside functions (a lazy import is still a dependency). A new package or module must be
placed in a layer here before this test passes.
"""
import ast
import os

import pytest

from lensflow.pipeline.config import REPO_ROOT

LAYERS = [
    ("lensflow",),                                   # the package init (TF_USE_LEGACY_KERAS)
    ("lensflow.pipeline", "lensflow.components"),    # their package inits
    ("lensflow.pipeline.registry", "lensflow.pipeline.home_lock", "lensflow.pipeline.disk_errors",
     "lensflow.pipeline.records"),
    ("lensflow.pipeline.config",),
    ("lensflow.pipeline.cli_options", "lensflow.pipeline.object_store", "lensflow.pipeline.outcome", "system"),
    ("lensflow.components.transform",),                       # feature names, the one decode
    ("lensflow.components.pusher",),                          # serving layout, push records
    ("lensflow.components.image_example_gen", "lensflow.components.data_validation", "lensflow.components.trainer",
     "lensflow.components.evaluator", "lensflow.serving"),
    ("lensflow.components.serving_check", "lensflow.pipeline.summary",
     "lensflow.pipeline.auto_model"),                         # auto: data -> model choice
    ("lensflow.components.report",),
    ("lensflow.pipeline.pipeline",),                          # wiring
    ("lensflow.pipeline.runners",),
    ("lensflow.pipeline.compare", "lensflow.pipeline.cli_kubeflow"),
    ("lensflow.pipeline.cli",),
]
LAYER = {part: level for level, parts in enumerate(LAYERS) for part in parts}
FOLDERS = ("lensflow", "pipeline", "components", "serving", "system")   # in the repository
TOP = ("lensflow", "system")                                             # their import names


def part_of(module: str) -> str:
    """``lensflow.components.trainer.models.x`` -> ``lensflow.components.trainer``;
    ``lensflow.serving.x`` -> ``lensflow.serving``; ``system`` -> ``system``."""
    names = module.split(".")
    if names[0] != "lensflow":
        return names[0]
    if len(names) > 2 and names[1] in ("pipeline", "components"):
        return ".".join(names[:3])
    return ".".join(names[:2])


def module_name(relpath: str) -> str:
    """The import name of a file in the repository (setup.py maps the folders into ``lensflow``)."""
    name = relpath[:-3].replace(os.sep, ".").removesuffix(".__init__")
    return name if name.split(".")[0] in TOP else f"lensflow.{name}"


def modules(root=REPO_ROOT):
    for package in FOLDERS:
        for folder, dirs, files in os.walk(os.path.join(root, package)):
            dirs[:] = [d for d in dirs if d not in ("tests", "__pycache__", "templates")]
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    yield module_name(os.path.relpath(path, root)), path


def imports(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from lensflow.pipeline import cli" depends on lensflow.pipeline.cli
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_every_part_has_a_layer():
    unplaced = {part_of(module) for module, _ in modules()} - set(LAYER)
    assert not unplaced, f"place these in tests/test_layers.py LAYERS: {sorted(unplaced)}"


def upward_imports(root=REPO_ROOT):
    """``module imports target`` for every import of a part from the same or a higher layer."""
    found = []
    for module, path in modules(root):
        own = part_of(module)
        for target in imports(path):
            if target.split(".")[0] not in TOP:
                continue
            other = part_of(target)
            if other != own and LAYER.get(other, -1) >= LAYER.get(own, -1):
                found.append(f"{module} imports {target}")
    return found


def test_imports_point_down():
    upward = upward_imports()
    assert not upward, "\n".join(upward)


def test_an_upward_import_is_caught_even_inside_a_function(tmp_path):
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "config.py").write_text(
        "import os\n\ndef load():\n    from lensflow.pipeline.cli import main\n    return main\n")
    (tmp_path / "components" / "transform").mkdir(parents=True)
    (tmp_path / "components" / "transform" / "decode.py").write_text(
        "from lensflow.pipeline import config, runners\nfrom lensflow.components.transform import features\n")
    assert upward_imports(tmp_path) == [
        "lensflow.pipeline.config imports lensflow.pipeline.cli.main",
        "lensflow.components.transform.decode imports lensflow.pipeline.runners"]
