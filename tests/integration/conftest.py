"""Fixtures of the integration tests: a fault proxy in front of DynamoDB Local, one per
test. A module that needs another kind (one that records, one per module) defines its
own `proxy`, which takes precedence."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ddb_local import DynamoDBLocal
from tests.faultproxy import FaultProxy


@pytest.fixture
def proxy(ddb_local: DynamoDBLocal) -> Iterator[FaultProxy]:
    """A fault proxy with no faults until a test sets `proxy.config`."""
    with FaultProxy(ddb_local.url) as running:
        yield running
