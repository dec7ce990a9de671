"""Side-by-side benchmark: Stratum's `stratum train` against scikit-learn on the same data files, the same
candidates and the same evaluation (5-fold stratified cross-validation plus a refit on all rows, accuracy), both
using the same number of cores and both timed from the data file to the refitted model (scikit-learn reads it with
pandas; `stratum train` is timed whole: reading, checking, training, profiling, saving the artifact). Prints a markdown table of wall-time ratios (Stratum / scikit-learn) and score
differences, for docs/benchmarks.md.

Both evaluate on the very same folds: scikit-learn is given the folds Stratum draws for the seed (the same
random numbers and the same dealing, reproduced here in `stratum_folds`). The models still draw their own
randomness (tree feature orders, forests' samples), which on a few hundred rows moves accuracy by a point, so small
sets are cross-validated `--repeats` times with a different seed each (Stratum's `seed`, scikit-learn's
`random_state` and the folds), and the table shows the mean over the repeats and the time of one run.

Usage (from the repository root, with scikit-learn installed):
    cargo build --release -p stratum
    python3 bench/ml_vs_sklearn.py [--rows 100000] [--only random_forest,...]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from sklearn import datasets, ensemble, linear_model, naive_bayes, neighbors, svm, tree
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

CORES = os.cpu_count() or 1

# Each algorithm: (Stratum candidate block, scikit-learn estimator). Settings match: same hyperparameters, and
# standardisation for the scale-sensitive ones.
ALGORITHMS = {
    "logistic_regression": ("logistic_regression { c = 1  max_iter = 200 }",
                            lambda: make_pipeline(StandardScaler(), linear_model.LogisticRegression(C=1.0, max_iter=200))),
    "decision_tree": ("decision_tree { max_depth = 10 }", lambda: tree.DecisionTreeClassifier(max_depth=10, random_state=0)),
    "random_forest": ("random_forest { trees = 100 }",
                      lambda: ensemble.RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)),
    "gradient_boosting": ("gradient_boosting { rounds = 100  learning_rate = 0.1  max_depth = 3 }",
                          lambda: ensemble.HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_depth=3,
                                                                          early_stopping=False, random_state=0)),
    "knn": ("knn { k = 5 }", lambda: make_pipeline(StandardScaler(), neighbors.KNeighborsClassifier(n_neighbors=5, n_jobs=1))),
    "naive_bayes": ("naive_bayes { variant = gaussian }", lambda: naive_bayes.GaussianNB()),
    "svm": ("svm { c = 1 }", lambda: make_pipeline(StandardScaler(), svm.LinearSVC(C=1.0, dual=True, max_iter=2000))),
}
SCALED = {"logistic_regression", "knn", "svm"}


def write_csv(path, x, y):
    header = ",".join(f"f{i}" for i in range(x.shape[1])) + ",label"
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header=header, comments="", fmt="%.6g")


def stratum_file(folder, name, features, algorithm, seed):
    candidate, _ = ALGORITHMS[algorithm]
    prepare = "  prepare = [standardize]\n" if algorithm in SCALED else ""
    fields = "  ".join(f"f{i}: float" for i in range(features))
    names = ", ".join(f"f{i}" for i in range(features))
    text = (f"app bench\nschema Row {{ {fields}  label: int }}\n"
            f"dataset rows {{ schema = Row  path = \"{name}.csv\" }}\n"
            f"model m: classifier {{\n  data = rows\n  target = label\n  features = [{names}]\n{prepare}"
            f"  candidates {{ {candidate} }}\n  evaluate = kfold(5, stratified) by accuracy\n  parallel = {CORES}\n  seed = {seed}\n}}\n")
    path = os.path.join(folder, f"{name}-{algorithm}-{seed}.stratum")
    with open(path, "w") as output:
        output.write(text)
    return path


def run_stratum(binary, path, store):
    started = time.perf_counter()
    result = subprocess.run([binary, "train", path, "--store", store, "--format", "json"], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    report = json.loads(result.stdout)
    return elapsed, report["models"][0]["leaderboard"]["entries"][0]["mean"]


MASK = (1 << 64) - 1


class SplitMix64:
    """Stratum's random numbers (crates/ml/src/matrix.rs, `Random`), to draw the same folds."""

    def __init__(self, seed):
        self.state = seed ^ 0x9E3779B97F4A7C15

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def shuffle(self, items):
        for index in range(len(items) - 1, 0, -1):
            other = self.next() % (index + 1)
            items[index], items[other] = items[other], items[index]


