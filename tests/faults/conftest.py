"""Fixtures of the fault-injection suite: the real node's (tests/system) and a ``Scene``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.security.scene import Scene
from tests.system.conftest import pilot_install, real_node, shared_tmp  # noqa: F401 - fixtures


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.system)


@pytest.fixture
def scene(shared_tmp, users, pilot_install):  # noqa: F811 - fixtures by name
    """The pilot's home, transformations and queue settings on the real node."""
    made = Scene(shared_tmp, users, pilot_install)
    yield made
    made.cleanup()
