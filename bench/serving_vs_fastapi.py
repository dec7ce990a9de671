"""Inference over HTTP on loopback: Stratum's serving (`stratum up`, a service with an HTTP input) against the
Python stack a user would otherwise pick — FastAPI on uvicorn with onnxruntime — serving the same model (Stratum
trains it; `stratum model export` gives the ONNX file onnxruntime loads), driven by the same load generator
(crates/control/src/bin/load_generator.rs) in one run. Also the floor, Stratum's in-process prediction time of the
model (its profile), the loopback round trip itself (the load generator's `--answer-fixed` server, which answers
every request with the same bytes and does nothing else), and the cold start from zero replicas to the first answer
for a cached ~10 MB model.

Prints a markdown table for docs/benchmarks.md.

Usage (from the repository root, with onnxruntime, fastapi and uvicorn installed):
    cargo build --release -p stratum -p stratum-control --bins
    python3 bench/serving_vs_fastapi.py [--seconds 10] [--connections 32]
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

STRATUM = os.path.abspath(os.environ.get("STRATUM", "target/release/stratum"))
LOAD = os.path.abspath(os.environ.get("LOAD_GENERATOR", "target/release/load_generator"))

APP = """app serve
node laptop {{ tier = cloud  cpu = 2  memory = 8 GiB }}
schema Row {{ x: float  y: float  label: bool }}
dataset rows {{ schema = Row  path = "rows.csv" }}
model labeller: classifier {{
  data = rows
  target = label
  features = [x, y]
  candidates {{
    random_forest {{ trees = {trees}  max_depth = {depth} }}
  }}
  evaluate = holdout(0.25) by accuracy
  seed = 1
}}
service labels: inference {{
  model = labeller
  input = http {{ path = "/v1/labels" }}
  scale {{
    min = {min}
    max = 2
    concurrency = 64
    idle = 10 min
  }}
}}
"""

FASTAPI = """
import numpy as np
import onnxruntime
from fastapi import FastAPI
from pydantic import BaseModel

options = onnxruntime.SessionOptions()
options.intra_op_num_threads = 1
session = onnxruntime.InferenceSession("{model}", options, providers=["CPUExecutionProvider"])
app = FastAPI()

class Row(BaseModel):
    x: float
    y: float

@app.post("/predict")
def predict(row: Row):
    label, _ = session.run(None, {{"features": np.array([[row.x, row.y]], dtype=np.float32)}})
    return {{"prediction": bool(label[0] == "true")}}
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The operator's token of the `stratum up` the benchmark starts: the API's reads need a token.
TOKEN = "bench-token"


def authorized(url, **arguments):
    return urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"}, **arguments)