def stratum_folds(y, folds, seed):
    """The folds `kfold(5, stratified)` draws with this seed (crates/ml/src/evaluate.rs, `splits`): each class's
    rows (classes in the sorted order of their labels as text) shuffled and dealt round-robin over the folds."""
    labels = [str(label) for label in y]
    random = SplitMix64(seed)
    fold_of = np.zeros(len(labels), dtype=int)
    dealt = 0
    for name in sorted(set(labels)):
        members = [row for row, label in enumerate(labels) if label == name]
        random.shuffle(members)
        for row in members:
            fold_of[row] = dealt % folds
            dealt += 1
    return [(np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)) for fold in range(folds)]


def run_sklearn(algorithm, data, seed):
    _, estimator = ALGORITHMS[algorithm]
    # The very folds Stratum evaluates on (drawn before the clock starts: scikit-learn would draw its own in
    # microseconds; this is plain Python).
    folds = stratum_folds(pd.read_csv(data).iloc[:, -1].to_numpy(), 5, seed)
    started = time.perf_counter()
    # From the same file, as `stratum train` starts: pandas' C parser, as a scikit-learn user reads a CSV.
    frame = pd.read_csv(data)
    x, y = frame.iloc[:, :-1].to_numpy(), frame.iloc[:, -1].to_numpy()
    model = estimator()
    if "random_state" in model.get_params():
        model.set_params(random_state=seed)
    scores = cross_val_score(model, x, y, cv=folds, scoring="accuracy", n_jobs=CORES)
    model.fit(x, y)  # the refit on all rows, as `stratum train` does
    return time.perf_counter() - started, float(np.mean(scores))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--only", default="")
    parser.add_argument("--binary", default="target/release/stratum")
    parser.add_argument("--repeats", type=int, default=10, help="cross-validations per small set (under 5,000 rows)")
    arguments = parser.parse_args()
    chosen = [name for name in ALGORITHMS if not arguments.only or name in arguments.only.split(",")]
    sets = {
        "breast_cancer": datasets.load_breast_cancer(return_X_y=True),
        "wine": datasets.load_wine(return_X_y=True),
        f"generated_{arguments.rows}x20": datasets.make_classification(
            n_samples=arguments.rows, n_features=20, n_informative=10, n_redundant=5, random_state=42),
    }
    print(f"| data set | algorithm | Stratum s | scikit-learn s | ratio | Stratum accuracy | scikit-learn accuracy | difference (points) |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name, (x, y) in sets.items():
            data = os.path.join(folder, f"{name}.csv")
            write_csv(data, x, y)
            repeats = arguments.repeats if len(y) < 5000 else 1
            for algorithm in chosen:
                runs = []
                try:
                    for seed in range(repeats):
                        path = stratum_file(folder, name, x.shape[1], algorithm, seed)
                        ours, our_score = run_stratum(arguments.binary, path, os.path.join(folder, "store"))
                        theirs, their_score = run_sklearn(algorithm, data, seed)
                        runs.append((ours, our_score, theirs, their_score))
                except RuntimeError as error:
                    print(f"| {name} | {algorithm} | failed: {error.splitlines()[-1]} | | | | | |")
                    continue
                ours, our_score, theirs, their_score = (float(np.mean(column)) for column in zip(*runs))
                print(f"| {name} | {algorithm} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f} | {our_score:.4f} | "
                      f"{their_score:.4f} | {100 * (our_score - their_score):+.2f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
