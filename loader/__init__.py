"""ddb-loader: an asyncio bulk loader for Amazon DynamoDB.

report = await loader.load(loader.LoadConfig(sources=("catalog.jsonl",), table="products"))
"""

from loader.api import VerifyReport, load, verify
from loader.config import LoadConfig
from loader.errors import Aborted, ConfigError, LoaderError, RetriesExhausted, SourceError
from loader.metrics import LoadReport

__all__ = [
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
