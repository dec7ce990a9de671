"""Single-row prediction latency of ONNX models: Stratum's pure-Rust executor against onnxruntime in-process, on
the same .onnx files (a random forest and an MLP converted from scikit-learn with skl2onnx). onnxruntime is timed
calling `InferenceSession.run` on one row; Stratum is timed by `stratum model import`, whose profile measures one
record at a time through the same entry point the data plane and the serving runtime use. An imported model comes
without data, so Stratum profiles it on records of zeros; onnxruntime is given the same zero row here. Prints a markdown table
for docs/benchmarks.md.

Usage (from the repository root, with onnxruntime, scikit-learn and skl2onnx installed):
    cargo build --release -p stratum
    python3 bench/onnx_latency.py
"""

import json
import os
import subprocess
import tempfile
import time

import numpy as np
import onnx
import onnxruntime
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.neural_network import MLPClassifier
from skl2onnx import to_onnx

STRATUM = os.environ.get("STRATUM", "target/release/stratum")
FEATURES = 20


def onnxruntime_latency(path, rows):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for row in rows[:100]:
        session.run(None, {name: row[None, :]})
    latencies = []
    for row in rows:
        started = time.perf_counter()
        session.run(None, {name: row[None, :]})
        latencies.append((time.perf_counter() - started) * 1e6)
    return np.percentile(latencies, 50), np.percentile(latencies, 99)


def stratum_latency(path, folder):
    output = subprocess.run(
        [STRATUM, "model", "import", path, "--name", "bench", "--store", os.path.join(folder, "store"),
         "--format", "json"],
        check=True, capture_output=True, text=True).stdout
    profile = json.loads(output)["profile"]
    return profile["latency_p50_us"], profile["latency_p99_us"]


def main():
    x, y = make_classification(n_samples=20_000, n_features=FEATURES, n_informative=10, random_state=0)
    x = x.astype(np.float32)
    models = {
        "random forest (100 trees, depth 12)": RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0),
        "MLP (64 hidden)": MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=0),
    }
    print("| model | onnxruntime p50 / p99 (µs) | Stratum p50 / p99 (µs) | ratio p50 |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for label, model in models.items():
            model.fit(x, y)
            exported = to_onnx(model, x[:1], options={id(model): {"zipmap": False}})
            onnx.helper.set_model_props(exported, {"stratum.inputs": ",".join(f"x{i}" for i in range(FEATURES))})
            path = os.path.join(folder, "model.onnx")
            with open(path, "wb") as file:
                file.write(exported.SerializeToString())
            theirs = onnxruntime_latency(path, np.zeros((1000, FEATURES), dtype=np.float32))
            ours = stratum_latency(path, folder)
            print(f"| {label} | {theirs[0]:.1f} / {theirs[1]:.1f} | {ours[0]:.1f} / {ours[1]:.1f} | "
                  f"{ours[0] / theirs[0]:.2f} |")


if __name__ == "__main__":
    main()
