"""Serving: ``lensflow serve`` (a TF Serving stand-in), ``lensflow predict``, load checks."""
