"""The exception tree and a job's outcome: what callers may rely on."""

from __future__ import annotations

import inspect

import pytest

from loader import errors
from loader.codec import CodecError, MissingKey
from loader.errors import LoaderError, Outcome
from loader.metrics import Metrics


def test_every_error_the_loader_raises_on_purpose_is_a_loader_error() -> None:
    classes = [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__
    ]
    exceptions = [c for c in classes if issubclass(c, BaseException)]
    assert len(exceptions) >= 9
    assert all(issubclass(c, LoaderError) for c in exceptions)


def test_a_records_refusal_is_a_loader_error_too() -> None:
    assert issubclass(CodecError, LoaderError)
    assert issubclass(MissingKey, CodecError)
    assert "CodecError" in (errors.__doc__ or "")
    assert "MissingKey" in (errors.__doc__ or "")


def test_the_tree_is_drawn_in_the_modules_docstring() -> None:
    drawn = errors.__doc__ or ""
    for name, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, BaseException) and cls.__module__ == errors.__name__:
            assert name in drawn, f"{name} is missing from the tree in errors.py"


def test_a_service_error_carries_its_code_and_status() -> None:
    error = errors.TransientError(
        "503: busy", throttled=False, code="ServiceUnavailable", status=503
    )
    assert isinstance(error, errors.ServiceError)
    assert (error.code, error.status, error.throttled) == ("ServiceUnavailable", 503, False)


@pytest.mark.parametrize(
    ("outcome", "rejected", "status"),
    [
        (Outcome.OK, 0, 0),
        (Outcome.OK, 3, 1),
        (Outcome.DRY_RUN, 0, 0),
        (Outcome.ABORTED, 0, 3),
        (Outcome.RETRIES_EXHAUSTED, 5, 3),
    ],
)
def test_the_exit_status_follows_from_the_outcome_and_the_rejects(
    outcome: Outcome, rejected: int, status: int
) -> None:
    metrics = Metrics(0.0)
    metrics.rejected = rejected
    assert (
        metrics.report(1.0, outcome, "why" if outcome.stopped_early else "").exit_status == status
    )


def test_a_job_stopped_for_its_retries_says_why_and_its_json_report_keeps_its_fields() -> None:
    why = "DynamoDB refused in.jsonl line 8 11 times in a row (throttled; --max-retries 10)"
    report = Metrics(0.0).report(1.0, Outcome.RETRIES_EXHAUSTED, why)
    assert report.ending == f"retries exhausted: {why}"
    assert report.exit_status == 3
    assert "outcome" not in report.to_json()
    assert "reason" not in report.to_json()
