#!/usr/bin/env python3
"""Memory of reading a large Parquet file, Stratum's file source against DuckDB in one run (issue 19: memory
independent of file size). DuckDB writes a Parquet file of about the size asked (1 GB by default: detections with
a camera, a time, a class, a speed and a plate); `stratum run-pipeline` reads it through a `file` source into a
stream whose filter passes nothing (so the sink writes nothing and the reading is what is measured), and DuckDB
runs the same filter as a query over every column (so that it reads them all, as the file source does). Each runs in its own process under /usr/bin/time: the peak resident memory and
the time are reported, with the ratios, and the rows Stratum took in are checked against DuckDB's count.

Usage: bench/parquet_memory.py [MEGABYTES]   (needs `pip install duckdb`, /usr/bin/time and a release build:
cargo build --release -p stratum)
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import duckdb

MEGABYTES = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
STRATUM = os.path.join(TARGET, "release", "stratum")
# About 16 bytes a row once compressed (measured on this generator: 128 MB for 8 million rows).
ROWS_PER_MEGABYTE = 62_500

APP = '''app parquet_bench
schema Detection { camera: string  ts: timestamp  class: string  speed_kmh: float  plate: string }
source history: file { path = "detections.parquet"  format = parquet  schema = Detection }
stream impossible { from = history  where = speed_kmh < -1000 }
sink none: jsonl { from = impossible  path = "none.jsonl" }
'''

# DuckDB reads every column too: a filter on one column alone it answers from the row groups' statistics without
# reading them (0.2 s for 1 GB), which is not the work compared.
DUCKDB = '''
import duckdb, sys
print(duckdb.sql("""SELECT count(*) FROM read_parquet('{data}')
                    WHERE speed_kmh + length(camera) + length(class) + length(plate) + epoch(ts) < -1000""").fetchall()[0][0],
      duckdb.sql("SELECT count(*) FROM read_parquet('{data}')").fetchall()[0][0])
'''


def timed(command, cwd):
    """Runs a command under /usr/bin/time -v: its output, its peak resident memory (MiB) and its wall time."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command], cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{command[0]} failed:\n{done.stderr[-3000:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
    return done.stdout, peak, elapsed


def main():
    if not os.path.exists(STRATUM):
        sys.exit(f"build Stratum first: cargo build --release -p stratum (looked for {STRATUM})")
    with tempfile.TemporaryDirectory(dir="/var/tmp") as folder:
        data = os.path.join(folder, "detections.parquet")
        rows = MEGABYTES * ROWS_PER_MEGABYTE
        started = time.perf_counter()
        duckdb.sql(f"""
            COPY (SELECT 'camera-' || (i % 2000) AS camera,
                         TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_milliseconds(i * 10) AS ts,
                         ['car', 'truck', 'bus', 'bike'][1 + i % 4] AS class,
                         (hash(i) % 1300) / 10.0 - 10.0 AS speed_kmh,
                         md5(i::VARCHAR)[1:8] AS plate
                  FROM range({rows}) t(i)) TO '{data}' (FORMAT parquet)
        """)
        size = os.path.getsize(data)
        print(f"generated {rows:,} rows ({size / 1e6:.0f} MB of Parquet) in {time.perf_counter() - started:.1f} s")
        with open(os.path.join(folder, "bench.stratum"), "w") as file:
            file.write(APP)

        output, ours_peak, ours_time = timed(
            [STRATUM, "run-pipeline", "bench.stratum", "--format", "json", "--data-dir", "run"], folder)
        components = {component["component"]: component for component in json.loads(output)["components"]}
        taken = components["history"]["events_in"]
        output, theirs_peak, theirs_time = timed([sys.executable, "-c", DUCKDB.format(data=data)], folder)
        passed, counted = (int(value) for value in output.split())
        if taken != counted or passed != 0:
            sys.exit(f"different counts: Stratum took in {taken} rows, DuckDB counts {counted} ({passed} passed)")
        print(f"{counted:,} rows read by both")
        print(f"  stratum run-pipeline: peak {ours_peak:.0f} MiB, {ours_time:.1f} s ({counted / ours_time / 1e6:.2f} M rows/s)")
        print(f"  duckdb {duckdb.__version__} (python):  peak {theirs_peak:.0f} MiB, {theirs_time:.1f} s")
        print(f"  ratio Stratum / DuckDB: memory {ours_peak / theirs_peak:.2f}, time {ours_time / theirs_time:.2f}")
        print(f"  Stratum's peak is {ours_peak / (size / 2**20) * 100:.1f}% of the file's size")


if __name__ == "__main__":
    main()
