//! Training end to end on small generated files: the leaderboard, reproducibility, the artifact's round trip and
//! the one inference entry point, and the errors a user meets with bad data.

use std::path::{Path, PathBuf};
use stratum_core::eval::Datum;
use stratum_ml::search::Prediction;
use stratum_ml::{ModelStore, train};

/// A folder with a .stratum file and its data, under cargo's temporary directory.
fn project(name: &str, stratum: &str, csv: &str) -> PathBuf {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train").join(name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("app.stratum"), stratum).unwrap();
    std::fs::write(folder.join("rows.csv"), csv).unwrap();
    folder
}

fn application(folder: &Path) -> stratum_core::ir::Application {
    let text = std::fs::read_to_string(folder.join("app.stratum")).unwrap();
    let checked = stratum_lang::check_text("app.stratum", &text);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    checked.application
}

/// 300 rows: the label is true when x + noise > 1, with a categorical colour and a timestamp.
fn rows_csv() -> String {
    let mut csv = String::from("x,colour,ts,label\n");
    let mut state = 12345u64;
    for index in 0..300 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let noise = ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5;
        let x = (index % 20) as f64 / 10.0;
        let colour = ["red", "green", "blue"][index % 3];
        csv.push_str(&format!(
            "{x},{colour},2026-01-0{}T0{}:00:00Z,{}\n",
            index % 9 + 1,
            index % 10,
            x + noise * 0.6 > 1.0
        ));
    }
    csv
}

const APP: &str = r#"app demo
schema Row { x: float  colour: string  ts: timestamp  label: bool }
dataset rows { schema = Row  path = "rows.csv" }
model labeller: classifier {
  data = rows
  target = label
  features = [x, colour, hour_of_day(ts)]
  prepare = [standardize]
  candidates {
    logistic_regression { c = [0.1, 1] }
    decision_tree { max_depth = [1, 3] }
  }
  evaluate = kfold(4, stratified) by accuracy
  seed = 3
  parallel = 2
}
"#;

#[test]
fn training_ranks_candidates_and_is_reproducible() {
    let folder = project("ranks", APP, &rows_csv());
    let application = application(&folder);
    let first = train(&application, "labeller", &folder, &mut |_| {}).unwrap();
    let second = train(&application, "labeller", &folder, &mut |_| {}).unwrap();
    let scores = |report: &stratum_ml::TrainReport| {
        report.leaderboard.entries.iter().map(|entry| (entry.algorithm.clone(), entry.mean)).collect::<Vec<_>>()
    };
    assert_eq!(scores(&first), scores(&second), "the same seed must give the same leaderboard");
    let entries = &first.leaderboard.entries;
    assert_eq!(entries.len(), 4);
    assert!(entries.windows(2).all(|pair| pair[0].mean >= pair[1].mean), "ranked best first");
    assert!(entries[0].mean > 0.75, "the signal is learnable: {}", entries[0].mean);
    assert_eq!(entries[0].folds.len(), 4);
}

/// With one candidate, `train` refits it beside the folds; the model is the one a refit after them gives (as the
/// control plane's `finish` does for a search spread over agents).
#[test]
fn a_single_candidate_refitted_beside_its_folds_is_the_same_model() {
    let single = APP.replace(
        "    logistic_regression { c = [0.1, 1] }\n    decision_tree { max_depth = [1, 3] }",
        "    random_forest { trees = 5  max_depth = 4 }",
    );
    let folder = project("single", &single, &rows_csv());
    let application = application(&folder);
    let trained = train(&application, "labeller", &folder, &mut |_| {}).unwrap();
    let run = stratum_ml::search::prepare_training(&application, "labeller", &folder).unwrap();
    let outcomes = run.tasks.iter().map(|task| Some(run.run(task).map_err(|error| error.to_string()))).collect();
    let finished = run.finish(outcomes, std::time::Duration::ZERO).unwrap();
    assert_eq!(trained.leaderboard.entries.len(), 1);
    assert_eq!(trained.leaderboard.entries[0].folds, finished.leaderboard.entries[0].folds);
    assert_eq!(trained.winner, finished.winner);
}

