//! The stream operator on hand-made events: every window shape, lateness, the join, projections and predictions,
//! each checked against the values a person would compute.

use std::sync::Arc;
use std::time::{Duration, Instant};
use stratum_core::eval::{Datum, parse_timestamp};
use stratum_core::ir::Application;
use stratum_core::types::DataType;
use stratum_dataplane::component::{BuildContext, Context, DeadLetters, Operator};
use stratum_dataplane::metrics::Registry;
use stratum_dataplane::record::Record;
use stratum_dataplane::stream::StreamOperator;

mod common;

fn checked(text: &str) -> Application {
    common::application_from_text("test.stratum", text)
}

struct Harness {
    operator: StreamOperator,
    context: Context,
    out: Vec<Record>,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Harness {
    fn new(application: &Application, stream: &str, model_store: Option<&std::path::Path>) -> Harness {
        let directory = std::env::temp_dir();
        let build = BuildContext {
            application,
            base_dir: &directory,
            fast_generators: true,
            generator_limit: None,
            simulated_seconds: None,
            time_scale: 1.0,
            model_store,
            mqtt_broker: None,
            data_dir: None,
        };
        let item = application.streams.iter().find(|item| item.name == stream).unwrap();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let context = Context {
            component: stream.into(),
            metrics: Registry::default().register(stream, "stream"),
            shutdown,
            dead_letters: DeadLetters::default(),
        };
        Harness { operator: StreamOperator::new(item, &build).unwrap(), context, out: Vec::new(), _stop: stop }
    }

    fn send(&mut self, port: usize, records: Vec<Record>) -> Vec<Record> {
        self.operator.process(port, Arc::new(records), &mut self.out, &self.context);
        std::mem::take(&mut self.out)
    }

    fn finish(&mut self) -> Vec<Record> {
        self.operator.finish(&mut self.out, &self.context);
        std::mem::take(&mut self.out)
    }

    fn dropped(&self) -> u64 {
        self.context.metrics.snapshot().dropped
    }
}

fn at(time: &str) -> Datum {
    Datum::Timestamp(parse_timestamp(time).unwrap())
}

fn reading(key: &str, time: &str, value: f64) -> Record {
    vec![Datum::Text(key.into()), at(time), Datum::Float(value)]
}

const SCHEMA: &str = "app test\nschema Reading { key: string  ts: timestamp  value: float }\nsource readings: generator { schema = Reading }\n";

fn windowed(window: &str, lateness: &str) -> Application {
    checked(&format!(
        "{SCHEMA}stream s {{\n  from = readings\n  window = {window} by key\n  lateness = {lateness}\n  select {{\n    n = count()\n    total = sum(value)\n    low = min(value)\n    spread = max(value) - min(value)\n  }}\n}}\nsink out: jsonl {{ from = s  path = \"o.jsonl\" }}\n"
    ))
}

/// (key, window_start, window_end, n, total) of each emitted row.
fn rows(records: &[Record]) -> Vec<(String, String, String, i64, f64)> {
    records
        .iter()
        .map(|record| {
            let text = |value: &Datum| stratum_core::eval::text_of(value);
            let Datum::Int(n) = record[3] else { panic!("{record:?}") };
            (text(&record[0]), text(&record[1]), text(&record[2]), n, record[4].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn tumbling_windows_close_when_the_watermark_passes_their_end_and_late_records_are_dropped() {
    let application = windowed("tumbling(1 min)", "10 s");
    let mut harness = Harness::new(&application, "s", None);
    let first = harness.send(
        0,
        vec![
            reading("a", "2026-01-01T00:00:05Z", 1.0),
            reading("b", "2026-01-01T00:00:30Z", 2.0),
            reading("a", "2026-01-01T00:00:59Z", 3.0),
        ],
    );
    assert!(first.is_empty());
    // 00:01:05 puts the watermark at 00:00:55: the first minute is still open, and a record 4 s late still counts.
    assert!(
        harness
            .send(0, vec![reading("a", "2026-01-01T00:01:05Z", 10.0), reading("b", "2026-01-01T00:00:58Z", 4.0)])
            .is_empty()
    );
    // 00:01:20 puts it at 00:01:10: the first minute closes.
    let closed = harness.send(0, vec![reading("b", "2026-01-01T00:01:20Z", 20.0)]);
    assert_eq!(
        rows(&closed),
        [
            ("a".into(), "2026-01-01T00:00:00Z".into(), "2026-01-01T00:01:00Z".into(), 2, 4.0),
            ("b".into(), "2026-01-01T00:00:00Z".into(), "2026-01-01T00:01:00Z".into(), 2, 6.0),
        ]
    );
    // A computed expression over aggregates: spread = max - min.
    assert_eq!(closed[0][6], Datum::Float(2.0));
    // Too late for its window: dropped and counted.
    assert!(harness.send(0, vec![reading("a", "2026-01-01T00:00:50Z", 100.0)]).is_empty());
    assert_eq!(harness.dropped(), 1);
    let rest = harness.finish();
    assert_eq!(
        rows(&rest),
        [
            ("a".into(), "2026-01-01T00:01:00Z".into(), "2026-01-01T00:02:00Z".into(), 1, 10.0),
            ("b".into(), "2026-01-01T00:01:00Z".into(), "2026-01-01T00:02:00Z".into(), 1, 20.0)
        ]
    );
}

#[test]
fn sliding_windows_count_each_record_in_every_window_that_covers_it() {
    let application = windowed("sliding(1 min, 30 s)", "0 s");
    let mut harness = Harness::new(&application, "s", None);
    // The last record moves the watermark to 00:01:10: the two windows ending before it close at once.
    let closed = harness.send(
        0,
        vec![
            reading("a", "2026-01-01T00:00:10Z", 1.0),
            reading("a", "2026-01-01T00:00:40Z", 2.0),
            reading("a", "2026-01-01T00:01:10Z", 4.0),
        ],
    );
    assert_eq!(closed.len(), 2);
    let all = [closed, harness.finish()].concat();
    let windows: Vec<(String, i64, f64)> =
        rows(&all).into_iter().map(|(_, start, _, n, total)| (start[11..19].to_string(), n, total)).collect();
    assert_eq!(
        windows,
        [
            ("23:59:30".into(), 1, 1.0),
            ("00:00:00".into(), 2, 3.0),
            ("00:00:30".into(), 2, 6.0),
            ("00:01:00".into(), 1, 4.0),
        ]
    );
}

#[test]
fn session_windows_grow_while_records_keep_coming_and_merge_when_a_record_bridges_two() {
    let application = windowed("session(30 s)", "1 min");
    let mut harness = Harness::new(&application, "s", None);
    harness.send(0, vec![reading("a", "2026-01-01T00:00:00Z", 1.0), reading("a", "2026-01-01T00:00:50Z", 2.0)]);
    // Two sessions of `a` so far (00:00:00 and 00:00:50, 50 s apart); 00:00:25 is within 30 s of both: one session.
    harness.send(0, vec![reading("a", "2026-01-01T00:00:25Z", 4.0), reading("b", "2026-01-01T00:00:10Z", 8.0)]);
    // 00:05:00 moves the watermark to 00:04:00: both sessions have ended (last record + gap), in order of end.
    let closed = harness.send(0, vec![reading("c", "2026-01-01T00:05:00Z", 0.0)]);
    assert_eq!(
        rows(&closed),
        [
            ("b".into(), "2026-01-01T00:00:10Z".into(), "2026-01-01T00:00:40Z".into(), 1, 8.0),
            ("a".into(), "2026-01-01T00:00:00Z".into(), "2026-01-01T00:01:20Z".into(), 3, 7.0),
        ]
    );
    assert_eq!(rows(&harness.finish()).len(), 1);
}

#[test]
fn an_idle_stream_closes_its_windows_as_wall_clock_time_passes() {
    let application = windowed("tumbling(1 s)", "0 s");
    let mut harness = Harness::new(&application, "s", None);
    assert!(harness.send(0, vec![reading("a", "2026-01-01T00:00:00.500Z", 1.0)]).is_empty());
    let mut out = Vec::new();
    harness.operator.tick(Instant::now() + Duration::from_millis(600), &mut out, &harness.context);
    assert_eq!(rows(&out).len(), 1, "half a second of silence moves the watermark past the window's end");
}

/// A tumbling 1 s window by key with no lateness, and `idle` as given (none: the default).
fn with_idle(idle: Option<&str>) -> Application {
    let idle = idle.map(|idle| format!("  idle = {idle}\n")).unwrap_or_default();
    checked(&format!(
        "{SCHEMA}stream s {{\n  from = readings\n  window = tumbling(1 s) by key\n  lateness = 0 s\n{idle}  select {{\n    n = count()\n  }}\n}}\nsink out: jsonl {{ from = s  path = \"o.jsonl\" }}\n"
    ))
}

/// A producer slower than real time: a reading, two seconds of wall-clock silence, then the next reading of the
/// same window. What each `idle` does with it.
fn slow_producer(idle: Option<&str>) -> (Harness, Vec<Record>) {
    let application = with_idle(idle);
    let mut harness = Harness::new(&application, "s", None);
    let mut out = harness.send(0, vec![reading("a", "2026-01-01T00:00:00.100Z", 1.0)]);
    harness.operator.tick(Instant::now() + Duration::from_secs(2), &mut out, &harness.context);
    out.extend(harness.send(0, vec![reading("a", "2026-01-01T00:00:00.900Z", 1.0)]));
    out.extend(harness.finish());
    (harness, out)
}

#[test]
fn a_late_record_goes_to_the_dead_letters_with_why_never_silently() {
    let (harness, out) = slow_producer(None);
    assert_eq!(out.len(), 1, "the window closed on the idle tick, with the first reading only");
    assert_eq!(out[0][3], Datum::Int(1));
    assert_eq!(harness.dropped(), 1);
    let letters = harness.context.dead_letters.in_memory();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter: serde_json::Value = serde_json::from_str(&letters[0]).unwrap();
    assert_eq!(letter["component"], "s");
    let reason = letter["reason"].as_str().unwrap();
    assert!(reason.starts_with("too late for its window: event time 2026-01-01T00:00:00.900Z"), "{reason}");
    let raw: serde_json::Value = serde_json::from_str(letter["raw"].as_str().unwrap()).unwrap();
    assert_eq!(raw["key"], "a", "the record itself is kept: {raw}");
}

#[test]
fn idle_never_waits_for_event_time_and_a_long_idle_for_its_time() {
    for idle in ["never", "5 s"] {
        let (harness, out) = slow_producer(Some(idle));
        assert_eq!(harness.dropped(), 0, "idle = {idle}");
        assert_eq!(out.len(), 1, "idle = {idle}: one window");
        assert_eq!(out[0][3], Datum::Int(2), "idle = {idle}: with both readings");
        assert!(harness.context.dead_letters.in_memory().is_empty(), "idle = {idle}");
    }
    let application = with_idle(Some("1 s"));
    let mut harness = Harness::new(&application, "s", None);
    assert!(harness.send(0, vec![reading("a", "2026-01-01T00:00:00.100Z", 1.0)]).is_empty());
    let mut out = Vec::new();
    harness.operator.tick(Instant::now() + Duration::from_millis(500), &mut out, &harness.context);
    assert!(out.is_empty(), "half a second is not yet idle");
    harness.operator.tick(Instant::now() + Duration::from_secs(2), &mut out, &harness.context);
    assert_eq!(out.len(), 1, "two seconds are");
}

#[test]
fn joins_match_records_of_both_sides_within_the_duration() {
    let application = checked(
        "app test\nschema Count { camera: string  window_end: timestamp  vehicles: int }\nschema Weather { camera: string  ts: timestamp  rain: float }\nsource counts: generator { schema = Count }\nsource weather: generator { schema = Weather }\nstream joined {\n  from = counts\n  join = weather by camera within 5 min\n  select {\n    camera = camera\n    vehicles = vehicles\n    wet = rain > 0.5\n    at = ts\n  }\n}\nsink out: jsonl { from = joined  path = \"o.jsonl\" }\n",
    );
    let mut harness = Harness::new(&application, "joined", None);
    let count =
        |camera: &str, time: &str, vehicles: i64| vec![Datum::Text(camera.into()), at(time), Datum::Int(vehicles)];
    let weather = |camera: &str, time: &str, rain: f64| vec![Datum::Text(camera.into()), at(time), Datum::Float(rain)];
    // Weather first; then counts arrive and match it within 5 minutes, for their own camera only.
    assert!(
        harness
            .send(1, vec![weather("a", "2026-01-01T00:00:00Z", 1.0), weather("b", "2026-01-01T00:00:00Z", 0.0)])
            .is_empty()
    );
    let joined = harness.send(
        0,
        vec![
            count("a", "2026-01-01T00:03:00Z", 7),
            count("a", "2026-01-01T00:06:00Z", 9),
            count("b", "2026-01-01T00:01:00Z", 3),
        ],
    );
    assert_eq!(
        joined,
        [
            vec![Datum::Text("a".into()), Datum::Int(7), Datum::Bool(true), at("2026-01-01T00:00:00Z")],
            vec![Datum::Text("b".into()), Datum::Int(3), Datum::Bool(false), at("2026-01-01T00:00:00Z")],
        ]
    );
    // A later weather record matches the waiting counts of its camera.
    let joined = harness.send(1, vec![weather("a", "2026-01-01T00:07:00Z", 0.0)]);
    assert_eq!(joined.iter().map(|record| record[1].clone()).collect::<Vec<_>>(), [Datum::Int(7), Datum::Int(9)]);
}

#[test]
fn a_join_of_the_latest_match_lets_each_record_through_once_with_the_reading_in_force() {
    let application = checked(
        "app test\nschema Count { camera: string  window_end: timestamp  vehicles: int }\nschema Weather { camera: string  ts: timestamp  rain: float }\nsource counts: generator { schema = Count }\nsource weather: generator { schema = Weather }\nstream joined {\n  from = counts\n  join = latest(weather) by camera within 5 min\n  select {\n    camera = camera\n    vehicles = vehicles\n    rain = rain\n  }\n}\nsink out: jsonl { from = joined  path = \"o.jsonl\" }\n",
    );
    let mut harness = Harness::new(&application, "joined", None);
    let count =
        |camera: &str, time: &str, vehicles: i64| vec![Datum::Text(camera.into()), at(time), Datum::Int(vehicles)];
    let weather = |camera: &str, time: &str, rain: f64| vec![Datum::Text(camera.into()), at(time), Datum::Float(rain)];
    let joined =
        |camera: &str, vehicles: i64, rain: Datum| vec![Datum::Text(camera.into()), Datum::Int(vehicles), rain];
    // A count with no reading yet comes out at once, its weather missing.
    assert_eq!(harness.send(0, vec![count("a", "2026-01-01T00:00:30Z", 1)]), [joined("a", 1, Datum::Null)]);
    // Readings every minute: they join nothing already out, and wait for later counts.
    let readings: Vec<Record> = (0..10)
        .map(|minute| weather("a", &format!("2026-01-01T00:{minute:02}:00Z"), f64::from(minute)))
        .chain([weather("b", "2026-01-01T00:00:00Z", 50.0)])
        .collect();
    assert!(harness.send(1, readings).is_empty());
    // Each count once, with the latest reading of its camera at or before it — where the join of every match gave
    // one record per reading within 5 minutes on either side (up to 10 here). A reading older than 5 minutes is
    // no match.
    let out = harness.send(
        0,
        vec![
            count("a", "2026-01-01T00:05:00Z", 5),
            count("a", "2026-01-01T00:07:59Z", 7),
            count("b", "2026-01-01T00:04:00Z", 4),
            count("b", "2026-01-01T00:20:00Z", 20),
        ],
    );
    assert_eq!(
        out,
        [
            joined("a", 5, Datum::Float(5.0)),
            joined("a", 7, Datum::Float(7.0)),
            joined("b", 4, Datum::Float(50.0)),
            joined("b", 20, Datum::Null),
        ]
    );
    // The joined record's weather fields are optional, so the checker makes users say what a missing one means.
    let stream = application.streams.iter().find(|stream| stream.name == "joined").unwrap();
    let rain = stream.fields.iter().find(|field| field.name == "rain").unwrap();
    assert_eq!(rain.data_type, DataType::Optional(Box::new(DataType::Float)));
}

#[test]
fn decisions_choose_per_record_and_per_window() {
    let application = checked(
        "app test\nschema Lane { junction: string  ts: timestamp  heading: string  queue: int }\nsource lanes: generator { schema = Lane }\nstream per_junction {\n  from = lanes\n  window = tumbling(1 min) by junction\n  select {\n    north_south = sum_if(queue, heading == \"ns\")\n    east_west = sum_if(queue, heading == \"ew\")\n    favoured = if sum_if(queue, heading == \"ns\") >= sum_if(queue, heading == \"ew\") then \"ns\" else \"ew\"\n    extension_s = clamp(abs(sum_if(queue, heading == \"ns\") - sum_if(queue, heading == \"ew\")) * 2, 0, 30)\n  }\n}\nstream flagged {\n  from = lanes\n  select {\n    long = int(queue > 10)\n    capped = min(queue, 12)\n    level = if queue > 20 then \"jam\" else if queue > 10 then \"slow\" else \"free\"\n  }\n}\nsink out: jsonl { from = per_junction  path = \"o.jsonl\" }\nsink out2: jsonl { from = flagged  path = \"o2.jsonl\" }\n",
    );
    let lane = |junction: &str, second: u32, heading: &str, queue: i64| {
        vec![
            Datum::Text(junction.into()),
            at(&format!("2026-01-01T00:00:{second:02}Z")),
            Datum::Text(heading.into()),
            Datum::Int(queue),
        ]
    };
    let lanes = vec![lane("j1", 1, "ns", 4), lane("j1", 2, "ew", 9), lane("j1", 3, "ns", 3), lane("j2", 4, "ns", 30)];
    let mut windowed = Harness::new(&application, "per_junction", None);
    windowed.send(0, lanes.clone());
    let closed = windowed.finish();
    // Keys, window start and end, then the select: j1 has ns 7, ew 9, so east-west is favoured, by 4 s. j2 has no
    // east-west lane: its sum is missing (as SQL's SUM of nothing), so is the comparison, and a condition that is
    // missing takes the `else` value (as SQL's CASE does).
    let picked = |record: &Record| {
        (record[0].clone(), record[3].clone(), record[4].clone(), record[5].clone(), record[6].clone())
    };
    assert_eq!(
        closed.iter().map(picked).collect::<Vec<_>>(),
        [
            (Datum::Text("j1".into()), Datum::Int(7), Datum::Int(9), Datum::Text("ew".into()), Datum::Int(4)),
            (Datum::Text("j2".into()), Datum::Int(30), Datum::Null, Datum::Text("ew".into()), Datum::Null),
        ]
    );
    let mut projected = Harness::new(&application, "flagged", None);
    let out = projected.send(0, lanes);
    assert_eq!(
        out,
        [
            vec![Datum::Int(0), Datum::Int(4), Datum::Text("free".into())],
            vec![Datum::Int(0), Datum::Int(9), Datum::Text("free".into())],
            vec![Datum::Int(0), Datum::Int(3), Datum::Text("free".into())],
            vec![Datum::Int(1), Datum::Int(12), Datum::Text("jam".into())],
        ]
    );
}

#[test]
fn projections_keep_fields_compute_new_ones_and_filter() {
    let application = checked(
        "app test\nschema D { camera: string  speed: float  plate: string }\nsource d: generator { schema = D }\nstream fast {\n  from = d\n  where = speed > 80\n  keep = [camera]\n  select {\n    vehicle = hash(plate)\n    kmh = round(speed)\n  }\n}\nsink out: jsonl { from = fast  path = \"o.jsonl\" }\n",
    );
    let mut harness = Harness::new(&application, "fast", None);
    let record = |speed: f64| vec![Datum::Text("a".into()), Datum::Float(speed), Datum::Text("XYZ-1".into())];
    let missing_speed = vec![Datum::Text("a".into()), Datum::Null, Datum::Text("XYZ-1".into())];
    let out = harness.send(0, vec![record(50.0), record(90.4), missing_speed, record(95.0)]);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0][0], Datum::Text("a".into()));
    assert_eq!(out[0][2], Datum::Int(90));
    assert_eq!(out[0][1], out[1][1], "the same plate gives the same pseudonym");
    assert_ne!(out[0][1], Datum::Text("XYZ-1".into()));
}

#[test]
fn predict_calls_the_services_model_from_the_store() {
    let directory = tempfile::tempdir().unwrap();
    let mut csv = String::from("x,label\n");
    for index in 0..200 {
        let x = index as f64 / 100.0;
        csv.push_str(&format!("{x},{}\n", x > 1.0));
    }
    std::fs::write(directory.path().join("rows.csv"), csv).unwrap();
    let application = checked(
        "app test\nschema Row { x: float  label: bool }\ndataset rows { schema = Row  path = \"rows.csv\" }\nmodel m: classifier {\n  data = rows\n  target = label\n  features = [x]\n  candidates { logistic_regression { c = [100] } }\n  evaluate = kfold(3) by accuracy\n}\nschema Live { sensor: string  x: float }\nsource live: generator { schema = Live }\nservice s: inference { model = m  input = live }\nstream scored {\n  from = live\n  select {\n    sensor = sensor\n    high = predict(s)\n  }\n}\nsink out: jsonl { from = scored  path = \"o.jsonl\" }\n",
    );
    let store = directory.path().join("models");
    // Before training, building the stream says what to do.
    let build = BuildContext {
        application: &application,
        base_dir: directory.path(),
        fast_generators: true,
        generator_limit: None,
        simulated_seconds: None,
        time_scale: 1.0,
        model_store: Some(&store),
        mqtt_broker: None,
        data_dir: None,
    };
    let error = StreamOperator::new(&application.streams[0], &build).err().unwrap().to_string();
    assert!(error.contains("stratum train FILE --model m"), "{error}");

    let report = stratum_ml::train(&application, "m", directory.path(), &mut |_| {}).unwrap();
    let model = &application.models[0];
    stratum_ml::ModelStore::new(&store).save(&report, model.inputs.clone(), model.output.clone()).unwrap();
    let mut harness = Harness::new(&application, "scored", Some(&store));
    let live = |x: f64| vec![Datum::Text("s1".into()), Datum::Float(x)];
    let out = harness.send(0, vec![live(0.2), live(1.8), live(0.4), live(1.9)]);
    let predictions: Vec<Datum> = out.iter().map(|record| record[1].clone()).collect();
    assert_eq!(predictions, [Datum::Bool(false), Datum::Bool(true), Datum::Bool(false), Datum::Bool(true)]);
}

/// Sends `before` to a stream, checkpoints it into a new instance (through the JSON a checkpoint file holds), then
/// sends `after` to both and finishes them: what the old instance emits from the checkpoint on, what the new one
/// emits, and the checkpoint's text.
fn through_a_checkpoint(
    application: &Application,
    stream: &str,
    before: &[(usize, Record)],
    after: &[(usize, Record)],
) -> (Vec<Record>, Vec<Record>, String) {
    let mut original = Harness::new(application, stream, None);
    for (port, record) in before {
        original.send(*port, vec![record.clone()]);
    }
    let saved = original.operator.save().expect("a stateful stream saves its state");
    let mut restored = Harness::new(application, stream, None);
    restored.operator.restore(&saved).unwrap();
    let (mut expected, mut actual) = (Vec::new(), Vec::new());
    for (port, record) in after {
        expected.extend(original.send(*port, vec![record.clone()]));
        actual.extend(restored.send(*port, vec![record.clone()]));
    }
    expected.extend(original.finish());
    actual.extend(restored.finish());
    (expected, actual, String::from_utf8(saved).unwrap())
}

/// The new instance emits what the old one does, and something at all.
fn resumes_from_its_checkpoint(
    application: &Application,
    stream: &str,
    before: &[(usize, Record)],
    after: &[(usize, Record)],
) {
    let (expected, actual, text) = through_a_checkpoint(application, stream, before, after);
    assert!(!expected.is_empty(), "the test emits something after the checkpoint");
    assert_eq!(actual, expected, "{stream}: {text}");
}

#[test]
fn every_window_shape_and_the_join_resume_from_a_checkpoint() {
    let records = |times: &[(&str, &str, f64)]| -> Vec<(usize, Record)> {
        times.iter().map(|(key, time, value)| (0, reading(key, time, *value))).collect()
    };
    let before = records(&[
        ("a", "2026-01-01T00:00:05Z", 1.0),
        ("b", "2026-01-01T00:00:20Z", 2.0),
        ("a", "2026-01-01T00:00:50Z", 4.0),
        ("a", "2026-01-01T00:01:10Z", 8.0),
    ]);
    let after = records(&[
        ("b", "2026-01-01T00:01:15Z", 16.0),
        ("a", "2026-01-01T00:01:40Z", 32.0),
        ("c", "2026-01-01T00:03:00Z", 64.0),
    ]);
    for window in ["tumbling(1 min)", "sliding(1 min, 20 s)", "session(30 s)"] {
        resumes_from_its_checkpoint(&windowed(window, "30 s"), "s", &before, &after);
    }
    // A record that is too late after the restore is dropped as it would have been before.
    let late = records(&[("a", "2026-01-01T00:00:01Z", 128.0), ("a", "2026-01-01T00:02:00Z", 1.0)]);
    resumes_from_its_checkpoint(&windowed("tumbling(1 min)", "0 s"), "s", &before, &late);

    let application = checked(
        "app test\nschema Count { camera: string  window_end: timestamp  vehicles: int }\nschema Weather { camera: string  ts: timestamp  rain: float }\nsource counts: generator { schema = Count }\nsource weather: generator { schema = Weather }\nstream joined {\n  from = counts\n  join = weather by camera within 5 min\n  select {\n    camera = camera\n    vehicles = vehicles\n    wet = rain > 0.5\n  }\n}\nsink out: jsonl { from = joined  path = \"o.jsonl\" }\n",
    );
    let count =
        |camera: &str, time: &str, vehicles: i64| (0, vec![Datum::Text(camera.into()), at(time), Datum::Int(vehicles)]);
    let weather =
        |camera: &str, time: &str, rain: f64| (1, vec![Datum::Text(camera.into()), at(time), Datum::Float(rain)]);
    resumes_from_its_checkpoint(
        &application,
        "joined",
        &[weather("a", "2026-01-01T00:00:00Z", 1.0), count("b", "2026-01-01T00:01:00Z", 3)],
        &[count("a", "2026-01-01T00:03:00Z", 7), weather("b", "2026-01-01T00:02:00Z", 0.0)],
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// Whatever the records, the window and the moment of the checkpoint, a stream taken up from its checkpoint
    /// emits what the stream it was saved from emits.
    #[test]
    fn any_checkpoint_resumes_as_if_never_stopped(
        shape in 0usize..3,
        lateness in 0u32..40,
        records in proptest::collection::vec((0usize..3, 0i64..300_000, -10.0f64..10.0), 1..60),
        split in 0usize..60,
    ) {
        let window = ["tumbling(1 min)", "sliding(1 min, 20 s)", "session(30 s)"][shape];
        let application = windowed(window, &format!("{lateness} s"));
        let records: Vec<(usize, Record)> = records
            .into_iter()
            .map(|(key, milliseconds, value)| {
                let key = ["a", "b", "c"][key];
                (0, vec![Datum::Text(key.into()), Datum::Timestamp(1_767_225_600_000 + milliseconds), Datum::Float(value)])
            })
            .collect();
        let split = split.min(records.len());
        let (before, after) = records.split_at(split);
        let (expected, actual, _) = through_a_checkpoint(&application, "s", before, after);
        proptest::prop_assert_eq!(actual, expected);
    }
}
