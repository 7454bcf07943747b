"""`make demo`: the main job on an embedded DynamoDB Local.

Starts DynamoDB Local, creates the tutorial's table `demo-ecommerce-freetier`
(PK/SK strings, GSI1 on GSI1PK/GSI1SK, on-demand), writes a deterministic
100,000-item product catalog, loads it with `ddb-loader load`, reads every item
back with `ddb-loader verify --compare`, prints the report and stops the server.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import boto3

from benchmarks.catalog import products, write_jsonl
from tests.ddb_local import dynamodb_local

TABLE = "demo-ecommerce-freetier"
ITEMS = int(os.environ.get("DEMO_ITEMS", "100000"))
WORK = Path(".cache/demo")


def create_table(url: str) -> None:
    client = boto3.client("dynamodb", endpoint_url=url)
    client.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("PK", "SK", "GSI1PK", "GSI1SK")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "GSI1",
                "KeySchema": [
                    {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def run(*args: str) -> int:
    command = ["ddb-loader", *args]
    print(f"\n$ {shlex.join(command)}", flush=True)
    return subprocess.run([sys.executable, "-m", "loader", *args], check=False).returncode


def main() -> int:
    # DynamoDB Local takes any credentials; these keep boto3 from looking elsewhere.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    WORK.mkdir(parents=True, exist_ok=True)
    catalog = WORK / "catalog.jsonl"
    started = time.monotonic()
    write_jsonl(str(catalog), products(ITEMS))
    size = catalog.stat().st_size
    print(f"catalog: {ITEMS:,} products, {size / 1e6:.1f} MB in {catalog}")
    with dynamodb_local() as server:
        print(f"DynamoDB Local on {server.url}; table {TABLE} (PK, SK, GSI1, on-demand)")
        create_table(server.url)
        endpoint = ("--endpoint-url", server.url, "--table", TABLE)
        loaded = run(
            "load",
            str(catalog),
            *endpoint,
            "--rejects",
            str(WORK / "rejects.jsonl"),
            "--report",
            str(WORK / "report.json"),
        )
        checked = run("verify", str(catalog), *endpoint, "--compare")
    print(f"\nreport: {WORK / 'report.json'}   ({time.monotonic() - started:.0f} s in all)")
    return loaded or checked


if __name__ == "__main__":
    sys.exit(main())
