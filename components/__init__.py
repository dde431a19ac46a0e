"""The pipeline's stages, one folder each (see docs/ARCHITECTURE.md)."""
import pipeline  # noqa: F401 - sets TF_USE_LEGACY_KERAS before any stage uses tf.keras
