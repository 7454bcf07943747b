import ddb_loader
import loader


def test_the_public_api_is_exactly_these_names() -> None:
    assert sorted(loader.__all__) == [
        "Aborted",
        "ConfigError",
        "LoadConfig",
        "LoadReport",
        "LoaderError",
        "RetriesExhausted",
        "SourceError",
        "VerifyReport",
        "load",
        "verify",
    ]
    for name in loader.__all__:
        assert getattr(loader, name) is not None


def test_the_library_api_is_exactly_these_names() -> None:
    assert sorted(ddb_loader.__all__) == [
        "Aborted",
        "ConfigError",
        "Delete",
        "LoadConfig",
        "LoadReport",
        "LoaderError",
        "Reject",
        "RetriesExhausted",
        "SourceError",
        "SyncWriter",
        "UnwrittenError",
        "Writer",
        "load",
        "load_async",
        "sync_writer",
        "writer",
    ]
    for name in ddb_loader.__all__:
        assert getattr(ddb_loader, name) is not None
