//! Making an application's models ready before anything serves them, as `stratum up` does: an `onnx` model's file
//! is imported into the store on first use, kept while it is unchanged, and imported again as a new version when
//! it changed; a file that is not there, with nothing stored, is an error that names it.

use stratum_control::models::{ModelOptions, ModelProgress, ensure_models};

const APP: &str = r#"app factory
schema SpectrumFeatures { rms_mean: float  rms_max: float  peak_p99: float  temperature_max: float }
model anomaly: onnx {
  path = "models/vibration_autoencoder.onnx"
  task = regression
  input = SpectrumFeatures
  output = float
}
service anomaly_scoring: inference {
  model = anomaly
  input = http { path = "/v1/anomaly" }
}
"#;

async fn ready(folder: &std::path::Path) -> Result<Vec<ModelProgress>, stratum_control::Error> {
    let checked = stratum_lang::check_text("factory.stratum", APP);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let options = ModelOptions {
        base_dir: folder.into(),
        model_store: folder.join(".stratum/models"),
        bootstrap_hours: Some(1.0),
    };
    let mut steps = Vec::new();
    ensure_models(&checked.application, &options, &mut |step| steps.push(step)).await?;
    Ok(steps)
}

#[tokio::test]
async fn an_onnx_models_file_is_imported_on_first_use_and_again_when_it_changes() {
    let folder = tempfile::tempdir().unwrap();
    let error = ready(folder.path()).await.unwrap_err();
    let message = stratum_core::error_chain(&error);
    assert!(message.contains("models/vibration_autoencoder.onnx` does not exist"), "{message}");
    assert!(message.contains("stratum model import anomaly FILE"), "{message}");

    // The predictive-maintenance example's model.
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/predictive_maintenance/models/vibration_autoencoder.onnx");
    let bytes = std::fs::read(example).unwrap();
    std::fs::create_dir_all(folder.path().join("models")).unwrap();
    std::fs::write(folder.path().join("models/vibration_autoencoder.onnx"), &bytes).unwrap();
    let imported = ModelProgress::Imported {
        model: "anomaly".into(),
        version: 1,
        path: "models/vibration_autoencoder.onnx".into(),
    };
    assert_eq!(ready(folder.path()).await.unwrap(), [imported]);
    assert_eq!(ready(folder.path()).await.unwrap(), [ModelProgress::Kept { model: "anomaly".into(), version: 1 }]);

    // The same graph with a `doc_string` (ModelProto field 6) appended: other bytes, a new version.
    let mut changed = bytes.clone();
    changed.extend([0x32, 0x02, b'v', b'2']);
    std::fs::write(folder.path().join("models/vibration_autoencoder.onnx"), &changed).unwrap();
    let steps = ready(folder.path()).await.unwrap();
    assert!(matches!(steps.as_slice(), [ModelProgress::Imported { version: 2, .. }]), "{steps:?}");
    let store = stratum_ml::ModelStore::new(folder.path().join(".stratum/models"));
    assert_eq!(store.serving("anomaly").unwrap(), Some(2));

    // Both files were imported: the first one back is not imported a third time, and the version that serves stays.
    std::fs::write(folder.path().join("models/vibration_autoencoder.onnx"), &bytes).unwrap();
    assert_eq!(ready(folder.path()).await.unwrap(), [ModelProgress::Kept { model: "anomaly".into(), version: 2 }]);

    // Without the file, the stored version serves.
    std::fs::remove_file(folder.path().join("models/vibration_autoencoder.onnx")).unwrap();
    assert_eq!(ready(folder.path()).await.unwrap(), [ModelProgress::Kept { model: "anomaly".into(), version: 2 }]);

    // Its score is the squared distance from the healthy machines' two main directions: a healthy reading scores
    // low, one that vibrates unlike them (hot and shaking, yet with a low peak) scores high.
    let stored = store.load_any("anomaly", None).unwrap();
    let stratum_ml::StoredModel::Imported(artifact) = stored else { panic!("an imported model") };
    let model =
        stratum_ml::imported::ImportedModel::from_bytes(&store.imported_bytes(&artifact).unwrap(), None).unwrap();
    let reading = |values: [f64; 4]| {
        let names = ["rms_mean", "rms_max", "peak_p99", "temperature_max"];
        move |field: &str| {
            let index = names.iter().position(|name| *name == field).unwrap();
            stratum_core::eval::Datum::Float(values[index])
        }
    };
    let healthy = reading([1.3, 2.0, 4.6, 54.2]);
    let odd = reading([2.5, 1.0, 2.0, 80.0]);
    let scores = model.predict(&[&healthy, &odd]).unwrap();
    let value = |prediction: &stratum_ml::search::Prediction| match prediction {
        stratum_ml::search::Prediction::Value(value) => *value,
        other => panic!("{other:?}"),
    };
    assert!(value(&scores[0]) < 0.1 && value(&scores[1]) > 1.0, "{scores:?}");
}
