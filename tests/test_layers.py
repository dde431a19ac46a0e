"""Imports point one way: each part of lensflow imports only parts of lower layers (or itself).

The layers, lowest first, as docs/ARCHITECTURE.md draws them. Every import counts, including
the ones inside functions (a lazy import is still a dependency). A new package or module must be
placed in a layer here before this test passes.
"""
import ast
import os

import pytest

from pipeline.config import REPO_ROOT

LAYERS = [
    ("pipeline",),                                   # the package init (TF_USE_LEGACY_KERAS)
    ("components",),
    ("pipeline.registry", "pipeline.home_lock", "pipeline.disk_errors"),
    ("pipeline.config",),
    ("pipeline.cli_options", "pipeline.object_store", "pipeline.outcome", "system"),
    ("components.transform",),                       # feature names, the one decode
    ("components.pusher",),                          # serving layout, push records
    ("components.image_example_gen", "components.data_validation", "components.trainer",
     "components.evaluator", "serving"),
    ("components.serving_check", "pipeline.summary"),
    ("components.report",),
    ("pipeline.pipeline",),                          # wiring
    ("pipeline.runners",),
    ("pipeline.compare", "pipeline.cli_kubeflow"),
    ("pipeline.cli",),
]
LAYER = {part: level for level, parts in enumerate(LAYERS) for part in parts}
PACKAGES = ("pipeline", "components", "serving", "system")


def part_of(module: str) -> str:
    """``components.trainer.models.x`` -> ``components.trainer``; ``serving.x`` -> ``serving``."""
    names = module.split(".")
    if names[0] in ("pipeline", "components") and len(names) > 1:
        return ".".join(names[:2])
    return names[0]


def modules(root=REPO_ROOT):
    for package in PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(root, package)):
            dirs[:] = [d for d in dirs if d not in ("tests", "__pycache__", "templates")]
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    module = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                    yield module.removesuffix(".__init__"), path


def imports(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from pipeline import cli" depends on pipeline.cli, not just on pipeline
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
            if target.split(".")[0] not in PACKAGES:
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
        "import os\n\ndef load():\n    from pipeline.cli import main\n    return main\n")
    (tmp_path / "components" / "transform").mkdir(parents=True)
    (tmp_path / "components" / "transform" / "decode.py").write_text(
        "from pipeline import config, runners\nfrom components.transform import features\n")
    assert upward_imports(tmp_path) == ["pipeline.config imports pipeline.cli.main",
                                        "components.transform.decode imports pipeline.runners"]
