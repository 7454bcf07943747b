"""A manual check that `ddb_loader.spark.write` runs on another pyspark than the lock's
(Spark 3.5 is Glue 5's and EMR 7's line; the suite runs the lock's pyspark 4).

    python -m venv /tmp/spark35
    /tmp/spark35/bin/pip install 'pyspark==3.5.8' pyarrow 'pandas<3' -e .
    /tmp/spark35/bin/python tools/spark_compat.py

It starts DynamoDB Local (make ddb-local installs it), writes 5,000 rows with an exact
38-digit decimal through the helper at max_wcu=2000, reads them back, and prints one
line; on Spark 3.5 it also shows that the Data Source is Spark 4's alone.
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.update(
    AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1"
)

DIGITS = "1234567890123456789012345.6789012345678"


def main() -> int:
    import pyspark

    import ddb_loader.spark
    from tests.conftest import create_table, stored
    from tests.ddb_local import DynamoDBLocal, find_jar
    from tests.spark_local import local_session

    jar = find_jar()
    if jar is None:
        print("DynamoDB Local is not installed: run `make ddb-local`.")
        return 2
    with DynamoDBLocal(jar) as ddb:
        spark = local_session("local[2]")
        table = create_table(ddb.url)
        df = spark.range(0, 5000, numPartitions=4).selectExpr(
            "concat('p#', id) AS PK", "'v1' AS SK", f"CAST('{DIGITS}' AS DECIMAL(38, 13)) AS exact"
        )
        report = ddb_loader.spark.write(df, table=table, endpoint_url=ddb.url, max_wcu=2000)
        items = stored(ddb.url, table)
        exact = all(item["exact"] == Decimal(DIGITS) for item in items.values())
        print(
            f"pyspark {pyspark.__version__}: {report.items_written:,} written, "
            f"{len(items):,} read back, decimals exact: {exact}, {report.elapsed_s:.1f} s"
        )
        try:
            df.write.format("ddb-loader").option("table", table).mode("append").save()
        except Exception as exc:  # Spark 3.5: no Python Data Sources
            print(f"the Data Source: {type(exc).__name__} (Spark 4 only)")
        spark.stop()
    return 0 if len(items) == 5000 and exact else 1


if __name__ == "__main__":
    sys.exit(main())
