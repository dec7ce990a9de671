//! Batch SQL end to end: a pipeline writes per-minute counts as Parquet, the hourly batch aggregates them with
//! DataFusion into a dataset, and the result is checked against the counts themselves; query errors say where.

use datafusion::arrow::array::{Array, BooleanArray, Int64Array};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use stratum_core::ir::Application;
use stratum_dataplane::{Pipeline, PipelineOptions};

fn checked(text: &str) -> Application {
    stratum_test_support::application_from_text("hourly.stratum", text)
}

const APP: &str = include_str!("apps/hourly.stratum");

async fn run_pipeline(application: &Application, directory: &std::path::Path) -> u64 {
    let options = PipelineOptions { base_dir: directory.into(), fast_generators: true, ..PipelineOptions::default() };
    let summary = Pipeline::build(application, &options).unwrap().run().await.unwrap();
    summary.components.iter().find(|metrics| metrics.component == "counts").unwrap().events_out
}

async fn sum(context: &SessionContext, query: &str) -> i64 {
    let batches = context.sql(query).await.unwrap().collect().await.unwrap();
    batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hourly_batch_aggregates_what_the_pipeline_wrote() {
    let application = checked(APP);
    let directory = tempfile::tempdir().unwrap();
    let windows = run_pipeline(&application, directory.path()).await;
    assert!(windows > 0);

    let run = stratum_batch::run(&application, "hourly", directory.path()).await.unwrap();
    assert_eq!(run.path, directory.path().join("out/congestion.parquet"));
    // 20,000 events at 4/s on average span several hours of simulated time (light at night), for 8 cameras.
    assert!(run.rows >= 16, "{} rows", run.rows);

    let context = SessionContext::new();
    context
        .register_parquet(
            "history",
            &format!("{}/", directory.path().join("out/history").display()),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    context
        .register_parquet(
            "result",
            directory.path().join("out/congestion.parquet").to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        sum(&context, "SELECT sum(vehicles) FROM result").await,
        sum(&context, "SELECT sum(vehicles) FROM history").await
    );
    assert_eq!(sum(&context, "SELECT count(*) FROM history").await as u64, windows);
    let hours = "SELECT count(*) FROM (SELECT DISTINCT camera, date_trunc('hour', window_end) FROM history)";
    assert_eq!(sum(&context, hours).await as usize, run.rows, "one row per camera and hour");
    let batches = context.sql("SELECT vehicles, congested FROM result").await.unwrap().collect().await.unwrap();
    for batch in batches {
        let vehicles = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let congested = batch.column(1).as_any().downcast_ref::<BooleanArray>().unwrap();
        for row in 0..batch.num_rows() {
            assert_eq!(congested.value(row), vehicles.value(row) > 100);
            assert!(!congested.is_null(row));
        }
    }
    // The result's schema is the dataset's.
    let schema = context.table("result").await.unwrap().schema().as_arrow().clone();
    let names: Vec<&str> = schema.fields().iter().map(|field| field.name().as_str()).collect();
    assert_eq!(names, ["camera", "window_end", "vehicles", "avg_speed", "congested"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_errors_say_where_they_are_in_the_query() {
    let directory = tempfile::tempdir().unwrap();
    let broken = APP.replace("sum(vehicles) AS vehicles, avg(avg_speed)", "sum(vehicle) AS vehicles, avg(avg_speed)");
    // `stratum check` finds it before anything runs; DataFusion, should such a query reach it, says where as well.
    let with_errors = |text: &str| {
        let checked = stratum_lang::check_text("hourly.stratum", text);
        let found = checked.diagnostics.iter().find(|diagnostic| diagnostic.code == stratum_lang::Code::QueryError);
        assert!(found.is_some(), "the checker lets through:\n{text}");
        checked.application
    };
    let application = with_errors(&broken);
    run_pipeline(&application, directory.path()).await;
    let error = stratum_batch::run(&application, "hourly", directory.path()).await.unwrap_err();
    let stratum_batch::Error::Query { message, line, column, .. } = &error else { panic!("{error}") };
    assert!(message.contains("vehicle"), "{message}");
    assert_eq!((*line, *column), (Some(3), Some(16)), "{message}");

    let syntax = APP.replace("GROUP BY camera", "GROUP camera");
    let application = with_errors(&syntax);
    let error = stratum_batch::run(&application, "hourly", directory.path()).await.unwrap_err();
    let stratum_batch::Error::Query { line, .. } = &error else { panic!("{error}") };
    assert_eq!(*line, Some(6), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_data_is_a_clear_error() {
    let directory = tempfile::tempdir().unwrap();
    let error = stratum_batch::run(&checked(APP), "hourly", directory.path()).await.unwrap_err();
    assert!(error.to_string().contains("table `history` has no data yet"), "{error}");
}

/// `every = 1 h` counts on the application's clock: at 3,600 times the wall clock an hourly batch runs every second,
/// never before its time. (At the wall clock's pace the three runs would take three hours.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hourly_batch_runs_every_hour_of_the_applications_clock() {
    let application = checked(APP);
    let directory = tempfile::tempdir().unwrap();
    run_pipeline(&application, directory.path()).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = std::time::Instant::now();
    let mut runs = Vec::new();
    let names = ["hourly".to_string()];
    stratum_batch::schedule::run_on_schedule(
        &application,
        directory.path(),
        &names,
        3600.0,
        stopped,
        |name, result| {
            assert_eq!(name, "hourly");
            assert!(result.is_ok(), "{result:?}");
            runs.push(started.elapsed());
            if runs.len() == 3 {
                stop.send_replace(true);
            }
        },
    )
    .await;
    assert_eq!(runs.len(), 3);
    // Each run starts at its due time (one, two, three seconds in) or later, when the one before took longer.
    for (index, ran) in runs.iter().enumerate() {
        assert!(ran.as_secs_f64() >= (index + 1) as f64, "run {} at {ran:?}: {runs:?}", index + 1);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(600), "{runs:?}");
}
