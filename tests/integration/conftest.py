"""Fixtures for tests that run whole networks in one process, on loopback ports chosen at run time."""

from __future__ import annotations

import pytest

from node.testing import LocalNetwork


@pytest.fixture
async def network(tmp_path):
    """Four validators and one observer, started; stopped when the test ends."""
    net = LocalNetwork(tmp_path / "net")
    await net.start()
    try:
        yield net
    finally:
        await net.stop()
