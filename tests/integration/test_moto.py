"""The same load against moto's server: a second, independent DynamoDB implementation
that needs no JVM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from benchmarks.catalog import products, write_jsonl
from loader import LoadConfig, load, verify
from tests.conftest import create_table, scan_table
from tests.ddb_local import free_port
from tests.integration.test_load_local import by_key, plain


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


async def test_a_load_into_moto_matches_the_input_and_verifies(
    moto_url: str, tmp_path: Path
) -> None:
    create_table(moto_url, gsi=False, name="catalog")
    source = tmp_path / "catalog.jsonl"
    write_jsonl(str(source), products(2_000, seed=11))
    config = LoadConfig(sources=(str(source),), table="catalog", endpoint_url=moto_url)

    report = await load(config)

    assert report.items_written == 2_000
    assert report.exit_status == 0
    expected = by_key(
        [
            json.loads(line, parse_float=Decimal, parse_int=Decimal)
            for line in source.read_text().splitlines()
        ]
    )
    assert by_key([plain(i) for i in scan_table(moto_url, "catalog")]) == expected
    checked = await verify(config, compare=True)
    assert (checked.checked, checked.missing, checked.different) == (2_000, 0, 0)
