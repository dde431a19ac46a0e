"""lensflow's pipeline layer (config, registry, wiring, runners, CLI).

TFX 1.16 and lensflow's models are written for Keras 2: ``TF_USE_LEGACY_KERAS`` makes
``tf.keras`` the Keras 2 of ``tf_keras``. It must be set before ``tf.keras`` is first used, so it
is set here, once, for every process that imports lensflow (``components`` and ``serving``
import this package first).
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
