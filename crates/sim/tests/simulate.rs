//! The simulator against figures worked out by hand from the applications beside this file (tests/apps): rates,
//! link use and latency in steady state, what a cut link queues and how it drains, what a full buffer drops or
//! holds back, what a lost machine costs and where its work goes, and a scaled tier.

use stratum_core::ir::Application;
use stratum_sim::{Failure, Partition, Report, ScaleTier, Scenario, simulate};

fn app(file: &str) -> Application {
    let path = format!("{}/tests/apps/{file}", env!("CARGO_MANIFEST_DIR"));
    stratum_test_support::application_from_text(file, &std::fs::read_to_string(path).unwrap())
}

fn buffered(when_full: &str) -> Application {
    let path = format!("{}/tests/apps/relay_buffered.stratum", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap().replace("WHEN_FULL", when_full);
    stratum_test_support::application_from_text("relay_buffered.stratum", &text)
}

fn scenario(seconds: f64) -> Scenario {
    Scenario { duration: seconds, step: Some(0.1), ..Scenario::default() }
}

fn close(actual: f64, expected: f64, within: f64, what: &str) {
    assert!((actual - expected).abs() <= within, "{what}: {actual} where {expected} ± {within} was expected");
}

fn path<'r>(report: &'r Report, name: &str) -> &'r stratum_sim::report::PathReport {
    report.paths.iter().find(|path| path.path == name).unwrap_or_else(|| panic!("no path {name}: {report:#?}"))
}

#[test]
fn in_steady_state_every_record_arrives_after_the_links_latency() {
    let report = simulate(&app("relay.stratum"), &scenario(60.0)).unwrap();
    close(report.records_made, 6_000.0, 1e-6, "records made (100/s for 60 s)");
    close(report.records_delivered, 6_000.0, 1e-6, "records delivered");
    assert_eq!((report.records_dropped, report.records_held_back, report.records_in_flight), (0.0, 0.0, 0.0));
    let kept = path(&report, "readings → relayed → kept");
    close(kept.records, 6_000.0, 1e-6, "records at the sink");
    // The edge-to-fog link's 5 ms, within the latency histogram's bucket (12 % wide).
    close(kept.p50_ms, 5.0, 0.6, "p50");
    close(kept.max_ms, 5.0, 1e-6, "max");
    let link = report.links.iter().find(|link| link.from == "edge").expect("the edge link carried the readings");
    close(link.bytes, 600_000.0, 1e-3, "bytes on the link (6,000 × 100 B)");
    close(link.mean_utilisation, 600_000.0 * 8.0 / (10e6 * 60.0), 1e-9, "mean use of 10 Mbit/s");
    assert!(report.links.iter().all(|link| link.from != "fog"), "nothing goes to the cloud: {:?}", report.links);
}

