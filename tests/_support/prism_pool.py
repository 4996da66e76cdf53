"""Pytest plugin: one Prism mock per provider spec for the whole test process.

Several modules need Prism serving the same specs (the contract tests, the e-mail and Pipedrive
journeys, erasure propagation). Each used to start its own servers, and Prism takes seconds of
CPU to load a large spec, several times over on a busy 2-core machine. ``prism_pool`` starts a
spec's server the first time any test asks for it and stops them all at the end of the session;
the tests that use it share one xdist group (``prism``), so a run starts each server once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.contract.prism import PrismUnavailable, prism_servers


class PrismPool:
    """Spec path (under ``tests/contract/specs``) → the URL of its running Prism."""

    def __init__(self, stack: ExitStack, work_dir: Path) -> None:
        self._stack = stack
        self._work_dir = work_dir
        self._by_spec: dict[str, str] = {}

    def urls(self, specs: Mapping[str, str]) -> dict[str, str]:
        """Name → base URL for each ``{name: spec path}``, starting the servers not yet up."""
        missing = {_key(spec): spec for spec in specs.values() if _key(spec) not in self._by_spec}
        if missing:
            try:
                started = self._stack.enter_context(prism_servers(missing, self._work_dir))
            except PrismUnavailable as exc:
                pytest.fail(str(exc), pytrace=False)
            self._by_spec.update(started)
        return {name: self._by_spec[_key(spec)] for name, spec in specs.items()}


def _key(spec: str) -> str:
    return spec.replace("/", "_")  # also names the server's log file


@pytest.fixture(scope="session")
def prism_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismPool]:
    with ExitStack() as stack:
        yield PrismPool(stack, tmp_path_factory.mktemp("prism"))
