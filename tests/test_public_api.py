import types

import pytest

import ddb_loader
import loader

ENGINE = [
    "Aborted", "ConfigError", "LoadConfig", "LoadReport", "LoaderError", "RetriesExhausted",
    "SourceError", "VerifyReport", "load", "verify",
]  # fmt: skip
LIBRARY = [
    "Aborted", "ConfigError", "Delete", "LoadConfig", "LoadReport", "LoaderError", "Reject",
    "RetriesExhausted", "SourceError", "SyncWriter", "UnwrittenError", "Writer", "load",
    "load_async", "sync_writer", "writer",
]  # fmt: skip


@pytest.mark.parametrize(("module", "names"), [(loader, ENGINE), (ddb_loader, LIBRARY)])
def test_the_public_api_is_exactly_these_names(module: types.ModuleType, names: list[str]) -> None:
    assert sorted(module.__all__) == names
    for name in module.__all__:
        assert getattr(module, name) is not None
