"""Bad configuration: one sentence on stderr, exit status 2, no traceback, nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text('{"PK": "a", "SK": "b"}\n')
    return path


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "0"], "--workers must be 1 or more."),
        (["--resume"], "--resume needs --checkpoint FILE"),
        (["--csv-type", "price"], "--csv-type 'price': expected NAME=VALUE."),
        (["--csv-type", "price=FLOAT"], "the type must be one of S, N, BOOL, JSON"),
        (["--max-wcu", "-5"], "--max-wcu must be a positive number"),
        (["--format", "xml"], "invalid choice: 'xml'"),
    ],
)
def test_an_invalid_flag_is_one_sentence_and_exit_2(
    source: Path, flags: list[str], message: str
) -> None:
    result = run_cli(
        "load", str(source), "--table", "products", "--endpoint-url", "http://127.0.0.1:9", *flags
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_source_file_is_a_configuration_error(tmp_path: Path) -> None:
    result = run_cli("load", str(tmp_path / "nope.jsonl"), "--table", "products")
    assert result.returncode == 2
    assert f"Cannot read {tmp_path / 'nope.jsonl'}: no such file or folder." in result.stderr


def test_no_credentials_is_a_configuration_error(source: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",  # never ask the instance-metadata address
        AWS_DEFAULT_REGION="us-east-1",
    )
    result = run_cli(
        "load", str(source), "--table", "products", "--endpoint-url", "http://127.0.0.1:9", env=env
    )
    assert result.returncode == 2
    assert "No AWS credentials found" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_source_format_asks_for_format(tmp_path: Path) -> None:
    odd = tmp_path / "data.xml"
    odd.write_text("<a/>")
    result = run_cli("load", str(odd), "--table", "products")
    assert result.returncode == 2
    assert "Cannot tell the format of" in result.stderr
    assert "--format" in result.stderr


def test_the_command_says_its_version() -> None:
    result = run_cli("--version", check_status=0)
    assert result.stdout.startswith("ddb-loader ")


def test_table_name_is_the_aws_cli_s_name_for_table() -> None:
    from loader.cli import build_parser

    args = build_parser().parse_args(["load", "in.jsonl", "--table-name", "products"])
    assert args.table == "products"


@pytest.mark.parametrize("command", ["load", "delete", "verify"])
def test_every_option_explains_itself_and_the_help_ends_with_examples_and_exit_statuses(
    command: str,
) -> None:
    from loader.cli import build_parser

    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    unexplained = [a.option_strings[0] for a in sub._actions if a.option_strings and not a.help]
    assert unexplained == []
    text = sub.format_help()
    assert "examples:" in text
    assert "exit status:" in text


def test_verify_offers_no_knob_that_only_writing_uses() -> None:
    text = run_cli("verify", "--help", check_status=0).stdout
    for knob in ("--max-wcu", "--max-retries", "--resume", "--checkpoint", "--report"):
        assert knob not in text.split("examples:")[0], knob


def test_an_unknown_region_is_named_as_such_before_any_write(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"PK": "a"}\n')
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
    env.pop("AWS_ENDPOINT_URL", None)
    env.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    result = run_cli(
        "load", str(source), "--table", "products", "--region", "eu-wst-1", env=env,
        check_status=2,
    )  # fmt: skip
    assert "Unknown AWS region 'eu-wst-1'" in result.stderr
    assert "Traceback" not in result.stderr
