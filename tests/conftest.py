"""Suite-wide checks: service problems fail the test that caused them; unexpected skips fail the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.service_logs import check_active_meshes


@pytest.fixture(autouse=True)
def _services_stayed_healthy() -> Iterator[None]:
    yield
    check_active_meshes()
