"""Developer tools run with ``python -m`` (generated documents, maintenance)."""
