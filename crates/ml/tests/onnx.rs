//! ONNX export parity: models trained here, exported to ONNX, give the same predictions in onnxruntime (the
//! real peer, from PyPI) as in Stratum — labels equal, probabilities and values within 1e-5. The ignored test is
//! run by CI's external stage; a missing onnxruntime fails it. The plain test checks the export's structure.

use std::path::{Path, PathBuf};
use std::process::Command;
use stratum_core::ir::Value;
use stratum_ml::algorithms::{Params, fit};
use stratum_ml::matrix::{Matrix, Random};
use stratum_ml::metrics::Predictions;
use stratum_ml::prepare::{FeatureDefinition, Preparation, Target};
use stratum_ml::search::TrainedModel;

/// Rows with four-decimal values (so float32 and float64 compare them alike), for a given number of classes
/// (0: regression).
fn data(classes: usize, seed: u64) -> (Matrix, Target) {
    let mut random = Random::new(seed);
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    let mut values = Vec::new();
    for _ in 0..400 {
        let row: Vec<f64> = (0..4).map(|_| ((random.next_f64() * 10.0) * 10_000.0).round() / 10_000.0).collect();
        let signal = row[0] - row[1] + 0.5 * row[2];
        if classes > 0 {
            labels.push(if classes == 2 {
                usize::from(signal > 2.5)
            } else {
                usize::from(signal > 0.5) + usize::from(signal > 4.0)
            });
        }
        values.push(signal + row[3] * 0.1);
        rows.push(row);
    }
    let target = if classes == 0 {
        Target::Values(values)
    } else {
        Target::Classes { labels, classes: (0..classes).map(|class| format!("class_{class}")).collect() }
    };
    (Matrix::from_rows(&rows), target)
}

fn raw_preparation(scaled: bool) -> Preparation {
    let names: Vec<String> = (0..4).map(|index| format!("x{index}")).collect();
    Preparation {
        features: names
            .iter()
            .map(|name| FeatureDefinition {
                name: name.clone(),
                expr: stratum_core::ir::Expr::Field { name: name.clone() },
                categorical: false,
            })
            .collect(),
        fill: vec![Some(1.5); 4],
        categories: vec![Vec::new(); 4],
        scaling: if scaled { vec![(5.0, 2.5); 4] } else { vec![(0.0, 1.0); 4] },
        output_names: names,
    }
}

fn params(pairs: &[(&str, Value)]) -> Params {
    Params(pairs.iter().map(|(name, value)| (name.to_string(), value.clone())).collect())
}

/// (case name, algorithm, params, classes, scaled)
fn cases() -> Vec<(&'static str, &'static str, Params, usize, bool)> {
    vec![
        ("linear_regression", "linear_regression", Params::default(), 0, true),
        ("logistic_binary", "logistic_regression", Params::default(), 2, true),
        ("logistic_multiclass", "logistic_regression", Params::default(), 3, true),
        ("svm_binary", "svm", Params::default(), 2, true),
        ("svm_multiclass", "svm", Params::default(), 3, true),
        ("decision_tree_classifier", "decision_tree", params(&[("max_depth", Value::Int(5))]), 3, false),
        ("decision_tree_regressor", "decision_tree", params(&[("max_depth", Value::Int(5))]), 0, false),
        ("random_forest_classifier", "random_forest", params(&[("trees", Value::Int(15))]), 2, false),
        ("random_forest_regressor", "random_forest", params(&[("trees", Value::Int(15))]), 0, false),
        ("gradient_boosting_binary", "gradient_boosting", params(&[("rounds", Value::Int(30))]), 2, false),
        ("gradient_boosting_multiclass", "gradient_boosting", params(&[("rounds", Value::Int(20))]), 3, false),
        ("gradient_boosting_regressor", "gradient_boosting", params(&[("rounds", Value::Int(30))]), 0, true),
        ("mlp_classifier", "mlp", params(&[("hidden", Value::Int(8)), ("epochs", Value::Int(5))]), 3, true),
        ("mlp_regressor", "mlp", params(&[("hidden", Value::Int(8)), ("epochs", Value::Int(5))]), 0, true),
    ]
}

