"""Fixtures shared by every test suite live in plugins under ``tests/_support``."""

pytest_plugins = [
    "tests._support.databases",
    "tests._support.prism_pool",
    "tests._support.tracing",
]
