//! Store-and-forward across a process crash and across a broken uplink: every event acknowledged to its
//! producer reaches the receiver, in order.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_core::eval::Datum;
use stratum_core::ir::WhenFull;
use stratum_dataplane::log::{Log, LogOptions};
use stratum_dataplane::record::{decode_batch, encode_batch};
use stratum_dataplane::transfer::{Delivered, Forwarder, ForwarderState, Receiver};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Runs a receiver and collects the event numbers it hands on, in arrival order.
async fn receiver() -> (String, Arc<Mutex<Vec<i64>>>) {
    let receiver = Receiver::bind("127.0.0.1:0").await.unwrap();
    let address = receiver.local_address().unwrap().to_string();
    let (deliveries, mut delivered) = mpsc::channel::<Delivered>(64);
    tokio::spawn(receiver.run(deliveries));
    let received = Arc::new(Mutex::new(Vec::new()));
    let collected = received.clone();
    tokio::spawn(async move {
        while let Some(delivery) = delivered.recv().await {
            for record in decode_batch(&delivery.payload).unwrap() {
                let Datum::Int(number) = record[0] else { panic!("not a number: {record:?}") };
                collected.lock().unwrap().push(number);
            }
            delivery.done();
        }
    });
    (address, received)
}

async fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every number in `0..=last` was received, in increasing order; only the one number that may have been appended
/// but not yet reported when the producer died can arrive twice (it is appended again after the restart).
fn assert_complete_and_ordered(received: &[i64], last: i64) {
    assert!(received.windows(2).all(|pair| pair[1] >= pair[0]), "out of order: {received:?}");
    let mut distinct = received.to_vec();
    distinct.dedup();
    assert!(received.len() - distinct.len() <= 1, "more than one duplicate");
    for number in 0..=last {
        assert!(
            distinct.binary_search(&number).is_ok(),
            "{number} was acknowledged to the producer but never delivered"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_acknowledged_before_a_sigkill_are_delivered_after_the_restart() {
    let (address, received) = receiver().await;
    let directory = tempfile::tempdir().unwrap();
    let harness = env!("CARGO_BIN_EXE_forward_harness");
    let log_directory = directory.path().join("log");
    let mut producer = Command::new(harness)
        .args([log_directory.to_str().unwrap(), &address, "0", "1000000", "200"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(producer.stdout.take().unwrap()).lines();
    // Let it run until it has produced and forwarded a fair amount, then kill it mid-stream.
    let mut last_acknowledged = -1;
    while last_acknowledged < 2000 {
        let line = lines.next().unwrap().unwrap();
        last_acknowledged = line.strip_prefix("acked ").unwrap().parse().unwrap();
    }
    wait_for("some deliveries", Duration::from_secs(20), || received.lock().unwrap().len() > 500).await;
    producer.kill().unwrap(); // SIGKILL
    producer.wait().unwrap();
    // Whatever it printed before dying was acknowledged too.
    for line in lines.map_while(Result::ok) {
        if let Some(number) = line.strip_prefix("acked ") {
            last_acknowledged = number.parse().unwrap();
        }
    }
    let before_restart = received.lock().unwrap().len();
    assert!(
        (before_restart as i64) <= last_acknowledged + 1 + 1,
        "at most one unacknowledged append can have been sent"
    );

    // The restarted producer continues after the last number it knew to be durable and drains its log.
    let next = last_acknowledged + 1;
    let output = Command::new(harness)
        .args([log_directory.to_str().unwrap(), &address, &next.to_string(), "500"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("drained"));
    let received = received.lock().unwrap().clone();
    assert_complete_and_ordered(&received, next + 499);
    // The log removed what was delivered: nothing is left on disk but the segment being written.
    let log = Log::open(&log_directory, LogOptions::bounded(1 << 30, WhenFull::Reject)).unwrap();
    assert_eq!(log.pending(), 0);
    assert!(log.segment_count() <= 1);
}

/// A TCP proxy standing for the uplink, which the test can cut (dropping connections and refusing new ones)
/// and restore.
async fn uplink(to: String) -> (String, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (cut, is_cut) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else { return };
            if *is_cut.borrow() {
                client.shutdown().await.ok();
                continue;
            }
            let to = to.clone();
            let mut is_cut = is_cut.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(&to).await else { return };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = is_cut.wait_for(|cut| *cut) => {}
                }
            });
        }
    });
    (address, cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_buffered_while_the_uplink_is_down_flows_in_order_when_it_returns() {
    let (receiver_address, received) = receiver().await;
    let (uplink_address, cut) = uplink(receiver_address).await;
    let directory = tempfile::tempdir().unwrap();
    let log =
        Arc::new(Mutex::new(Log::open(directory.path(), LogOptions::bounded(64 << 20, WhenFull::Reject)).unwrap()));
    let (stop, stopped) = watch::channel(false);
    let (state, watch_state) = watch::channel(ForwarderState::default());
    let forwarder =
        tokio::spawn(Forwarder { log: log.clone(), path: "edge->fog".into(), to: uplink_address }.run(stopped, state));
    let append = |from: i64, to: i64| {
        for number in from..to {
            log.lock().unwrap().append(&encode_batch(&[vec![Datum::Int(number)]]), number).unwrap().unwrap();
        }
    };
    append(0, 1000);
    wait_for("the first events", Duration::from_secs(20), || received.lock().unwrap().len() >= 1000).await;

    cut.send_replace(true);
    wait_for("the forwarder to notice", Duration::from_secs(20), || !watch_state.borrow().connected).await;
    append(1000, 3000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received.lock().unwrap().len(), 1000, "nothing crosses a cut uplink");
    assert_eq!(log.lock().unwrap().pending(), 2000, "it waits in the buffer");

    cut.send_replace(false);
    append(3000, 4000);
    wait_for("everything after the uplink returns", Duration::from_secs(30), || received.lock().unwrap().len() >= 4000)
        .await;
    stop.send_replace(true);
    forwarder.await.unwrap().unwrap();
    let received = received.lock().unwrap().clone();
    assert_eq!(received, (0..4000).collect::<Vec<_>>(), "exactly once and in order");
    assert!(watch_state.borrow().connections >= 2, "it reconnected");
    assert_eq!(log.lock().unwrap().pending(), 0);
}