#[test]
fn artifacts_round_trip_and_predict_records() {
    let folder = project("artifacts", APP, &rows_csv());
    let application = application(&folder);
    let report = train(&application, "labeller", &folder, &mut |_| {}).unwrap();
    let model = &application.models[0];
    let store = ModelStore::new(folder.join("store"));
    let (saved, _) = store.save(&report, model.inputs.clone(), model.output.clone()).unwrap();
    let (again, _) = store.save(&report, model.inputs.clone(), model.output.clone()).unwrap();
    assert_eq!(again.version, 2);
    assert_eq!(again.sha256, saved.sha256, "the same model has the same content address");
    let loaded = store.load("labeller", Some(1)).unwrap();
    assert_eq!(loaded.model, saved.model);
    assert!(
        saved.profile.latency_p50_us > 0.0 && saved.profile.batch_rows_per_second > 0.0 && saved.profile.size_bytes > 0
    );

    let high = |name: &str| match name {
        "x" => Datum::Float(1.9),
        "colour" => Datum::Text("red".into()),
        "ts" => Datum::Timestamp(0),
        _ => Datum::Null,
    };
    let low = |name: &str| match name {
        "x" => Datum::Float(0.0),
        "colour" => Datum::Text("purple".into()),
        _ => Datum::Null,
    };
    let predictions = loaded.model.predict(&[&high, &low]);
    assert!(matches!(&predictions[0], Prediction::Class { label, .. } if label == "true"), "{predictions:?}");
    assert!(matches!(&predictions[1], Prediction::Class { label, .. } if label == "false"), "{predictions:?}");

    // Change one fitted number inside the model: the artifact no longer matches its content address.
    let path = store.root.join("labeller/v1.json");
    let mut artifact: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let offset = &mut artifact["model"]["preparation"]["scaling"][0][0];
    *offset = serde_json::json!(offset.as_f64().unwrap() + 1.0);
    std::fs::write(&path, serde_json::to_string(&artifact).unwrap()).unwrap();
    let error = store.load("labeller", Some(1)).unwrap_err().to_string();
    assert!(error.contains("does not match its sha256"), "{error}");
}

fn error_of(name: &str, app: &str, csv: &str) -> String {
    let folder = project(name, app, csv);
    let application = application(&folder);
    let model = application.models[0].name.clone();
    match train(&application, &model, &folder, &mut |_| {}) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("{name} should fail"),
    }
}

#[test]
fn bad_data_gives_precise_errors() {
    let missing_column = error_of("missing_column", APP, "x,colour,label\n1,red,true\n");
    assert!(missing_column.contains("has no column `ts`; it has: x, colour, label"), "{missing_column}");
    let bad_value = error_of("bad_value", APP, "x,colour,ts,label\n1,red,2026-01-01,maybe\n");
    assert!(bad_value.contains("line 2, column `label`: `maybe` is not a bool"), "{bad_value}");
    let one_class = error_of("one_class", APP, "x,colour,ts,label\n1,red,2026-01-01,true\n2,red,2026-01-01,true\n");
    assert!(one_class.contains("only one class (`true`)"), "{one_class}");
    let empty = error_of("empty", APP, "x,colour,ts,label\n");
    assert!(empty.contains("has no rows"), "{empty}");
    let gaps = error_of("gaps", APP, &format!("{}0.5,red,2026-01-01,true\n,red,2026-01-01,false\n", rows_csv()));
    assert!(gaps.contains("feature `x` has missing values; add an imputation step"), "{gaps}");
    let few = error_of(
        "few",
        APP,
        "x,colour,ts,label\n1,red,2026-01-01,true\n2,red,2026-01-01,false\n0,red,2026-01-01,true\n",
    );
    assert!(few.contains("3 rows to train on are fewer than the 4 folds of `kfold(4)`"), "{few}");
    let infinite = error_of("infinite", APP, &format!("{}inf,red,2026-01-01,true\n", rows_csv()));
    assert!(
        infinite.contains(
            "feature `x` is inf in row 301 of the data (counting rows from 1); an infinite value cannot be learned from"
        ),
        "{infinite}"
    );
    let no_path = APP.replace("dataset rows { schema = Row  path = \"rows.csv\" }", "dataset rows { schema = Row }");
    let no_data = error_of("no_path", &no_path, "");
    assert!(no_data.contains("data/rows.parquet does not exist yet"), "{no_data}");
}