/// Trains every case, exports it, and writes the raw inputs and Stratum's predictions next to the model.
fn export_cases(folder: &Path) -> Vec<String> {
    std::fs::create_dir_all(folder).unwrap();
    let mut names = Vec::new();
    for (name, algorithm, parameters, classes, scaled) in cases() {
        let (raw, target) = data(classes, 5);
        let preparation = raw_preparation(scaled);
        let prepared = Matrix {
            rows: raw.rows,
            columns: raw.columns,
            values: raw
                .values
                .iter()
                .enumerate()
                .map(|(index, value)| (value - preparation.scaling[index % 4].0) / preparation.scaling[index % 4].1)
                .collect(),
        };
        let fitted = fit(algorithm, &parameters, &prepared, &target, 3).unwrap();
        let class_names = match &target {
            Target::Classes { classes, .. } => classes.clone(),
            _ => Vec::new(),
        };
        let model = TrainedModel {
            preparation,
            fitted,
            classes: class_names.clone(),
            task: stratum_core::ir::Task::Classification,
        };
        let bytes = stratum_ml::onnx::export(&model, name).unwrap();
        std::fs::write(folder.join(format!("{name}.onnx")), bytes).unwrap();
        let expected = match model.fitted.predict(&prepared) {
            Predictions::Classes { labels, probabilities, .. } => serde_json::json!({
                "labels": labels.iter().map(|label| class_names[*label].clone()).collect::<Vec<_>>(),
                "probabilities": probabilities,
            }),
            Predictions::Values(values) => serde_json::json!({ "values": values }),
            Predictions::Clusters(_) => unreachable!("no clustering case"),
        };
        let inputs: Vec<Vec<f64>> = (0..raw.rows).map(|row| raw.row(row).to_vec()).collect();
        let case = serde_json::json!({ "inputs": inputs, "expected": expected });
        std::fs::write(folder.join(format!("{name}.json")), serde_json::to_string(&case).unwrap()).unwrap();
        names.push(name.to_string());
    }
    names
}

fn folder() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx-parity")
}

#[test]
fn every_exportable_model_writes_a_well_formed_onnx_file() {
    let names = export_cases(&folder());
    for name in names {
        let bytes = std::fs::read(folder().join(format!("{name}.onnx"))).unwrap();
        // A ModelProto starts with ir_version (field 1, varint) = 8.
        assert_eq!(&bytes[..2], &[0x08, 0x08], "{name}");
        assert!(bytes.windows(10).any(|window| window == b"ai.onnx.ml"), "{name} declares the ai.onnx.ml opset");
    }
}

