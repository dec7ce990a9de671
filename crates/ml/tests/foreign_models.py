"""Writes ONNX models of the kind PyTorch and TensorFlow export — a small 1-D convolutional network, as a regressor
and as a classifier — that Stratum's own executor does not run, with onnxruntime's outputs on random rows as the
expectation: for each, NAME.onnx and NAME.json (inputs, and labels and probabilities or values). Prints the names.
Usage: foreign_models.py FOLDER (run by tests/onnx.rs)."""

import json
import sys

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

folder = sys.argv[1]
random = np.random.default_rng(7)
rows = random.normal(size=(64, 8)).astype(np.float32)


def constant(name, values):
    return numpy_helper.from_array(np.asarray(values), name)


def trunk():
    """X [N, 8] → [N, 1, 8] → Conv (4 filters of 3) → Relu → mean over positions [N, 4]."""
    initializers = [
        constant("shape", np.array([-1, 1, 8], dtype=np.int64)),
        constant("conv_w", random.normal(size=(4, 1, 3)).astype(np.float32)),
        constant("conv_b", random.normal(size=(4,)).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Reshape", ["X", "shape"], ["signal"]),
        helper.make_node("Conv", ["signal", "conv_w", "conv_b"], ["convolved"], kernel_shape=[3]),
        helper.make_node("Relu", ["convolved"], ["activated"]),
        helper.make_node("ReduceMean", ["activated"], ["pooled"], axes=[2], keepdims=0),
    ]
    return nodes, initializers


def save(name, nodes, initializers, outputs):
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 8])],
                              outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="stratum-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = f"{folder}/{name}.onnx"
    with open(path, "wb") as output:
        output.write(model.SerializeToString())
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return dict(zip([output.name for output in session.get_outputs()], session.run(None, {"X": rows})))


nodes, initializers = trunk()
initializers += [constant("head_w", random.normal(size=(4, 1)).astype(np.float32)),
                 constant("head_b", random.normal(size=(1,)).astype(np.float32))]
nodes.append(helper.make_node("Gemm", ["pooled", "head_w", "head_b"], ["variable"]))
outputs = save("conv_regressor", nodes, initializers,
               [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])])
case = {"inputs": rows.astype(float).tolist(), "expected": {"values": outputs["variable"].reshape(-1).astype(float).tolist()}}
with open(f"{folder}/conv_regressor.json", "w") as output:
    json.dump(case, output)
print("conv_regressor")

nodes, initializers = trunk()
initializers += [constant("head_w", random.normal(size=(4, 3)).astype(np.float32)),
                 constant("head_b", random.normal(size=(3,)).astype(np.float32))]
nodes += [
    helper.make_node("Gemm", ["pooled", "head_w", "head_b"], ["scores"]),
    helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1),
    helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0),
]
outputs = save("conv_classifier", nodes, initializers,
               [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])])
case = {"inputs": rows.astype(float).tolist(),
        "expected": {"labels": [str(label) for label in outputs["label"].tolist()],
                     "probabilities": outputs["probabilities"].astype(float).tolist()}}
with open(f"{folder}/conv_classifier.json", "w") as output:
    json.dump(case, output)
print("conv_classifier")
