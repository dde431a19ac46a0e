"""Serving: ``lensflow serve`` (a TF Serving stand-in), ``lensflow predict``, load checks."""
import pipeline  # noqa: F401 - sets TF_USE_LEGACY_KERAS before tf.keras is used
