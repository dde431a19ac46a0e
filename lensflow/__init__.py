"""lensflow: a folder of labelled images -> a validated, served image classifier on TFX.

The repository keeps its top-level folders (``pipeline/``, ``components/``, ``serving/``,
``schemas/``, ``kubeflow/``, ``data/sample``) and setup.py maps them into this package: an
installed wheel holds ``lensflow/pipeline``, ``lensflow/components``, ... with the schema, the
sample and the Kubeflow templates as package data. In a checkout (this folder beside setup.py) the
same folders are found at the repository root, so ``lensflow.pipeline`` names the same files either
way and nothing is importable under a second name. ``ROOT`` is where those folders are.

TFX 1.16 and lensflow's models are written for Keras 2: ``TF_USE_LEGACY_KERAS`` makes ``tf.keras``
the Keras 2 of ``tf_keras``. It must be set before ``tf.keras`` is first used, so it is set here,
once, for every process that imports any part of lensflow.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_CHECKOUT = os.path.dirname(_PACKAGE)
if os.path.isfile(os.path.join(_CHECKOUT, "setup.py")) and os.path.isdir(
        os.path.join(_CHECKOUT, "pipeline")):
    __path__.append(_CHECKOUT)  # noqa: F821 - a package's __path__
    ROOT = _CHECKOUT
else:
    ROOT = _PACKAGE


def installed_version() -> str:
    """lensflow's installed version ("unknown" when it is not installed): part of cache keys."""
    from importlib import metadata

    try:
        return metadata.version("lensflow")
    except metadata.PackageNotFoundError:
        return "unknown"
