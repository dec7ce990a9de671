//! `stratum generate notebook` against the real peers: the generated notebook runs under Jupyter (nbconvert with a
//! Python kernel, scikit-learn and skl2onnx from PyPI), and the ONNX model it exports imports into Stratum's store
//! and predicts what scikit-learn predicted. Run by the CI external stage (`cargo test -p stratum --test notebook --
//! --ignored`); without the peers these tests fail rather than skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use stratum_core::eval::Datum;
use stratum_ml::ModelStore;
use stratum_ml::StoredModel;
use stratum_ml::imported::ImportedModel;
use stratum_ml::search::Prediction;

const FACTORY: &str = "examples/predictive_maintenance/factory.stratum";
const DATA: &str = "examples/predictive_maintenance/data/labelled_history.csv";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(program: &str, arguments: &[&str], folder: &Path) -> Output {
    let output = Command::new(program)
        .args(arguments)
        .current_dir(folder)
        .output()
        .unwrap_or_else(|error| panic!("cannot run `{program}` (is it installed?): {error}"));
    assert!(
        output.status.success(),
        "`{program} {}` failed:\n{}\n{}",
        arguments.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stratum(arguments: &[&str], folder: &Path) -> Output {
    run(env!("CARGO_BIN_EXE_stratum"), arguments, folder)
}

fn scratch(name: &str) -> PathBuf {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

/// The first `count` rows of the example's data, each a reader by column name (empty cells are missing).
fn first_rows(count: usize) -> Vec<std::collections::HashMap<String, Option<f64>>> {
    let text = std::fs::read_to_string(repository().join(DATA)).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .take(count)
        .map(|line| {
            header.iter().zip(line.split(',')).map(|(name, cell)| (name.to_string(), cell.parse().ok())).collect()
        })
        .collect()
}

#[test]
fn a_generated_notebook_has_ids_the_model_block_and_an_export() {
    let folder = scratch("notebook_offline");
    let factory = repository().join(FACTORY);
    let notebook = folder.join("failure.ipynb");
    stratum(
        &["generate", "notebook", factory.to_str().unwrap(), "--model", "failure", "-o", notebook.to_str().unwrap()],
        &folder,
    );
    let document: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&notebook).unwrap()).unwrap();
    assert_eq!(document["nbformat"], 4);
    let cells = document["cells"].as_array().unwrap();
    assert!(cells.iter().all(|cell| cell["id"].is_string()));
    let source: String = cells
        .iter()
        .flat_map(|cell| cell["source"].as_array().unwrap().iter().map(|line| line.as_str().unwrap().to_string()))
        .collect();
    for expected in [
        "SimpleImputer(strategy=\"median\")",
        "StandardScaler()",
        "ensemble.RandomForestClassifier(max_depth=",
        "ensemble.HistGradientBoostingClassifier(",
        "neighbors.KNeighborsClassifier(n_neighbors=15)",
        "StratifiedKFold(n_splits=5, shuffle=True",
        "\"roc_auc\"",
        "\"stratum.inputs\"",
    ] {
        assert!(source.contains(expected), "the notebook lacks `{expected}`");
    }
    // The data is outside the notebook's folder, so it is read by absolute path.
    assert!(source.contains(&std::fs::canonicalize(repository().join(DATA)).unwrap().display().to_string()));
}

#[test]
fn models_a_notebook_cannot_reproduce_are_refused_clearly() {
    let folder = scratch("notebook_refused");
    let app = "app demo\nschema Row { x: float  y: float  label: bool }\ndataset rows { schema = Row  path = \"rows.csv\" }\n\
               model labeller: classifier {\n  data = rows\n  target = label\n  features = [x, y]\n  prepare = [one_hot([y])]\n\
               candidates {\n    decision_tree { max_depth = [2] }\n  }\n  evaluate = kfold(3) by accuracy\n}\n";
    std::fs::write(folder.join("app.stratum"), app).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["generate", "notebook", "app.stratum", "--model", "labeller", "-o", "out.ipynb"])
        .current_dir(&folder)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("notebook for model `labeller`: one_hot of `y` (float) has no notebook"), "{stderr}");
    assert!(!folder.join("out.ipynb").exists());

    let missing = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["generate", "notebook", "app.stratum", "-o", "out.ipynb"])
        .current_dir(&folder)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--model"));
}

#[test]
#[ignore = "needs jupyter nbconvert, ipykernel, pandas, scikit-learn and skl2onnx (the CI external stage)"]
fn the_notebook_runs_and_its_onnx_model_predicts_like_scikit_learn_in_stratum() {
    let folder = scratch("notebook_jupyter");
    let factory = repository().join(FACTORY);
    stratum(&["generate", "notebook", factory.to_str().unwrap(), "--model", "failure", "-o", "failure.ipynb"], &folder);
    run(
        "jupyter",
        &["nbconvert", "--to", "notebook", "--execute", "failure.ipynb", "--output", "executed.ipynb"],
        &folder,
    );
    let import =
        stratum(&["model", "import", "failure.onnx", "--name", "failure_sklearn", "--store", "store"], &folder);
    let printed = String::from_utf8_lossy(&import.stdout);
    assert!(printed.contains("inputs: rms_mean, rms_max, peak_p99, temperature_max"), "{printed}");

    // Stratum's executor, fed the raw rows (missing values included), against scikit-learn's own predictions.
    let store = ModelStore::new(folder.join("store"));
    let StoredModel::Imported(artifact) = store.load_any("failure_sklearn", None).unwrap() else {
        panic!("an imported model")
    };
    let model = ImportedModel::from_bytes(&store.imported_bytes(&artifact).unwrap(), None).unwrap();
    let rows = first_rows(20);
    let readers: Vec<_> = rows
        .iter()
        .map(|row| move |name: &str| row.get(name).copied().flatten().map_or(Datum::Null, Datum::Float))
        .collect();
    let references: Vec<&dyn Fn(&str) -> Datum> =
        readers.iter().map(|reader| reader as &dyn Fn(&str) -> Datum).collect();
    let ours = model.predict(&references).unwrap();
    let check = std::fs::read_to_string(folder.join("failure.check.csv")).unwrap();
    let mut lines = check.lines();
    assert_eq!(lines.next(), Some("label,probability_false,probability_true"));
    for (index, (line, prediction)) in lines.zip(&ours).enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        let Prediction::Class { label, probabilities } = prediction else { panic!("a class, got {prediction:?}") };
        assert_eq!(label, cells[0], "row {index}");
        for (ours, theirs) in probabilities.iter().zip(&cells[1..]) {
            let theirs: f64 = theirs.parse().unwrap();
            assert!((ours - theirs).abs() < 1e-5, "row {index}: {ours} vs scikit-learn {theirs}");
        }
    }
    assert_eq!(ours.len(), 20);
}