#[test]
fn a_cut_link_queues_on_the_producer_and_drains_once_it_heals() {
    let mut scenario = scenario(60.0);
    scenario.partitions.push(Partition::parse("edge->fog@10s+20s").unwrap());
    let report = simulate(&app("relay.stratum"), &scenario).unwrap();
    close(report.records_delivered, 6_000.0, 1e-6, "everything arrives in the end");
    let buffer = &report.buffers[0];
    assert_eq!((buffer.from.as_str(), buffer.to.as_str(), buffer.paths), ("readings", "relayed", 1));
    // 20 s of 100 records of 100 B wait on the camera.
    close(buffer.peak_bytes_one_path, 200_000.0, 1_000.0, "peak of the camera's path log");
    let kept = path(&report, "readings → relayed → kept");
    close(kept.max_ms, 20_005.0, 100.0, "the oldest record waited the whole cut");
    close(kept.p50_ms, 5.0, 0.6, "most records were not held up");
    let link = report.links.iter().find(|link| link.from == "edge").unwrap();
    close(link.down_seconds, 20.0, 0.11, "seconds cut");
    let said: Vec<&str> = report.timeline.iter().map(|happening| happening.what.as_str()).collect();
    assert_eq!(said, ["edge -> fog cut for 20.0 s", "edge -> fog heals"], "{said:?}");
    close(report.timeline[0].at, 10.0, 0.11, "cut at");
    close(report.timeline[1].at, 30.0, 0.11, "healed at");

    // The series for plots: 600 steps of 0.1 s in 200 intervals of three.
    let series = &report.series;
    assert_eq!(series.seconds.len(), 200, "600 steps in intervals of 3");
    let at = |seconds: f64| series.seconds.iter().position(|end| (*end - seconds).abs() < 1e-6).unwrap();
    close(series.arriving_per_second[at(6.0)], 100.0, 1e-6, "arriving in steady state");
    close(series.arriving_per_second[at(20.1)], 0.0, 1e-6, "arriving during the cut");
    close(series.link_use[0][at(20.1)], 0.0, 1e-9, "the link's use during the cut");
    close(series.link_use[0][at(6.0)], 100.0 * 800.0 / 10e6, 1e-9, "the link's use in steady state");
    close(series.buffered_bytes[at(29.7)], 197_000.0, 1_000.0, "19.7 s of records waiting before the heal");
    close(series.buffered_bytes[at(30.3)], 0.0, 1e-6, "nothing waits after it");
    close(series.oldest_arrival_seconds[at(30.3)], 20.0, 0.2, "the oldest arrival right after the heal");
}

#[test]
fn a_full_drop_oldest_buffer_drops_what_does_not_fit_and_a_reject_buffer_holds_the_source_back() {
    let mut cut = scenario(60.0);
    cut.partitions.push(Partition::parse("edge->fog@10s+20s").unwrap());
    // 2,000 records wait; the buffer holds 102,400 B / 100 B = 1,024 of them.
    let dropped = simulate(&buffered("drop_oldest"), &cut).unwrap();
    close(dropped.records_dropped, 976.0, 11.0, "dropped");
    close(dropped.records_delivered, 6_000.0 - 976.0, 11.0, "delivered");
    assert_eq!(dropped.records_held_back, 0.0);
    close(dropped.buffers[0].peak_bytes_one_path, 102_400.0, 1e-3, "a full buffer");
    // The oldest went: what arrives after the cut waited at most the buffer's 10.24 s.
    close(path(&dropped, "readings → relayed → kept").max_ms, 10_240.0, 150.0, "oldest kept");

    let held = simulate(&buffered("reject"), &cut).unwrap();
    close(held.records_held_back, 976.0, 11.0, "held back");
    assert_eq!(held.records_dropped, 0.0);
    close(held.records_delivered, 6_000.0 - 976.0, 11.0, "delivered");
    close(path(&held, "readings → relayed → kept").max_ms, 20_005.0, 100.0, "the first ones waited the whole cut");
}

#[test]
fn a_scaled_tier_multiplies_per_node_sources_and_what_crosses_its_link() {
    let mut scaled = scenario(60.0);
    scaled.scale.push(ScaleTier::parse("edge=100").unwrap());
    let report = simulate(&app("per_camera.stratum"), &scaled).unwrap();
    assert_eq!((report.machines, report.instances), (101, 102));
    close(report.records_made, 100.0 * 20.0 * 60.0, 1e-3, "100 cameras × 20/s × 60 s");
    close(report.records_delivered, 120_000.0, 1e-3, "delivered");
    // 2,000 records a second of 1,600 bits: 3.2 of the link's 10 Mbit/s.
    let link = report.links.iter().find(|link| link.from == "edge").unwrap();
    close(link.mean_utilisation, 0.32, 1e-6, "3.2 of 10 Mbit/s");

    // 500 cameras want 16 Mbit/s of the shared 10: `stratum plan` refuses that, and the simulation shows what
    // it would do: the link carries 6,250 records a second, the rest waits on the cameras.
    let mut crowded = scenario(60.0);
    crowded.scale.push(ScaleTier::parse("edge=500").unwrap());
    let report = simulate(&app("per_camera.stratum"), &crowded).unwrap();
    assert!(report.notes[0].contains("no placement keeps within the links' bandwidth"), "{:?}", report.notes);
    close(report.records_delivered, 6_250.0 * 60.0, 1.0, "delivered at the link's pace");
    close(report.records_in_flight, (10_000.0 - 6_250.0) * 60.0, 1.0, "waiting on the cameras");
    let link = report.links.iter().find(|link| link.from == "edge").unwrap();
    close(link.peak_utilisation, 1.0, 1e-9, "full");
}

