"""Shared fixtures. Keep this file small: fixtures used by one test module belong in that module."""

from __future__ import annotations

import pytest

from fusionkit.plugins import get_registry, set_registry


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "integration: end-to-end test that installs or runs something in a subprocess (runs by default)"
    )


@pytest.fixture(autouse=True, scope="session")
def private_cache_folder(tmp_path_factory):
    """Measured choices (``fusionkit.inference.hardware``) go to a temporary cache, not the user's."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    yield
    patch.undo()


@pytest.fixture
def restore_registry():
    """Let a test swap the process-wide registry (``set_registry``); the original comes back afterwards."""
    original = get_registry()
    try:
        yield original
    finally:
        set_registry(original)
