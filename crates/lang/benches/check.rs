//! Benchmark: parse and check a generated application of 10,000 components (about 100,000 lines).
//! Goal (issue 2): under 200 ms on one core. Run with `cargo bench -p stratum-lang --bench check`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

/// A realistic large application: per site an edge node, a source, two streams, a sink, a service; one model.
pub fn generate(components: usize) -> String {
    let mut text = String::with_capacity(components * 400);
    text.push_str("app large \"Generated benchmark application\"\n\n");
    text.push_str("schema Reading {\n  sensor: string\n  ts: timestamp\n  value: float\n  kind: string\n  owner: string private\n}\n\n");
    text.push_str("schema Row {\n  sensor: string\n  window_end: timestamp\n  mean: float\n  alarm: bool\n}\n\n");
    text.push_str("dataset history {\n  schema = Row\n  path = \"data/history.parquet\"\n  rows = 100000\n}\n\n");
    text.push_str("model alarm: classifier {\n  data = history\n  target = alarm\n  features = [hour_of_day(window_end), mean]\n  candidates {\n    random_forest {\n      trees = [50, 100]\n    }\n  }\n  evaluate = kfold(5, stratified) by f1\n}\n\n");
    text.push_str("link edge -> fog {\n  latency = 5 ms\n  bandwidth = 100 Mbit/s\n}\n\n");
    let sites = components.div_ceil(5);
    for site in 0..sites {
        text.push_str(&format!(
            "node edge_{site} {{\n  tier = edge\n  cpu = 4\n  memory = 4 GiB\n  arch = aarch64\n  labels = {{ site: \"s{site}\" }}\n}}\n\n\
             source readings_{site}: mqtt {{\n  topic = \"site/{site}/readings\"\n  schema = Reading\n  rate = 20/s\n  on = edge_{site}\n  buffer {{\n    max = 256 MiB\n    ttl = 1 h\n    when_full = drop_oldest\n  }}\n}}\n\n\
             stream filtered_{site} {{\n  from = readings_{site}\n  where = value > 0.5 and kind in [\"a\", \"b\"]\n  keep = [sensor, ts, value]\n  on = edge\n}}\n\n\
             stream per_minute_{site} {{\n  from = filtered_{site}\n  window = tumbling(1 min) by sensor\n  select {{\n    mean = avg(value)\n    peak = max(value)\n    n = count()\n  }}\n  on = fog\n}}\n\n\
             sink out_{site}: parquet {{\n  from = per_minute_{site}\n  path = \"out/{site}\"\n}}\n\n\
             service alarm_{site}: inference {{\n  model = alarm\n  input = per_minute_{site}\n  on = fog\n  slo {{\n    p99 <= 20 ms\n  }}\n  scale {{\n    min = 0\n    max = 4\n    idle = 5 min\n  }}\n}}\n\n"
        ));
    }
    text
}

fn bench(criterion: &mut Criterion) {
    let text = generate(10_000);
    let lines = text.lines().count();
    let checked = stratum_lang::check_text("large.stratum", &text);
    assert!(!checked.has_errors(), "the generated application must be clean");
    let mut group =
        criterion.benchmark_group(format!("check 10k components ({lines} lines, {} KiB)", text.len() / 1024));
    group.sample_size(20);
    group.bench_function("parse", |bench| {
        bench.iter(|| stratum_lang::syntax::parser::parse(stratum_lang::source::FileId(0), black_box(&text)))
    });
    group.bench_function("parse + check", |bench| {
        bench.iter(|| stratum_lang::check_text("large.stratum", black_box(&text)))
    });
    group.bench_function("format", |bench| bench.iter(|| stratum_lang::format::format(black_box(&text))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
