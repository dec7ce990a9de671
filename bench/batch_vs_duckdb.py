#!/usr/bin/env python3
"""Batch SQL, Stratum (DataFusion) against DuckDB in one run: one hourly aggregation over 10 million rows of
Parquet, the shape of the traffic example's `hourly` batch. Both read the same file and write their result as
Parquet; the best of three runs each is reported, with the ratio Stratum / DuckDB (below 1 means Stratum is faster).

Usage: bench/batch_vs_duckdb.py [ROWS]   (needs `pip install duckdb` and a release build: cargo build --release -p stratum)
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import duckdb

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
STRATUM = os.path.join(TARGET, "release", "stratum")

QUERY = """
    SELECT camera, date_trunc('hour', ts) AS hour, count(*) AS vehicles, avg(speed_kmh) AS avg_speed,
           max(speed_kmh) AS fastest
    FROM detections
    WHERE speed_kmh >= 0
    GROUP BY camera, date_trunc('hour', ts)
"""

APP = f'''app batch_bench
schema Detection {{ camera: string  ts: timestamp  class: string  speed_kmh: float }}
schema Hourly {{ camera: string  hour: timestamp  vehicles: int  avg_speed: float  fastest: float }}
dataset detections {{ schema = Detection  path = "detections.parquet" }}
dataset hourly_counts {{ schema = Hourly  path = "hourly.parquet" }}
batch hourly: sql {{
  every = 1 h
  into = hourly_counts
  query = """{QUERY}"""
}}
'''


def best(runs):
    return min(runs)


def main():
    if not os.path.exists(STRATUM):
        sys.exit(f"build Stratum first: cargo build --release -p stratum (looked for {STRATUM})")
    with tempfile.TemporaryDirectory(dir="/var/tmp") as folder:
        data = os.path.join(folder, "detections.parquet")
        started = time.perf_counter()
        duckdb.sql(f"""
            COPY (SELECT 'camera-' || (i % 200) AS camera,
                         TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_milliseconds(i * 50) AS ts,
                         ['car', 'truck', 'bus', 'bike'][1 + i % 4] AS class,
                         (hash(i) % 1300) / 10.0 - 10.0 AS speed_kmh
                  FROM range({ROWS}) t(i)) TO '{data}' (FORMAT parquet)
        """)
        print(f"generated {ROWS:,} rows ({os.path.getsize(data) / 1e6:.0f} MB of Parquet) in {time.perf_counter() - started:.1f} s")
        app = os.path.join(folder, "bench.stratum")
        with open(app, "w") as file:
            file.write(APP)

        stratum_runs = []
        for _ in range(3):
            started = time.perf_counter()
            output = subprocess.run([STRATUM, "run-batch", app, "hourly", "--format", "json"], capture_output=True, text=True)
            elapsed = time.perf_counter() - started
            if output.returncode != 0:
                sys.exit(output.stderr)
            stratum_rows = json.loads(output.stdout)["rows"]
            stratum_runs.append(elapsed)

        duckdb_runs = []
        result = os.path.join(folder, "duckdb_hourly.parquet")
        for _ in range(3):
            started = time.perf_counter()
            connection = duckdb.connect()
            connection.sql(f"CREATE VIEW detections AS SELECT * FROM read_parquet('{data}')")
            connection.sql(f"COPY ({QUERY}) TO '{result}' (FORMAT parquet)")
            duckdb_rows = connection.execute(f"SELECT count(*) FROM read_parquet('{result}')").fetchall()[0][0]
            connection.close()
            duckdb_runs.append(time.perf_counter() - started)

        if stratum_rows != duckdb_rows:
            sys.exit(f"different results: Stratum {stratum_rows} rows, DuckDB {duckdb_rows}")
        ours, theirs = best(stratum_runs), best(duckdb_runs)
        print(f"hourly aggregation, {ROWS:,} rows -> {stratum_rows} groups")
        print(f"  stratum run-batch (whole command): {ours:.3f} s   duckdb {duckdb.__version__}: {theirs:.3f} s   ratio {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