/// The rows of `rows_csv()` as a Parquet file with the types the data plane writes (timestamps in ms, UTC).
fn write_parquet(path: &Path) {
    use arrow_array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
    let table = stratum_ml::data::load(
        &path.with_file_name("rows.csv"),
        None,
        &application(path.parent().unwrap()).datasets[0].fields,
    )
    .unwrap();
    let column = |index: usize| table.rows.iter().map(move |row| row[index].clone());
    let x: Float64Array = column(0).map(|value| value.as_f64()).collect();
    let colour: StringArray = column(1)
        .map(|value| match value {
            Datum::Text(text) => Some(text),
            _ => None,
        })
        .collect();
    let ts = TimestampMillisecondArray::from(
        column(2)
            .map(|value| match value {
                Datum::Timestamp(ms) => Some(ms),
                _ => None,
            })
            .collect::<Vec<_>>(),
    )
    .with_timezone("UTC");
    let label: BooleanArray = column(3)
        .map(|value| match value {
            Datum::Bool(b) => Some(b),
            _ => None,
        })
        .collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("x", std::sync::Arc::new(x)),
        ("colour", std::sync::Arc::new(colour)),
        ("ts", std::sync::Arc::new(ts)),
        ("label", std::sync::Arc::new(label)),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_data_trains_exactly_like_the_same_rows_in_csv() {
    let folder = project("parquet", APP, &rows_csv());
    let from_csv = train(&application(&folder), "labeller", &folder, &mut |_| {}).unwrap();
    write_parquet(&folder.join("rows.parquet"));
    std::fs::write(folder.join("app.stratum"), APP.replace("rows.csv", "rows.parquet")).unwrap();
    let from_parquet = train(&application(&folder), "labeller", &folder, &mut |_| {}).unwrap();
    assert_eq!(from_parquet.rows, 300);
    let scores = |report: &stratum_ml::TrainReport| {
        report.leaderboard.entries.iter().map(|entry| (entry.algorithm.clone(), entry.mean)).collect::<Vec<_>>()
    };
    assert_eq!(scores(&from_parquet), scores(&from_csv));

    // A directory of parts (as a partitioned sink writes) reads as one table.
    let parts = folder.join("parts");
    std::fs::create_dir_all(parts.join("colour=red")).unwrap();
    std::fs::rename(folder.join("rows.parquet"), parts.join("colour=red/part-1.parquet")).unwrap();
    std::fs::write(
        folder.join("app.stratum"),
        APP.replace("rows.csv", "parts").replace(
            "dataset rows { schema = Row  path = \"parts\" }",
            "dataset rows { schema = Row  path = \"parts\"  format = parquet }",
        ),
    )
    .unwrap();
    let from_parts = train(&application(&folder), "labeller", &folder, &mut |_| {}).unwrap();
    assert_eq!(scores(&from_parts), scores(&from_csv));
}

#[test]
fn imputation_fills_missing_values_inside_each_fold() {
    let with_impute = APP.replace("prepare = [standardize]", "prepare = [impute(median), standardize]");
    let folder =
        project("impute", &with_impute, &format!("{}0.5,red,2026-01-01,true\n,red,2026-01-01,false\n", rows_csv()));
    let report = train(&application(&folder), "labeller", &folder, &mut |_| {}).unwrap();
    assert_eq!(report.rows, 302);
}

#[test]
fn an_exported_model_imported_again_predicts_the_same() {
    use stratum_core::types::{DataType, Field};
    let numeric = APP.replace("features = [x, colour, hour_of_day(ts)]", "features = [x]");
    let folder = project("reimport", &numeric, &rows_csv());
    let application = application(&folder);
    let report = train(&application, "labeller", &folder, &mut |_| {}).unwrap();
    let path = folder.join("labeller.onnx");
    std::fs::write(&path, stratum_ml::onnx::export(&report.winner, "labeller").unwrap()).unwrap();
    let imported = stratum_ml::imported::ImportedModel::load(&path, vec![Field::new("x", DataType::Float)]).unwrap();
    // Each record answers every field lookup with the same value, which is all a one-feature model asks.
    type Record = Box<dyn Fn(&str) -> Datum>;
    let records: Vec<Record> =
        (0..20).map(|index| Box::new(move |_: &str| Datum::Float(f64::from(index) / 10.0)) as Record).collect();
    let references: Vec<&dyn Fn(&str) -> Datum> = records.iter().map(|record| record.as_ref()).collect();
    let ours = report.winner.predict(&references);
    let theirs = imported.predict(&references).unwrap();
    for (native, through_onnx) in ours.iter().zip(&theirs) {
        match (native, through_onnx) {
            (Prediction::Class { label: a, probabilities: p }, Prediction::Class { label: b, probabilities: q }) => {
                assert_eq!(a, b);
                assert!(p.iter().zip(q).all(|(x, y)| (x - y).abs() < 1e-5), "{p:?} vs {q:?}");
            }
            other => panic!("expected classes, got {other:?}"),
        }
    }
}

#[test]
fn onnx_models_import_into_the_store_checked_and_versioned() {
    use stratum_core::types::{DataType, Field};
    use stratum_ml::StoredModel;
    let numeric = APP.replace("features = [x, colour, hour_of_day(ts)]", "features = [x]");
    let folder = project("store_import", &numeric, &rows_csv());
    let application = application(&folder);
    let report = train(&application, "labeller", &folder, &mut |_| {}).unwrap();
    let bytes = stratum_ml::onnx::export(&report.winner, "labeller").unwrap();
    let store = ModelStore::new(folder.join("store"));
    let source = folder.join("labeller.onnx");

    // Our export names no columns in its metadata, so the importer must be told them, and their count must fit.
    let missing = store.import_onnx("outside", &bytes, None, &source).unwrap_err().to_string();
    assert!(missing.contains("--inputs"), "{missing}");
    let two = vec![Field::new("x", DataType::Float), Field::new("y", DataType::Float)];
    let too_many = store.import_onnx("outside", &bytes, Some(two), &source).unwrap_err().to_string();
    assert!(too_many.contains("takes 1 input columns, but 2 are named"), "{too_many}");
    let bad_name = store.import_onnx("../escape", &bytes, None, &source).unwrap_err().to_string();
    assert!(bad_name.contains("cannot name a model"), "{bad_name}");

    let inputs = vec![Field::new("x", DataType::Float)];
    let (first, _) = store.import_onnx("outside", &bytes, Some(inputs.clone()), &source).unwrap();
    let (second, _) = store.import_onnx("outside", &bytes, Some(inputs), &source).unwrap();
    assert_eq!((first.version, second.version), (1, 2));
    assert!(second.profile.latency_p50_us > 0.0 && second.profile.size_bytes == bytes.len() as u64);
    match store.load_any("outside", None).unwrap() {
        StoredModel::Imported(artifact) => {
            assert_eq!(artifact.outputs, ["label", "probabilities"]);
            assert_eq!(store.imported_bytes(&artifact).unwrap(), bytes);
        }
        other => panic!("expected an imported model, got {other:?}"),
    }
    let trained_only = store.load("outside", None).unwrap_err().to_string();
    assert!(trained_only.contains("imported ONNX model"), "{trained_only}");

    // A changed file is refused rather than served.
    std::fs::write(folder.join("store/outside/v2.onnx"), &bytes[..bytes.len() - 1]).unwrap();
    let damaged = store.load_any("outside", Some(2)).unwrap_err().to_string();
    assert!(damaged.contains("does not match its sha256"), "{damaged}");
}

/// 300 rows of `x` and a label; `flip(index)` says whether a row's label goes against the rule `x > 1` (the rows
/// in file order, which is time order).
fn rule_csv(flip: impl Fn(usize) -> bool) -> String {
    let mut csv = String::from("x,colour,ts,label\n");
    for index in 0..300 {
        let x = (index * 7 % 20) as f64 / 10.0 + 0.05;
        let label = (x > 1.0) != flip(index);
        csv.push_str(&format!("{x},red,2026-01-01T00:00:00Z,{label}\n"));
    }
    csv
}

/// Trains v1 on rows that follow `x > 1`, then retrains on `data` holding out its latest fifth, and judges the
/// winner against v1 as a retrain under `up` does; returns the judgement and the store.
fn retrain_against_v1(name: &str, data: &str) -> (stratum_ml::Judgement, ModelStore) {
    let folder = project(name, APP, &rule_csv(|_| false));
    let application = application(&folder);
    let model = &application.models[0];
    let store = ModelStore::new(folder.join("store"));
    let first = train(&application, "labeller", &folder, &mut |_| {}).unwrap();
    let (v1, _) = store.save(&first, model.inputs.clone(), model.output.clone()).unwrap();
    std::fs::write(folder.join("rows.csv"), data).unwrap();
    let held_out = stratum_ml::recent::RECENT_FRACTION;
    let run = stratum_ml::search::prepare_retraining(&application, "labeller", &folder, held_out).unwrap();
    let report = stratum_ml::search::train_prepared(run, std::time::Instant::now(), &mut |_| {}).unwrap();
    assert_eq!(report.rows, 240, "the latest 60 of 300 rows are held out of the search and the refit");
    let judgement = stratum_ml::judge(&report, &v1.model, v1.version, v1.score).expect("a classifier is judged");
    let (v2, _) =
        store.save_judged(&report, model.inputs.clone(), model.output.clone(), Some(judgement.clone())).unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.judgement.as_ref(), Some(&judgement), "the artifact keeps its judgement");
    (judgement, store)
}

