"""The pipeline's stages, one folder each (see docs/ARCHITECTURE.md)."""
