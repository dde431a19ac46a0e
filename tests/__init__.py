"""Cross-stage tests and their helpers (a regular package, so `tests.*` never resolves to another
distribution's `tests` package that a dependency put on sys.path, e.g. IPython's extensions)."""