#[test]
#[ignore = "needs onnxruntime; .ci/run installs it and runs this in its external stage"]
fn onnxruntime_predicts_what_stratum_predicts() {
    let folder = folder();
    let names = export_cases(&folder);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_parity.py");
    let output = Command::new("python3").arg(&script).arg(&folder).args(&names).output().expect("python3 runs");
    assert!(
        output.status.success(),
        "onnxruntime disagrees with Stratum (or is not installed):\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Which engine runs a case.
#[derive(Clone, Copy, PartialEq)]
enum Engine {
    Stratum,
    OnnxRuntime,
}

/// Runs an ONNX file with an engine on float rows; returns (labels, probabilities) or values.
fn run_with(engine: Engine, path: &Path, rows: &[Vec<f64>]) -> (Option<Vec<String>>, Vec<Vec<f64>>) {
    use stratum_ml::onnx::onnxruntime::OrtSession;
    use stratum_ml::onnx::runtime::Session;
    use stratum_ml::onnx::tensor::Tensor;
    let bytes = std::fs::read(path).unwrap();
    let failed = |error: stratum_ml::Error| -> ! { panic!("{}: {error}", path.display()) };
    let columns = rows.first().map_or(0, Vec::len);
    let input = Tensor::Float {
        shape: vec![rows.len(), columns],
        data: rows.iter().flatten().map(|value| *value as f32).collect(),
    };
    let outputs = match engine {
        Engine::Stratum => {
            let session = Session::new(&bytes).unwrap_or_else(|error| failed(error));
            session.run(vec![(session.inputs()[0].clone(), input)]).unwrap()
        }
        Engine::OnnxRuntime => {
            let session = OrtSession::new(&bytes).unwrap_or_else(|error| failed(error));
            session.run(vec![(session.inputs()[0].clone(), input)]).unwrap()
        }
    };
    let matrix = |tensor: &Tensor| -> Vec<Vec<f64>> {
        let (count, width) = tensor.matrix_shape();
        let values = tensor.as_floats().unwrap();
        (0..count)
            .map(|row| values[row * width..(row + 1) * width].iter().map(|value| f64::from(*value)).collect())
            .collect()
    };
    match (outputs.get("label"), outputs.get("probabilities"), outputs.get("variable")) {
        (Some(labels), Some(probabilities), _) => {
            let labels = match labels {
                Tensor::Text { data, .. } => data.clone(),
                Tensor::Int { data, .. } => data.iter().map(i64::to_string).collect(),
                Tensor::Float { data, .. } => data.iter().map(f32::to_string).collect(),
            };
            (Some(labels), matrix(probabilities))
        }
        (_, _, Some(values)) => (None, matrix(values)),
        _ => {
            // scikit-learn names its outputs output_label / output_probability, or variable for regressors.
            let mut names: Vec<&String> = outputs.keys().collect();
            names.sort();
            let label = outputs.iter().find(|(name, _)| name.contains("label")).map(|(_, tensor)| tensor);
            let probability = outputs.iter().find(|(name, _)| name.contains("probab")).map(|(_, tensor)| tensor);
            match (label, probability) {
                (Some(Tensor::Text { data, .. }), Some(probabilities)) => (Some(data.clone()), matrix(probabilities)),
                (Some(Tensor::Int { data, .. }), Some(probabilities)) => {
                    (Some(data.iter().map(i64::to_string).collect()), matrix(probabilities))
                }
                _ => (None, matrix(outputs.values().next().unwrap_or_else(|| panic!("no outputs among {names:?}")))),
            }
        }
    }
}

fn compare(
    name: &str,
    expected: &serde_json::Value,
    labels: Option<Vec<String>>,
    numbers: Vec<Vec<f64>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(expected_labels) = expected.get("labels") {
        let expected_labels: Vec<String> = expected_labels
            .as_array()
            .unwrap()
            .iter()
            .map(|label| label.as_str().map(str::to_string).unwrap_or_else(|| label.to_string()))
            .collect();
        let labels = labels.unwrap_or_default();
        let wrong = expected_labels.iter().zip(&labels).filter(|(a, b)| a != b).count();
        if wrong > 0 || labels.len() != expected_labels.len() {
            problems.push(format!("{name}: {wrong} labels differ"));
        }
        let expected: Vec<Vec<f64>> = serde_json::from_value(expected["probabilities"].clone()).unwrap();
        let largest = expected
            .iter()
            .zip(&numbers)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
            .fold(0.0, f64::max);
        if largest > 1e-5 {
            problems.push(format!("{name}: probabilities differ by up to {largest:.2e}"));
        }
    } else {
        let expected: Vec<f64> = serde_json::from_value(expected["values"].clone()).unwrap();
        let scale = expected.iter().fold(1.0f64, |largest, value| largest.max(value.abs()));
        let largest = expected.iter().zip(&numbers).map(|(a, b)| (a - b[0]).abs()).fold(0.0, f64::max);
        if largest > 1e-5 * scale {
            problems.push(format!("{name}: values differ by up to {largest:.2e}"));
        }
    }
    problems
}

/// Runs each case `NAME.onnx` with an engine on the inputs of `NAME.json` and compares with its expectations.
fn against_expected(engine: Engine, folder: &Path, names: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for name in names {
        let case: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join(format!("{name}.json"))).unwrap()).unwrap();
        let rows: Vec<Vec<f64>> = serde_json::from_value(case["inputs"].clone()).unwrap();
        let (labels, numbers) = run_with(engine, &folder.join(format!("{name}.onnx")), &rows);
        problems.extend(compare(name, &case["expected"], labels, numbers));
    }
    problems
}

fn stratum_against_expected(folder: &Path, names: &[String]) -> Vec<String> {
    against_expected(Engine::Stratum, folder, names)
}

