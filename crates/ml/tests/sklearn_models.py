"""Trains scikit-learn models, converts them to ONNX with skl2onnx, and writes for each: the .onnx file, and a
.json with the input rows and scikit-learn's own labels and probabilities (or values). Prints the case names.
Usage: sklearn_models.py FOLDER (run by tests/onnx.rs)."""

import json
import sys

import numpy as np
from skl2onnx import to_onnx
from sklearn import datasets, ensemble, linear_model, neural_network, svm, tree
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

folder = sys.argv[1]
iris_x, iris_y = datasets.load_iris(return_X_y=True)
cancer_x, cancer_y = datasets.load_breast_cancer(return_X_y=True)
diabetes_x, diabetes_y = datasets.load_diabetes(return_X_y=True)
# Rounded inputs, so that float32 (ONNX) and float64 (scikit-learn) compare them to thresholds alike.
iris_x, cancer_x, diabetes_x = (np.round(x, 3).astype(np.float32) for x in (iris_x, cancer_x, diabetes_x))

classifiers = {
    "sk_logistic_binary": (make_pipeline(StandardScaler(), linear_model.LogisticRegression(max_iter=500)), cancer_x, cancer_y),
    "sk_logistic_multiclass": (linear_model.LogisticRegression(max_iter=1000), iris_x, iris_y),
    "sk_decision_tree": (tree.DecisionTreeClassifier(max_depth=4, random_state=0), iris_x, iris_y),
    "sk_random_forest_binary": (ensemble.RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0), cancer_x, cancer_y),
    "sk_random_forest_multiclass": (ensemble.RandomForestClassifier(n_estimators=20, random_state=0), iris_x, iris_y),
    "sk_gradient_boosting_binary": (ensemble.GradientBoostingClassifier(n_estimators=30, random_state=0), cancer_x, cancer_y),
    "sk_gradient_boosting_multiclass": (ensemble.GradientBoostingClassifier(n_estimators=20, random_state=0), iris_x, iris_y),
    "sk_linear_svm": (svm.LinearSVC(max_iter=20000), iris_x, iris_y),
    "sk_mlp": (make_pipeline(StandardScaler(), neural_network.MLPClassifier(hidden_layer_sizes=(16,), max_iter=500, random_state=0)), iris_x, iris_y),
}
regressors = {
    "sk_gradient_boosting_regressor": (ensemble.GradientBoostingRegressor(n_estimators=30, random_state=0), diabetes_x, diabetes_y),
    "sk_random_forest_regressor": (ensemble.RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0), diabetes_x, diabetes_y),
    "sk_ridge": (linear_model.Ridge(alpha=1.0), diabetes_x, diabetes_y),
}

for name, (model, x, y) in classifiers.items():
    model.fit(x, y)
    try:
        onnx = to_onnx(model, x[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    except NameError:
        # Models without probabilities (LinearSVC) take no zipmap option.
        onnx = to_onnx(model, x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    with open(f"{folder}/{name}.onnx", "wb") as output:
        output.write(onnx.SerializeToString())
    if hasattr(model, "predict_proba"):
        probabilities = model.predict_proba(x)
    else:
        # LinearSVC has no probabilities; its ONNX export carries decision scores.
        probabilities = model.decision_function(x)
    case = {"inputs": x.astype(float).tolist(),
            "expected": {"labels": [str(label) for label in model.predict(x)], "probabilities": np.atleast_2d(probabilities).tolist()}}
    with open(f"{folder}/{name}.json", "w") as output:
        json.dump(case, output)
    print(name)

for name, (model, x, y) in regressors.items():
    model.fit(x, y)
    onnx = to_onnx(model, x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    with open(f"{folder}/{name}.onnx", "wb") as output:
        output.write(onnx.SerializeToString())
    case = {"inputs": x.astype(float).tolist(), "expected": {"values": model.predict(x).astype(float).tolist()}}
    with open(f"{folder}/{name}.json", "w") as output:
        json.dump(case, output)
    print(name)
