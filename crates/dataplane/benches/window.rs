//! Events per second through filter → keyed tumbling window (count, avg) with 10,000 keys, on one core: the
//! stream operator alone, fed batches of 1,024 records as the runtime feeds it; the same window deciding as well
//! (conditional aggregates, `if`, `clamp`). And what a checkpoint of those open windows costs: saving them as the
//! runtime writes them (about once a second), and taking them up.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use stratum_core::eval::Datum;
use stratum_dataplane::component::{BuildContext, Context, DeadLetters, Operator};
use stratum_dataplane::metrics::Registry;
use stratum_dataplane::record::Record;
use stratum_dataplane::stream::StreamOperator;

const APP: &str = r#"app bench
schema Reading { sensor: string  ts: timestamp  value: float }
source readings: generator { schema = Reading }
stream per_sensor {
  from = readings
  where = value >= 0
  window = tumbling(1 min) by sensor
  select {
    n = count()
    mean = avg(value)
  }
}
stream decided {
  from = readings
  where = value >= 0
  window = tumbling(1 min) by sensor
  select {
    n = count()
    mean = avg(value)
    high = count_if(value > 50)
    high_sum = sum_if(value, value > 50)
    level = if avg(value) > 50 then "high" else "low"
    spread = clamp(max(value) - min(value), 0, 60)
  }
}
sink out: jsonl { from = per_sensor  path = "out.jsonl" }
sink decisions: jsonl { from = decided  path = "decisions.jsonl" }
"#;

const KEYS: usize = 10_000;
const EVENTS: usize = 1 << 20;
const BATCH: usize = 1024;

fn events() -> Vec<Vec<Record>> {
    let sensors: Vec<String> = (0..KEYS).map(|index| format!("sensor-{index:05}")).collect();
    let mut state = 42u64;
    let mut records = Vec::with_capacity(EVENTS);
    for index in 0..EVENTS {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let value = ((state >> 33) % 1000) as f64 / 10.0 - 5.0; // about 5% negative: filtered out
        // 20,000 events per second of event time: a window closes every 1.2 million events.
        records.push(vec![
            Datum::Text(sensors[(state >> 17) as usize % KEYS].clone()),
            Datum::Timestamp(1_767_225_600_000 + index as i64 / 20),
            Datum::Float(value),
        ]);
    }
    records.chunks(BATCH).map(<[Record]>::to_vec).collect()
}

fn window(criterion: &mut Criterion) {
    let checked = stratum_lang::check_text("bench.stratum", APP);
    assert!(!checked.has_errors());
    let application = checked.application;
    let directory = std::env::temp_dir();
    let build = BuildContext {
        application: &application,
        base_dir: &directory,
        fast_generators: true,
        generator_limit: None,
        simulated_seconds: None,
        time_scale: 1.0,
        model_store: None,
        mqtt_broker: None,
        data_dir: None,
    };
    let registry = Registry::default();
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let context = Context {
        component: "per_sensor".into(),
        metrics: registry.register("per_sensor", "stream"),
        shutdown,
        dead_letters: DeadLetters::default(),
    };
    let batches = events();
    let mut group = criterion.benchmark_group("stream");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    let stream = |name: &str| application.streams.iter().find(|stream| stream.name == name).unwrap();
    for (name, item) in [
        ("filter_tumbling_window_10k_keys", stream("per_sensor")),
        ("filter_tumbling_window_deciding_10k_keys", stream("decided")),
    ] {
        group.bench_function(name, |bencher| {
            bencher.iter_batched(
                || batches.iter().map(|batch| Arc::new(batch.clone())).collect::<Vec<_>>(),
                |batches| {
                    let mut operator = StreamOperator::new(item, &build).unwrap();
                    let mut out = Vec::new();
                    for batch in batches {
                        operator.process(0, batch, &mut out, &context);
                    }
                    operator.finish(&mut out, &context);
                    out.len()
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();

    // Every key with an open window: the first 200,000 events are ten seconds of event time, within one minute.
    let mut operator = StreamOperator::new(stream("per_sensor"), &build).unwrap();
    let mut out = Vec::new();
    for batch in batches.iter().take(200_000 / BATCH) {
        operator.process(0, Arc::new(batch.clone()), &mut out, &context);
    }
    assert!(out.is_empty(), "no window closed yet");
    let bytes = operator.save().unwrap();
    let mut group = criterion.benchmark_group("checkpoint");
    group.sample_size(20);
    group.bench_function("save_10k_keys", |bencher| bencher.iter(|| operator.save().unwrap().len()));
    group.bench_function("take_up_10k_keys", |bencher| {
        bencher.iter(|| {
            let mut restored = StreamOperator::new(stream("per_sensor"), &build).unwrap();
            restored.restore(&bytes).unwrap();
        })
    });
    group.finish();
    eprintln!("a checkpoint of {KEYS} keys' open windows is {} bytes", bytes.len());
}

criterion_group!(benches, window);
criterion_main!(benches);
