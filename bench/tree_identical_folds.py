"""Stratum's decision tree against scikit-learn's on identical folds: each of scikit-learn's stratified folds of
the wine set (seeds 0-3) is written as a file whose last rows are the fold, and `stratum train` evaluates it with
`evaluate = time_split` (the last rows held out); scikit-learn's tree is scored on the same fold, averaged over
20 of its own tree seeds (its tie-breaking). Prints both means and the per-fold differences.

Usage (from the repository root, with scikit-learn installed):
    cargo build --release -p stratum
    python3 bench/tree_identical_folds.py [--binary target/release/stratum]
"""

import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
from sklearn import datasets, tree
from sklearn.model_selection import StratifiedKFold


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/stratum")
    binary = os.path.abspath(parser.parse_args().binary)
    x, y = datasets.load_wine(return_X_y=True)
    # The values Stratum reads from a file with six significant digits.
    x = np.array([[float(f"{value:.6g}") for value in row] for row in x])
    names = [f"f{index}" for index in range(x.shape[1])]
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(4):
            for train, test in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y):
                with open(os.path.join(folder, "fold.csv"), "w") as output:
                    output.write(",".join(names) + ",label\n")
                    for row in np.concatenate([train, test]):
                        output.write(",".join(repr(float(value)) for value in x[row]) + f",{y[row]}\n")
                fraction = len(test) / (len(train) + len(test))
                app = ("app folds\nschema Row { " + "  ".join(f"{name}: float" for name in names) + "  label: int }\n"
                       "dataset rows { schema = Row  path = \"fold.csv\" }\n"
                       "model m: classifier {\n  data = rows\n  target = label\n  features = [" + ", ".join(names) + "]\n"
                       "  candidates { decision_tree { max_depth = 10 } }\n"
                       f"  evaluate = time_split({fraction!r}) by accuracy\n  seed = {seed}\n}}\n")
                path = os.path.join(folder, "fold.stratum")
                with open(path, "w") as output:
                    output.write(app)
                result = subprocess.run([binary, "train", path, "--store", os.path.join(folder, "store"),
                                         "--format", "json"], capture_output=True, text=True, check=True)
                ours.append(json.loads(result.stdout)["models"][0]["leaderboard"]["entries"][0]["mean"])
                theirs.append(np.mean([tree.DecisionTreeClassifier(max_depth=10, random_state=tree_seed)
                                       .fit(x[train], y[train]).score(x[test], y[test]) for tree_seed in range(20)]))
    print(f"Stratum {np.mean(ours):.4f}, scikit-learn {np.mean(theirs):.4f} "
          f"({100 * (np.mean(ours) - np.mean(theirs)):+.2f} points)")
    print("per fold:", np.round(np.array(ours) - np.array(theirs), 3).tolist())


if __name__ == "__main__":
    main()