/// A model block whose features are computed from the data's columns: the hour of a timestamp, a product, a
/// bounded value and a decision (pandas translations of `clamp` and `if`, run by the notebook).
const COMPUTED_APP: &str = r#"app rush
schema Trip { ts: timestamp  speed: float  road: string?  slow: bool }
dataset trips { schema = Trip  path = "trips.csv" }
model slowness: classifier {
  data = trips
  target = slow
  features = [hour_of_day(ts), speed * 2, road, clamp(speed, 15, 40), if speed < 20 then 1 else 0]
  prepare = [one_hot]
  candidates {
    decision_tree { max_depth = [4] }
  }
  evaluate = kfold(3) by accuracy
  seed = 3
}
"#;

#[test]
#[ignore = "needs jupyter nbconvert, ipykernel, pandas, scikit-learn and skl2onnx (the CI external stage)"]
fn a_notebook_model_with_computed_features_predicts_from_raw_records() {
    let folder = scratch("notebook_computed");
    std::fs::write(folder.join("rush.stratum"), COMPUTED_APP).unwrap();
    // Slow in the rush hours (7–9 h, 16–18 h), below 20 km/h, or on the ring road; some roads are not known.
    let mut csv = String::from("ts,speed,road,slow\n");
    let mut raw = Vec::new();
    for index in 0..240u32 {
        let (hour, minute, speed) = (index % 24, (index * 7) % 60, 10.0 + f64::from((index * 13) % 50));
        let road = ["ring", "avenue", "", "bridge"][(index % 4) as usize];
        let slow = (7..=9).contains(&hour) || (16..=18).contains(&hour) || speed < 20.0 || road == "ring";
        csv.push_str(&format!("2026-03-02T{hour:02}:{minute:02}:00Z,{speed},{road},{slow}\n"));
        let milliseconds = 1_772_409_600_000i64 + i64::from(hour * 3600 + minute * 60) * 1000;
        raw.push((milliseconds, speed, road));
    }
    std::fs::write(folder.join("trips.csv"), csv).unwrap();
    stratum(&["generate", "notebook", "rush.stratum", "--model", "slowness", "-o", "slowness.ipynb"], &folder);
    run(
        "jupyter",
        &["nbconvert", "--to", "notebook", "--execute", "slowness.ipynb", "--output", "executed.ipynb"],
        &folder,
    );
    let import = stratum(&["model", "import", "slowness.onnx", "--name", "slowness", "--store", "store"], &folder);
    let printed = String::from_utf8_lossy(&import.stdout);
    assert!(
        printed.contains(
            "inputs: hour_of_day_ts, feature_2, clamp_speed, feature_5, road=avenue, road=bridge, road=ring;"
        ),
        "{printed}"
    );

    // Records as the data plane has them — a timestamp, a speed and a road, not the model's columns — give
    // scikit-learn's predictions: the imported model computes the hour, the product, the bound, the decision and the
    // road's columns itself.
    let store = ModelStore::new(folder.join("store"));
    let StoredModel::Imported(artifact) = store.load_any("slowness", None).unwrap() else {
        panic!("an imported model")
    };
    let model =
        ImportedModel::from_bytes(&store.imported_bytes(&artifact).unwrap(), Some(artifact.inputs.clone())).unwrap();
    let readers: Vec<_> = raw
        .iter()
        .take(20)
        .map(|(milliseconds, speed, road)| {
            move |name: &str| match name {
                "ts" => Datum::Timestamp(*milliseconds),
                "speed" => Datum::Float(*speed),
                "road" if !road.is_empty() => Datum::Text(road.to_string()),
                _ => Datum::Null,
            }
        })
        .collect();
    let references: Vec<&dyn Fn(&str) -> Datum> =
        readers.iter().map(|reader| reader as &dyn Fn(&str) -> Datum).collect();
    let ours = model.predict(&references).unwrap();
    let check = std::fs::read_to_string(folder.join("slowness.check.csv")).unwrap();
    let mut lines = check.lines();
    assert_eq!(lines.next(), Some("label,probability_false,probability_true"));
    let mut compared = 0;
    for (index, (line, prediction)) in lines.zip(&ours).enumerate() {
        let Prediction::Class { label, .. } = prediction else { panic!("a class, got {prediction:?}") };
        assert_eq!(label, line.split(',').next().unwrap(), "row {index}");
        compared += 1;
    }
    assert_eq!(compared, 20);
}
