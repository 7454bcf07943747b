"""Spark 4 finds Python Data Sources in top-level `pyspark_*` packages by their
`DefaultSource`: with ddb-loader installed, `df.write.format("ddb-loader")` works with
no registration step. Its tasks each pace themselves by what the table accepts;
`ddb_loader.spark.register(spark)` adds the driver's lease service (and `maxWcu`)."""

from ddb_loader.spark.source import DdbLoaderDataSource as DefaultSource

__all__ = ["DefaultSource"]