#[test]
fn after_a_cut_the_backlog_drains_at_the_link_s_spare_bandwidth() {
    // 300 cameras: 6,000 records a second of 1,600 bits, 9.6 of 10 Mbit/s. A 30 s cut queues 180,000 records;
    // the spare 0.4 Mbit/s (250 records a second) drains them in 720 s.
    let mut cut = Scenario { duration: 900.0, step: Some(0.5), ..Scenario::default() };
    cut.scale.push(ScaleTier::parse("edge=300").unwrap());
    cut.partitions.push(Partition::parse("edge->fog@60s+30s").unwrap());
    let report = simulate(&app("per_camera.stratum"), &cut).unwrap();
    close(report.records_made, 6_000.0 * 900.0, 1e-3, "made");
    close(report.records_in_flight, 0.0, 1.0, "drained by the end");
    let buffer = &report.buffers[0];
    close(buffer.peak_bytes_all, 180_000.0 * 200.0, 200.0 * 200.0, "all cameras' logs at the heal");
    let link = report.links.iter().find(|link| link.from == "edge").unwrap();
    close(link.peak_utilisation, 1.0, 1e-9, "full while it drains");
    // First in, first out: the oldest record waited the cut, and one queued at the heal waits for the 180,000
    // ahead of it at 6,250 a second (28.8 s): the wait never passes the cut's 30 s, though the backlog lasts.
    close(path(&report, "readings → relayed → kept").max_ms / 1000.0, 30.0, 0.6, "the longest wait, in seconds");

    cut.duration = 600.0;
    let report = simulate(&app("per_camera.stratum"), &cut).unwrap();
    close(report.records_in_flight, 180_000.0 - 250.0 * 510.0, 300.0, "still draining at 600 s");
}

#[test]
fn a_lost_machine_s_work_waits_for_a_legal_machine_and_what_waited_for_it_arrives() {
    // The fog is the only machine the stream and its sink may run on: they wait, the camera keeps what they read,
    // and once the fog is back they are placed there again and the backlog arrives.
    let mut failing = scenario(60.0);
    failing.failures.push(Failure::parse("fog1@10s+30s").unwrap());
    let report = simulate(&app("relay.stratum"), &failing).unwrap();
    assert_eq!(
        said(&report),
        [
            "10.0 fog1 stops",
            "20.0 fog1 counted lost (no heartbeat for 10.0 s)",
            "20.0 relayed fits on no machine left; what it reads waits for it",
            "20.0 kept fits on no machine left; what it reads waits for it",
            "40.0 fog1 is back; what moved away stays where it went, its own sources go on",
            "40.0 relayed placed again on fog1",
            "40.0 kept placed again on fog1",
        ]
    );
    close(report.records_delivered, 6_000.0, 1e-6, "delivered");
    assert_eq!(report.records_lost_with_machines, 0.0);
    close(path(&report, "readings → relayed → kept").max_ms, 30_005.0, 100.0, "the first record made after the stop");

    // With a policy that sends them to the cloud, they move there once the fog is counted lost.
    let text = std::fs::read_to_string(format!("{}/tests/apps/relay.stratum", env!("CARGO_MANIFEST_DIR"))).unwrap()
        + "policy survive_fog_loss { target = [relayed, kept]  when = node_lost  then = migrate(cloud) }\n";
    let migrating = stratum_test_support::application_from_text("relay.stratum", &text);
    let mut failing = scenario(60.0);
    failing.failures.push(Failure::parse("fog1@10s").unwrap());
    let report = simulate(&migrating, &failing).unwrap();
    assert_eq!(
        said(&report),
        [
            "10.0 fog1 stops",
            "20.0 fog1 counted lost (no heartbeat for 10.0 s)",
            "20.0 relayed placed again on cloud1",
            "20.0 kept placed again on cloud1",
        ]
    );
    close(report.records_delivered, 6_000.0, 1e-6, "delivered");
    // Edge to fog to cloud is 45 ms, after up to 10 s waiting for the loss to be seen.
    close(path(&report, "readings → relayed → kept").max_ms, 10_045.0, 100.0, "the first record made after the stop");
}

