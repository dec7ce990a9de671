//! Benchmark (issue 19): a simulated day of the traffic example scaled to 5,000 cameras, with the edge-to-fog
//! links cut for ten minutes at 8 h — the run `stratum simulate examples/traffic/traffic.stratum --for 1d
//! --scale edge=5000 --partition edge->fog@8h+10m` makes. Goal: under a minute. Prints the time of planning and
//! simulating together, and the report's headline figures.
//!
//! Run with `cargo bench -p stratum-sim --bench city_day` (`STRATUM_SIM_CAMERAS` sets the number of cameras).

use std::time::Instant;
use stratum_sim::{Partition, ScaleTier, Scenario, simulate};

fn main() {
    let cameras: u32 = std::env::var("STRATUM_SIM_CAMERAS").ok().and_then(|text| text.parse().ok()).unwrap_or(5_000);
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/traffic/traffic.stratum");
    let checked = stratum_lang::check(
        file,
        &std::fs::read(file).expect("the traffic example"),
        &stratum_test_support::DiskLoader,
    );
    assert!(!checked.has_errors(), "the traffic example checks");
    let scenario = Scenario {
        duration: 86_400.0,
        scale: vec![ScaleTier::parse(&format!("edge={cameras}")).expect("a scale")],
        partitions: vec![Partition::parse("edge->fog@8h+10m").expect("a partition")],
        ..Scenario::default()
    };
    let started = Instant::now();
    let report = simulate(&checked.application, &scenario).expect("the city simulates");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{cameras} cameras, a day in steps of {} s: {seconds:.1} s ({} machines, {} instances, {:.3e} records made, {:.3e} dropped)",
        report.step_seconds, report.machines, report.instances, report.records_made, report.records_dropped
    );
    for path in &report.paths {
        println!("  {}: p50 {:.1} ms, p99 {:.1} ms", path.path, path.p50_ms, path.p99_ms);
    }
}
