"""Company networks: an https endpoint signed by the company's own authority, reached
through an HTTP proxy (CONNECT), an http one through a proxy that is sent the whole
URL, NO_PROXY, a proxy that wants a password, a CA bundle from a profile: each as
botocore honours it (issue 13), each read back from the table.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trustme

from tests.conftest import (
    Key,
    TableFactory,
    assert_table_equals,
    processes_flag,
    run_cli,
    stored,
)
from tests.ddb_local import DynamoDBLocal
from tests.integration.test_faults import expected_of, record, write_jsonl
from tests.netproxy import HttpProxy, tls_front

pytestmark = pytest.mark.integration

PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY", "AWS_CA_BUNDLE")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="Company TLS inspection")


@pytest.fixture(scope="module")
def https_url(ddb_local: DynamoDBLocal, ca: trustme.CA) -> Iterator[str]:
    """DynamoDB Local behind TLS with a certificate of the company's authority."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    with tls_front(urlsplit(ddb_local.url).port or 0, context) as port:
        yield f"https://localhost:{port}"


@pytest.fixture
def bundle(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "company-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def environment(**values: str) -> dict[str, str]:
    """The test's environment with no proxy or CA bundle of its own, and `values`."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in PROXY_VARIABLES}
    return {**env, **values}


def load(
    source: Path, table: str, endpoint: str, env: dict[str, str], *args: str
) -> tuple[int, str]:
    result = run_cli(
        "load", str(source), "--table", table, "--endpoint-url", endpoint, "--no-progress",
        *args, env=env,
    )  # fmt: skip
    return result.returncode, result.stderr


def catalog(tmp_path: Path, count: int = 300) -> tuple[Path, dict[Key, dict[str, object]]]:
    source = tmp_path / "in.jsonl"
    return source, expected_of(write_jsonl(source, [record(i) for i in range(count)]))


def test_https_through_a_connect_proxy_with_the_company_s_ca_bundle(
    ddb_local: DynamoDBLocal,
    make_table: TableFactory,
    https_url: str,
    bundle: str,
    tmp_path: Path,
    processes: int,
) -> None:
    table = make_table(gsi=False)
    source, expected = catalog(tmp_path)
    proxy = HttpProxy()
    with proxy.serving() as proxy_url:
        env = environment(HTTPS_PROXY=proxy_url, AWS_CA_BUNDLE=bundle)
        status, err = load(source, table, https_url, env, *processes_flag(processes))
        assert status == 0, err
        verified = run_cli(
            "verify", str(source), "--table", table, "--endpoint-url", https_url, env=env
        )
    assert verified.returncode == 0, verified.stderr
    assert_table_equals(stored(ddb_local.url, table), expected)
    authority = https_url.removeprefix("https://")
    # Every connection, of the load's writers and of verify, went through the tunnel.
    assert proxy.asked
    assert {(method, target) for method, target, _ in proxy.asked} == {("CONNECT", authority)}


def test_a_ca_bundle_from_the_profile_is_trusted(
    ddb_local: DynamoDBLocal, make_table: TableFactory, https_url: str, bundle: str, tmp_path: Path
) -> None:
    table = make_table(gsi=False)
    source, expected = catalog(tmp_path)
    config = tmp_path / "config"
    config.write_text(
        "[profile corp]\nregion = us-east-1\naws_access_key_id = test\n"
        f"aws_secret_access_key = test\nca_bundle = {bundle}\n"
    )
    env = environment(AWS_CONFIG_FILE=str(config))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        env.pop(name, None)
    status, err = load(source, table, https_url, env, "--profile", "corp")
    assert status == 0, err
    assert_table_equals(stored(ddb_local.url, table), expected)


def test_an_untrusted_certificate_is_one_sentence_and_exit_2_before_any_write(
    ddb_local: DynamoDBLocal, make_table: TableFactory, https_url: str, tmp_path: Path
) -> None:
    table = make_table(gsi=False)
    source, _ = catalog(tmp_path)
    status, err = load(source, table, https_url, environment())
    assert status == 2, err
    assert "Traceback" not in err
    assert "not trusted" in err, err
    assert "AWS_CA_BUNDLE" in err, err
    assert stored(ddb_local.url, table) == {}


def test_http_through_a_proxy_sends_it_the_whole_url(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table(gsi=False)
    source, expected = catalog(tmp_path)
    proxy = HttpProxy()
    with proxy.serving() as proxy_url:
        status, err = load(source, table, ddb_local.url, environment(HTTP_PROXY=proxy_url))
    assert status == 0, err
    assert_table_equals(stored(ddb_local.url, table), expected)
    assert proxy.asked
    assert {target for _, target, _ in proxy.asked} == {ddb_local.url.rstrip("/") + "/"}


def test_no_proxy_names_the_hosts_reached_directly(
    ddb_local: DynamoDBLocal, make_table: TableFactory, tmp_path: Path
) -> None:
    table = make_table(gsi=False)
    source, expected = catalog(tmp_path)
    # Port 9 of loopback: nothing listens; used, the load could not connect at all.
    env = environment(HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="localhost,127.0.0.1")
    status, err = load(source, table, ddb_local.url, env)
    assert status == 0, err
    assert_table_equals(stored(ddb_local.url, table), expected)


def test_a_proxy_that_wants_a_password_gets_the_one_in_its_url(
    ddb_local: DynamoDBLocal,
    make_table: TableFactory,
    https_url: str,
    bundle: str,
    tmp_path: Path,
) -> None:
    table = make_table(gsi=False)
    source, expected = catalog(tmp_path)
    proxy = HttpProxy(credentials="alice:s3cr:t")
    with proxy.serving() as proxy_url:
        bare = environment(HTTPS_PROXY=proxy_url, AWS_CA_BUNDLE=bundle)
        status, err = load(source, table, https_url, bare)
        assert status == 2, err
        assert "Traceback" not in err
        assert "407" in err, err
        assert "user and password" in err, err
        assert stored(ddb_local.url, table) == {}

        with_password = proxy_url.replace("http://", "http://alice:s3cr%3At@")
        status, err = load(source, table, https_url, {**bare, "HTTPS_PROXY": with_password})
    assert status == 0, err
    assert_table_equals(stored(ddb_local.url, table), expected)
