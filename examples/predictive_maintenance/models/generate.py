"""Generates vibration_autoencoder.onnx for the predictive-maintenance example: a linear autoencoder (principal
components) fitted on the healthy machines of ../data/labelled_history.csv. It standardizes the four vibration
features, encodes them into two components, decodes them back, and scores a record by its squared reconstruction
error: a machine that vibrates unlike the healthy ones reconstructs badly and scores high. Only standard ONNX
operators (Scaler, Gemm, Sub, Mul, MatMul), so any ONNX runtime serves it, Stratum's own included.
Deterministic: the same file every run. Run from this folder: python3 generate.py (needs numpy and onnx)."""

import csv

import numpy as np
import onnx
from onnx import TensorProto, helper

FEATURES = ["rms_mean", "rms_max", "peak_p99", "temperature_max"]

with open("../data/labelled_history.csv") as source:
    rows = [row for row in csv.DictReader(source) if row["failed_within_7d"] == "false"]
healthy = np.array(
    [[float(row[name]) for name in FEATURES] for row in rows if all(row[name] for name in FEATURES)],
    dtype=np.float64,
)
mean, scale = healthy.mean(axis=0), healthy.std(axis=0)
standardized = (healthy - mean) / scale
# The two directions the healthy machines vary along most; the sign of each is fixed so the file is the same on
# every machine.
_, _, directions = np.linalg.svd(standardized, full_matrices=False)
encoder = directions[:2].T
encoder *= np.sign(encoder[np.abs(encoder).argmax(axis=0), range(2)])

f32 = lambda values: np.asarray(values, dtype=np.float32)
initializers = [
    helper.make_tensor("encoder", TensorProto.FLOAT, [4, 2], f32(encoder).flatten()),
    helper.make_tensor("decoder", TensorProto.FLOAT, [2, 4], f32(encoder.T).flatten()),
    helper.make_tensor("ones", TensorProto.FLOAT, [4, 1], f32(np.ones(4))),
]
nodes = [
    helper.make_node("Scaler", ["features"], ["standardized"], domain="ai.onnx.ml", offset=f32(mean).tolist(),
                     scale=f32(1 / scale).tolist()),
    helper.make_node("Gemm", ["standardized", "encoder"], ["code"]),
    helper.make_node("Gemm", ["code", "decoder"], ["reconstructed"]),
    helper.make_node("Sub", ["standardized", "reconstructed"], ["error"]),
    helper.make_node("Mul", ["error", "error"], ["squared"]),
    helper.make_node("MatMul", ["squared", "ones"], ["anomaly"]),
]
graph = helper.make_graph(
    nodes,
    "vibration_autoencoder",
    [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 4])],
    [helper.make_tensor_value_info("anomaly", TensorProto.FLOAT, [None, 1])],
    initializers,
)
model = helper.make_model(
    graph,
    opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)],
    producer_name="stratum-example",
)
model.ir_version = 8
onnx.helper.set_model_props(model, {"stratum.inputs": ",".join(FEATURES)})
onnx.checker.check_model(model, full_check=True)
onnx.save(model, "vibration_autoencoder.onnx")
print(f"vibration_autoencoder.onnx: {len(healthy)} healthy rows, components explain "
      f"{(np.linalg.svd(standardized, compute_uv=False)[:2] ** 2).sum() / (standardized ** 2).sum():.0%}")