/// Runs a script of `tests/` that writes cases (`NAME.onnx`, `NAME.json`) into `folder`; their names.
fn cases_from_python(script: &str, folder: &Path) -> Vec<String> {
    std::fs::create_dir_all(folder).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(script);
    let output = Command::new("python3").arg(&path).arg(folder).output().expect("python3 runs");
    assert!(output.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect()
}

/// The libonnxruntime of the Python onnxruntime package (the CI's external stage installs it).
fn python_onnxruntime_library() -> PathBuf {
    let output = Command::new("python3")
        .args(["-c", "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))"])
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "onnxruntime is not installed: {}", String::from_utf8_lossy(&output.stderr));
    let folder = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    std::fs::read_dir(&folder)
        .unwrap()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("libonnxruntime.so")))
        .unwrap_or_else(|| panic!("no libonnxruntime.so in {}", folder.display()))
}

#[test]
fn stratums_onnx_executor_runs_stratums_exports() {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx-self");
    let names = export_cases(&folder);
    let problems = stratum_against_expected(&folder, &names);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
#[ignore = "needs onnx and onnxruntime from PyPI; .ci/run installs them and runs this in its external stage"]
fn graphs_stratum_cannot_run_are_served_by_onnx_runtime_when_it_is_there() {
    use stratum_ml::imported::ImportedModel;
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx-foreign");
    let names = cases_from_python("foreign_models.py", &folder);
    assert_eq!(names, ["conv_regressor", "conv_classifier"]);
    stratum_ml::onnx::onnxruntime::use_library(&python_onnxruntime_library());
    for name in &names {
        let bytes = std::fs::read(folder.join(format!("{name}.onnx"))).unwrap();
        // Stratum's own executor says what it lacks …
        let error = stratum_ml::onnx::runtime::Session::new(&bytes).unwrap_err().to_string();
        assert!(error.contains("Conv") && error.contains("ReduceMean"), "{error}");
        // … and an imported model of it runs on ONNX Runtime instead.
        let inputs: Vec<stratum_core::types::Field> = (0..8)
            .map(|index| stratum_core::types::Field::new(format!("x{index}"), stratum_core::types::DataType::Float))
            .collect();
        let model = ImportedModel::from_bytes(&bytes, Some(inputs)).unwrap();
        assert_eq!(model.engine(), "onnxruntime");
        let case: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join(format!("{name}.json"))).unwrap()).unwrap();
        let rows: Vec<Vec<f64>> = serde_json::from_value(case["inputs"].clone()).unwrap();
        type Reader<'a> = &'a dyn Fn(&str) -> stratum_core::eval::Datum;
        // Columns are x0 … x7: a record reads its row at the column's number.
        let readers: Vec<_> = rows
            .iter()
            .map(|row| move |field: &str| stratum_core::eval::Datum::Float(row[field[1..].parse::<usize>().unwrap()]))
            .collect();
        let records: Vec<Reader> = readers.iter().map(|reader| reader as Reader).collect();
        let mut labels = Vec::new();
        let mut numbers = Vec::new();
        for prediction in model.predict(&records).unwrap() {
            match prediction {
                stratum_ml::search::Prediction::Class { label, probabilities } => {
                    labels.push(label);
                    numbers.push(probabilities);
                }
                stratum_ml::search::Prediction::Value(value) => numbers.push(vec![value]),
                stratum_ml::search::Prediction::Cluster(cluster) => numbers.push(vec![cluster as f64]),
            }
        }
        let labels = (!labels.is_empty()).then_some(labels);
        let problems = compare(name, &case["expected"], labels, numbers);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

#[test]
#[ignore = "needs scikit-learn and skl2onnx; .ci/run installs them and runs this in its external stage"]
fn scikit_learn_models_through_onnx_predict_identically() {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx-sklearn");
    let names = cases_from_python("sklearn_models.py", &folder);
    assert!(names.len() >= 8, "expected the scikit-learn models, got {names:?}");
    let problems = stratum_against_expected(&folder, &names);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The same models through ONNX Runtime, loaded from the library the user provides: both engines agree with
    // scikit-learn, so by default Stratum's own (pure Rust, in every build) serves them.
    stratum_ml::onnx::onnxruntime::use_library(&python_onnxruntime_library());
    let problems = against_expected(Engine::OnnxRuntime, &folder, &names);
    assert!(problems.is_empty(), "through ONNX Runtime:\n{}", problems.join("\n"));
}
