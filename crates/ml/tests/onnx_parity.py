"""Checks ONNX models exported by Stratum in onnxruntime: each case's expected labels must match exactly and its
probabilities or values within 1e-5. Usage: onnx_parity.py FOLDER CASE... (run by tests/onnx.rs)."""

import json
import sys

import numpy as np
import onnxruntime


def check(folder, name):
    session = onnxruntime.InferenceSession(f"{folder}/{name}.onnx", providers=["CPUExecutionProvider"])
    with open(f"{folder}/{name}.json") as handle:
        case = json.load(handle)
    inputs = np.array(case["inputs"], dtype=np.float32)
    outputs = {output.name: value for output, value in zip(session.get_outputs(), session.run(None, {session.get_inputs()[0].name: inputs}))}
    expected = case["expected"]
    problems = []
    if "labels" in expected:
        labels = [str(label) for label in outputs["label"].tolist()]
        wrong = sum(1 for ours, theirs in zip(expected["labels"], labels) if ours != theirs)
        if wrong:
            problems.append(f"{wrong} of {len(labels)} labels differ")
        difference = float(np.max(np.abs(np.array(expected["probabilities"]) - outputs["probabilities"])))
        if difference > 1e-5:
            problems.append(f"probabilities differ by up to {difference:.2e}")
    else:
        difference = float(np.max(np.abs(np.array(expected["values"]) - outputs["variable"].reshape(-1))))
        if difference > 1e-5 * max(1.0, float(np.max(np.abs(expected["values"])))):
            problems.append(f"values differ by up to {difference:.2e}")
    return problems


def main():
    folder, names = sys.argv[1], sys.argv[2:]
    failed = False
    for name in names:
        problems = check(folder, name)
        print(f"{name}: {'ok' if not problems else '; '.join(problems)}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