#[test]
fn a_retrained_version_that_scores_better_on_the_latest_rows_serves() {
    // The world turned: every label now goes against the old rule.
    let (judgement, store) = retrain_against_v1("judged_better", &rule_csv(|_| true));
    assert_eq!(judgement.rows, 60);
    assert!(judgement.candidate > 0.9 && judgement.serving < 0.1, "{judgement:?}");
    assert!((judgement.serving_when_trained - 1.0).abs() < 1e-9, "v1 was perfect when trained: {judgement:?}");
    assert!(judgement.promoted);
    assert_eq!(store.serving("labeller").unwrap(), Some(2));
    assert!(!store.held_back("labeller", 2));
    let text = judgement.describe(2);
    assert!(text.starts_with("on the latest 60 rows, accuracy: v2 1.000, v1 0.000 (1.000 when trained); v2 serves"));
}

#[test]
fn a_retrained_version_that_does_not_score_better_is_stored_but_the_serving_one_stays() {
    // The older rows went bad (every third label wrong) while the latest ones still follow the rule v1 learned.
    let (judgement, store) = retrain_against_v1("judged_worse", &rule_csv(|index| index < 240 && index % 3 == 0));
    assert!((judgement.serving - 1.0).abs() < 1e-9, "{judgement:?}");
    assert!(judgement.candidate <= judgement.serving, "{judgement:?}");
    assert!(!judgement.promoted);
    assert_eq!(store.versions("labeller").unwrap(), vec![1, 2]);
    assert_eq!(store.serving("labeller").unwrap(), Some(1), "v1 serves on");
    assert!(store.held_back("labeller", 2) && !store.held_back("labeller", 1), "a rollback passes over v2");
    assert_eq!(store.chosen("labeller").unwrap(), Some(stratum_ml::Serving { version: 1, pinned: false }));
    assert!(judgement.describe(2).contains("v2 does not score better, so v1 serves on"), "{}", judgement.describe(2));
}