def wait_for(url, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(authorized(url), timeout=1).read()
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


def project(folder, trees, depth, rows, minimum):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "serve.stratum"), "w") as out:
        out.write(APP.format(trees=trees, depth=depth, min=minimum))
    with open(os.path.join(folder, "rows.csv"), "w") as out:
        out.write("x,y,label\n")
        state = 7
        for index in range(rows):
            state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
            noise = (state >> 33) / 2**31 - 0.5
            x, y = (index % 97) / 48.0, (index % 89) / 44.0
            out.write(f"{x},{y},{str(x + y + noise > 2.0).lower()}\n")
    store = os.path.join(folder, ".stratum", "models")
    subprocess.run([STRATUM, "train", "serve.stratum", "--store", store], cwd=folder, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return store


def load(url, body_file, connections, seconds):
    out = subprocess.run([LOAD, url, body_file, str(connections), str(seconds)], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


def start_stratum(folder, port):
    process = subprocess.Popen([STRATUM, "up", "serve.stratum", "--api", f"127.0.0.1:{port}", "--token", TOKEN],
                               cwd=folder,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(f"http://127.0.0.1:{port}/v1/status")
    return process


def stop(process):
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="stratum-serving-")
    folder = os.path.join(root, "small")
    store = project(folder, trees=20, depth=8, rows=2000, minimum=1)
    show = json.loads(subprocess.run([STRATUM, "model", "show", "labeller", "--store", store, "--format", "json"],
                                     check=True, capture_output=True, text=True).stdout)
    floor_us = show["profile"]["latency_p50_us"]
    onnx_path = os.path.join(folder, "model.onnx")
    subprocess.run([STRATUM, "model", "export", "labeller", "-o", onnx_path, "--store", store], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    body_file = os.path.join(folder, "row.json")
    with open(body_file, "w") as out:
        out.write('{"x": 1.2, "y": 0.9}')

    results = {}
    port = free_port()
    stratum = start_stratum(folder, port)
    url = f"http://127.0.0.1:{port}/v1/services/labels/predict"
    try:
        results["stratum"] = (load(url, body_file, 1, args.seconds), load(url, body_file, args.connections, args.seconds))
    finally:
        stop(stratum)

    port = free_port()
    yardstick = subprocess.Popen([LOAD, "--answer-fixed", str(port)])
    try:
        time.sleep(0.3)
        round_trip = load(f"http://127.0.0.1:{port}/", body_file, 1, args.seconds)
    finally:
        yardstick.kill()
        yardstick.wait()

    with open(os.path.join(folder, "server.py"), "w") as out:
        out.write(FASTAPI.format(model=onnx_path))
    port = free_port()
    python = os.path.dirname(sys.executable)
    uvicorn = subprocess.Popen([os.path.join(python, "uvicorn"), "server:app", "--port", str(port), "--workers", "2",
                                "--log-level", "warning"], cwd=folder, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/predict"
    try:
        wait_for_post(url, body_file)
        results["fastapi"] = (load(url, body_file, 1, args.seconds), load(url, body_file, args.connections, args.seconds))
    finally:
        uvicorn.terminate()
        uvicorn.wait()

    # Cold start: a service at zero replicas, a ~10 MB model already in the store (and the page cache).
    big = os.path.join(root, "big")
    big_store = project(big, trees=25, depth=24, rows=20000, minimum=0)
    size = os.path.getsize(os.path.join(big_store, "labeller", "v1.json"))
    port = free_port()
    stratum = start_stratum(big, port)
    try:
        started = time.perf_counter()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/services/labels/predict",
                                         data=b'{"x": 1.2, "y": 0.9}', method="POST")
        urllib.request.urlopen(request, timeout=30).read()
        first_answer_ms = (time.perf_counter() - started) * 1000
        metrics = urllib.request.urlopen(authorized(f"http://127.0.0.1:{port}/metrics")).read().decode()
        load_seconds = next(float(line.split()[-1]) for line in metrics.splitlines()
                            if line.startswith("stratum_service_last_cold_start_seconds{"))
    finally:
        stop(stratum)

    (s_one, s_many), (f_one, f_many) = results["stratum"], results["fastapi"]
    print("| | Stratum | FastAPI + onnxruntime | ratio |")
    print("|---|---|---|---|")
    print(f"| p50, 1 connection | {s_one['p50_us']:.0f} µs | {f_one['p50_us']:.0f} µs | {f_one['p50_us'] / s_one['p50_us']:.1f}× |")
    print(f"| p99, 1 connection | {s_one['p99_us']:.0f} µs | {f_one['p99_us']:.0f} µs | {f_one['p99_us'] / s_one['p99_us']:.1f}× |")
    print(f"| requests/s, {args.connections} connections | {s_many['requests_per_second']:.0f} | "
          f"{f_many['requests_per_second']:.0f} | {s_many['requests_per_second'] / f_many['requests_per_second']:.1f}× |")
    print(f"| p99, {args.connections} connections | {s_many['p99_us']:.0f} µs | {f_many['p99_us']:.0f} µs | |")
    print(f"| errors | {s_one['errors'] + s_many['errors']} | {f_one['errors'] + f_many['errors']} | |")
    print()
    print(f"In-process prediction (the floor, Stratum's profile): {floor_us} µs p50 per record; "
          f"HTTP overhead at p50: {s_one['p50_us'] - floor_us:.0f} µs.")
    print(f"Loopback round trip (a server answering fixed bytes): {round_trip['p50_us']:.0f} µs p50, "
          f"{round_trip['p99_us']:.0f} µs p99; Stratum's HTTP path adds {s_one['p50_us'] - round_trip['p50_us']:.0f} µs "
          f"at p50 above it.")
    print(f"Cold start, zero replicas to first answer, {size / 1e6:.1f} MB model: {first_answer_ms:.1f} ms at the "
          f"client, {load_seconds * 1000:.1f} ms loading the model.")


def wait_for_post(url, body_file, seconds=60):
    deadline = time.time() + seconds
    body = open(body_file, "rb").read()
    while time.time() < deadline:
        try:
            urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST",
                                                          headers={"content-type": "application/json"}),
                                   timeout=1).read()
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


if __name__ == "__main__":
    main()
