//! The fault suite under MQTT ingestion, with real processes: a publisher sends numbered readings at QoS 1 to a
//! real Mosquitto while `stratum up`, which reads them through a persistent session, is killed with SIGKILL at
//! random moments and started again. Every reading the broker acknowledged to the publisher must reach the sink:
//! Stratum acknowledges a message to the broker only once it is durable (its ingest log), and the broker keeps
//! what Stratum did not acknowledge for the session, sending it again when Stratum is back.
//!
//! Needs Mosquitto: `.ci/run` installs it and runs this in its external stage.

mod common;

use common::{ingest_app, up_ingest};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use stratum_test_support::Mosquitto;

/// Readings the publisher sends, at about a thousand a second.
const READINGS: u64 = 8_000;
const KILLS: usize = 3;

/// A child process killed when dropped, so that nothing outlives a failed test.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// `stratum up` of the ingest application, its messages (the MQTT source saying it connected among them) in
/// `up.log`.
fn up(folder: &Path) -> Command {
    let mut command = up_ingest(folder, &[]);
    command.env("STRATUM_LOG", "info,rumqttd=off");
    command
}

/// The ids in the sink's file, each once, and how many lines it has.
fn stored(folder: &Path) -> (BTreeSet<u64>, usize) {
    let text = std::fs::read_to_string(folder.join("out/raw.jsonl")).unwrap_or_default();
    let ids: Vec<u64> =
        text.lines().filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok()?["id"].as_u64()).collect();
    let lines = ids.len();
    (ids.into_iter().collect(), lines)
}

/// Publishes `READINGS` readings at QoS 1, about a thousand a second; counts the broker's acknowledgements.
fn publisher(port: u16, acknowledged: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut options = rumqttc::MqttOptions::new(format!("publisher-{port}"), "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(10));
        let (client, mut connection) = rumqttc::Client::new(options, 1000);
        let counting = std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                        if acknowledged.fetch_add(1, Ordering::Relaxed) + 1 == READINGS {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        for id in 0..READINGS {
            let reading = format!(r#"{{"id": {id}, "sensor": "s{}", "ts": "2026-01-01T00:00:00Z"}}"#, id % 4);
            client.publish(format!("sensors/s{}/readings", id % 4), rumqttc::QoS::AtLeastOnce, false, reading).unwrap();
            if id % 100 == 99 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        counting.join().unwrap();
        client.disconnect().ok();
    })
}

#[test]
#[ignore = "needs Mosquitto; .ci/run installs it and runs this in its external stage"]
fn no_message_the_broker_acknowledged_is_lost_when_up_is_killed_at_random_moments() {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults_sigkill_mqtt");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    // A queue large enough for everything sent while Stratum is down (1,000 by default, beyond which Mosquitto
    // drops QoS 1 messages for a session).
    let mosquitto = Mosquitto::start(&folder, "max_queued_messages 100000");
    let port = mosquitto.port;
    let source = format!(
        r#"source readings: mqtt {{ topic = "sensors/+/readings"  broker = "mqtt://127.0.0.1:{port}"  schema = Reading }}"#
    );
    let app = ingest_app(&source);
    std::fs::write(folder.join("ingest.stratum"), app).unwrap();
    // The first run makes the session the broker keeps for Stratum; what is published from then on waits there
    // whenever Stratum is down.
    let mut running = Killed(up(&folder).spawn().unwrap());
    let started = Instant::now();
    while !std::fs::read_to_string(folder.join("up.log")).unwrap_or_default().contains("connected") {
        assert!(started.elapsed() < Duration::from_secs(60), "the MQTT source did not connect");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its subscription reaches the broker.
    std::thread::sleep(Duration::from_secs(1));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let publishing = publisher(port, acknowledged.clone());
    // The moments are random, and printed, so that a failure can be told apart from the next run's.
    let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    for kill in 0..KILLS {
        let before = stored(&folder).0.len();
        let waiting = Instant::now();
        while stored(&folder).0.len() == before {
            assert!(waiting.elapsed() < Duration::from_secs(60), "nothing reached the sink (kill {kill})");
            std::thread::sleep(Duration::from_millis(20));
        }
        let moment = Duration::from_millis((seed.wrapping_mul(kill as u64 + 7) >> 3) % 2000);
        eprintln!(
            "kill {kill}: {} ms after the sink grew, {} acknowledged so far",
            moment.as_millis(),
            acknowledged.load(Ordering::Relaxed)
        );
        std::thread::sleep(moment);
        drop(running);
        running = Killed(up(&folder).spawn().unwrap());
    }
    publishing.join().unwrap();
    assert_eq!(acknowledged.load(Ordering::Relaxed), READINGS, "the broker acknowledged every reading");
    let waiting = Instant::now();
    while stored(&folder).0.len() < READINGS as usize && waiting.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(running);
    let (distinct, lines) = stored(&folder);
    let lost: Vec<u64> = (0..READINGS).filter(|id| !distinct.contains(id)).collect();
    eprintln!(
        "{KILLS} kills: {READINGS} readings acknowledged by the broker, {lines} stored ({} twice), {} lost",
        lines - distinct.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged readings were lost, such as {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}
