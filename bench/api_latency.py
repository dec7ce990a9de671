#!/usr/bin/env python3
"""How fast the web interface's API answers on the traffic example under `stratum up`.

Starts the release binary on a copy of examples/traffic, waits until the application runs, then times each route
the interface polls (sequential requests over one keep-alive connection) and the editor's check of the whole
traffic file, and prints p50 / p99 per route plus the interface's page weight. Build first:

    cargo build --release -p stratum && python3 bench/api_latency.py
"""

import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "stratum")
TOKEN = "bench-token"
ROUNDS = 200


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(connection, method, path, body=None):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    return response.status, data


def timed(connection, method, path, body=None, rounds=ROUNDS):
    times = []
    size = 0
    for _ in range(rounds):
        started = time.perf_counter()
        status, data = request(connection, method, path, body)
        times.append((time.perf_counter() - started) * 1e3)
        if status != 200:
            sys.exit(f"{method} {path} answered {status}: {data[:200]!r}")
        size = len(data)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1], size


def main():
    if not os.path.exists(BINARY):
        sys.exit(f"build first: cargo build --release -p stratum (no {BINARY})")
    folder = tempfile.mkdtemp(prefix="stratum-api-bench-")
    for name in ("traffic.stratum", "shared.stratum"):
        shutil.copy(os.path.join(ROOT, "examples", "traffic", name), folder)
    port = free_port()
    up = subprocess.Popen(
        [BINARY, "up", "traffic.stratum", "--speed", "60", "--api", f"127.0.0.1:{port}", "--token", TOKEN],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        deadline = time.time() + 300
        while True:
            try:
                status, data = request(connection, "GET", "/v1/app")
                if status == 200 and json.loads(data)["phase"] == "running":
                    break
            except (ConnectionError, OSError):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            if time.time() > deadline:
                sys.exit("the application did not start")
            time.sleep(0.5)
        time.sleep(5)  # a few samples of every series
        print(f"stratum up traffic.stratum, {ROUNDS} sequential requests per route (keep-alive)")
        print(f"{'route':<28} {'p50 ms':>8} {'p99 ms':>8} {'bytes':>9}")
        for path in ("/v1/app", "/v1/topology", "/v1/services", "/v1/components", "/v1/models",
                     "/v1/dashboards", "/v1/series", "/v1/events"):
            p50, p99, size = timed(connection, "GET", path)
            print(f"GET {path:<24} {p50:>8.3f} {p99:>8.3f} {size:>9}")
        with open(os.path.join(folder, "traffic.stratum")) as source:
            body = json.dumps({"source": source.read()})
        p50, p99, size = timed(connection, "POST", "/v1/check", body, rounds=50)
        print(f"{'POST /v1/check (traffic)':<28} {p50:>8.3f} {p99:>8.3f} {size:>9}")
        weight = 0
        for path in ("/", "/ui/app.js", "/ui/app.css", "/ui/stratum-mode.js",
                     "/ui/vendor/codemirror-5.65.21/codemirror.js", "/ui/vendor/codemirror-5.65.21/codemirror.css",
                     "/ui/vendor/codemirror-5.65.21/simple.js", "/ui/vendor/codemirror-5.65.21/lint.js",
                     "/ui/vendor/codemirror-5.65.21/lint.css", "/ui/vendor/uplot-1.6.32/uPlot.iife.min.js",
                     "/ui/vendor/uplot-1.6.32/uPlot.min.css"):
            status, data = request(connection, "GET", path)
            if status != 200:
                sys.exit(f"GET {path} answered {status}")
            weight += len(data)
        print(f"page weight (every file the interface loads, uncompressed): {weight / 1024:.0f} KiB")
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