fn said(report: &Report) -> Vec<String> {
    report.timeline.iter().map(|happening| format!("{:.1} {}", happening.at, happening.what)).collect()
}

#[test]
fn what_cannot_be_simulated_says_what_to_change() {
    let relay = app("relay.stratum");
    for (scenario, expected) in [
        (
            Scenario { failures: vec![Failure::parse("fog9@1s").unwrap()], ..scenario(10.0) },
            "no machine is named `fog9`",
        ),
        (
            Scenario { partitions: vec![Partition::parse("edge->moon@1s+1s").unwrap()], ..scenario(10.0) },
            "no link joins `edge` and `moon`",
        ),
        (Scenario { duration: 0.0, ..scenario(10.0) }, "longer than zero"),
    ] {
        let message = stratum_core::error_chain(&simulate(&relay, &scenario).unwrap_err());
        assert!(message.contains(expected), "{message}");
    }
    let no_cloud = Scenario { scale: vec![ScaleTier::parse("cloud=2").unwrap()], ..scenario(10.0) };
    let message = stratum_core::error_chain(&simulate(&app("per_camera.stratum"), &no_cloud).unwrap_err());
    assert!(message.contains("the file declares no cloud node to copy"), "{message}");
    let text =
        std::fs::read_to_string(format!("{}/tests/apps/relay.stratum", env!("CARGO_MANIFEST_DIR"))).unwrap().replace(
            "stream relayed { from = readings  on = fog }",
            "stream relayed { from = readings  on = fog  cpu = 64 }",
        );
    let too_big = stratum_test_support::application_from_text("relay.stratum", &text);
    let message = stratum_core::error_chain(&simulate(&too_big, &scenario(10.0)).unwrap_err());
    assert!(message.contains("no placement fits: `relayed` fits on no machine (needs 64 cores"), "{message}");
}

#[test]
fn a_service_answers_in_its_models_measured_time_and_waits_as_an_m_m_1_queue() {
    // 100 requests a second, one replica: 2 ms a prediction (measured) plus the 80 µs HTTP path is a load of about
    // 21 %; the chance of waiting is that load, so the median request does not wait, and the 99th percentile
    // waits ln(0.208 / 0.01) / (1 / 2.08 ms - 100/s) = 8.0 ms: 10.05 ms in all (the simulator draws the
    // distribution in bands, its p99 band's middle is the 98.9th percentile: 9.8 ms).
    let mut measured = scenario(600.0);
    measured.step = Some(1.0);
    measured.prediction_seconds =
        stratum_sim::measured_predictions(&app("served.stratum"), |model| (model == "busy").then_some(0.002));
    let report = simulate(&app("served.stratum"), &measured).unwrap();
    let service = &report.services[0];
    close(service.requests, 100.0 * 600.0, 1e-6, "requests: the objective's throughput for 10 minutes");
    close(service.p50_ms, 2.08, 0.01, "the median: the prediction and the HTTP path");
    close(service.p99_ms, 10.05, 0.4, "p99");
    assert!(service.objective_missed < 0.01, "{}", service.objective_missed);
    assert!(report.notes.iter().all(|note| !note.contains("no measured profile")), "{:?}", report.notes);

    // Without a measured profile, the planner's estimate stands in, and the report says so.
    let estimated = simulate(&app("served.stratum"), &scenario(60.0)).unwrap();
    assert!(estimated.notes.iter().any(|note| note.contains("no measured profile for the model of flags")));
}
