from __future__ import annotations

from typing import Any

import pytest

from .factories import minimal_document


@pytest.fixture
def document() -> dict[str, Any]:
    return minimal_document()
