//! Store-and-forward across a process crash and across a broken uplink: every event acknowledged to its
//! producer reaches the receiver, in order. A forged frame, or a path the receiver was not given, is refused.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_core::eval::Datum;
use stratum_core::ir::WhenFull;
use stratum_dataplane::log::{Log, LogOptions};
use stratum_dataplane::record::{decode_batch, encode_batch};
use stratum_dataplane::transfer::{Delivered, Forwarder, ForwarderState, PathKey, Receiver};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// The key of the tests' path `edge->fog` (the forward harness uses it too).
fn key() -> PathKey {
    PathKey::from_bytes(&[7; 32])
}

/// Runs a receiver that takes the path `edge->fog`: its address, and what it hands on.
async fn receiving() -> (String, mpsc::Receiver<Delivered>) {
    let receiver = Receiver::bind("127.0.0.1:0", None).await.unwrap();
    receiver.keys().lock().unwrap().insert("edge->fog".into(), key());
    let address = receiver.local_address().unwrap().to_string();
    let (deliveries, delivered) = mpsc::channel::<Delivered>(64);
    tokio::spawn(receiver.run(deliveries));
    (address, delivered)
}

/// Runs a receiver that takes the path `edge->fog` and collects the event numbers it hands on, in arrival order.
async fn receiver() -> (String, Arc<Mutex<Vec<i64>>>) {
    let (address, mut delivered) = receiving().await;
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
    let forwarder = tokio::spawn(
        Forwarder { log: log.clone(), path: "edge->fog".into(), to: uplink_address, key: key(), tls: None }
            .run(stopped, state),
    );
    let append = |from: i64, to: i64| {
        for number in from..to {
            log.lock().unwrap().append(&encode_batch(&[vec![Datum::Int(number)]]), number).unwrap().unwrap();
        }
    };
    append(0, 1000);
    wait_for("the first events", Duration::from_secs(20), || received.lock().unwrap().len() >= 1000).await;
    // Their acknowledgements too: one still on its way when the uplink is cut would leave its entry pending (it is
    // sent again later, and the receiver takes it once), and the count below would be off by it.
    wait_for("the first events acknowledged", Duration::from_secs(20), || log.lock().unwrap().pending() == 0).await;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_its_consumer_did_not_finish_is_sent_again() {
    // A consumer that cannot make an entry durable (a stream whose checkpoint copy the control plane did not keep)
    // drops it unfinished: the receiver ends the connection without acknowledging it, and its sender sends it,
    // and what came after it, again. Nothing panics on the way (a panic in a connection's task shows nowhere else).
    let panicked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noticed = panicked.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        noticed.store(true, std::sync::atomic::Ordering::Release);
        previous(info);
    }));
    let (address, mut delivered) = receiving().await;
    let received = Arc::new(Mutex::new(Vec::new()));
    let collected = received.clone();
    tokio::spawn(async move {
        let mut dropped_once = false;
        while let Some(delivery) = delivered.recv().await {
            let numbers: Vec<i64> = decode_batch(&delivery.payload)
                .unwrap()
                .iter()
                .map(|record| if let Datum::Int(number) = record[0] { number } else { -1 })
                .collect();
            if numbers.contains(&500) && !dropped_once {
                dropped_once = true;
                continue;
            }
            collected.lock().unwrap().extend(numbers);
            delivery.done();
        }
    });
    let forwarding = Forwarding::of(1000, address);
    wait_for("every entry acknowledged", Duration::from_secs(30), || forwarding.pending() == 0).await;
    let connections = forwarding.stop().await;
    let mut received = received.lock().unwrap().clone();
    received.sort_unstable();
    received.dedup();
    assert_eq!(received, (0..1000).collect::<Vec<_>>(), "every entry, the one not finished included");
    assert!(connections >= 2, "the unfinished entry ended the connection");
    assert!(!panicked.load(std::sync::atomic::Ordering::Acquire), "a task panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_finished_is_acknowledged_while_later_ones_wait() {
    // A consumer finishes the first 10 entries and holds the rest unfinished (a stream waiting for its checkpoint
    // copy to reach the control plane): the 10 are acknowledged now, not once the rest finish.
    let (address, mut delivered) = receiving().await;
    let (release, mut released) = watch::channel(false);
    tokio::spawn(async move {
        let mut held = Vec::new();
        let mut finished = 0;
        loop {
            tokio::select! {
                delivery = delivered.recv() => {
                    let Some(delivery) = delivery else { return };
                    if finished < 10 {
                        finished += 1;
                        delivery.done();
                    } else {
                        held.push(delivery);
                    }
                }
                _ = released.wait_for(|released| *released) => {
                    held.drain(..).for_each(Delivered::done);
                    return;
                }
            }
        }
    });
    let forwarding = Forwarding::of(100, address);
    wait_for("the finished entries acknowledged", Duration::from_secs(10), || forwarding.pending() == 90).await;
    release.send_replace(true);
    wait_for("the rest acknowledged", Duration::from_secs(10), || forwarding.pending() == 0).await;
    forwarding.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_whose_log_was_made_again_is_not_taken_for_the_one_before() {
    // A path's log is removed once another path adopted it (its consumer moved), and made again when the path
    // comes back: its entries are numbered from 0 again. The receiver, which ran all along, must deliver them,
    // not take them for entries of the log before (once it did: it acknowledged them unseen, and they were lost).
    let (address, received) = receiver().await;
    let first = Forwarding::of(100, address.clone());
    wait_for("the first log's entries", Duration::from_secs(30), || first.pending() == 0).await;
    first.stop().await;
    let again = Forwarding::of(50, address);
    wait_for("the second log's entries acknowledged", Duration::from_secs(30), || again.pending() == 0).await;
    again.stop().await;
    let received = received.lock().unwrap().clone();
    let expected: Vec<i64> = (0..100).chain(0..50).collect();
    assert_eq!(received, expected, "every entry of both logs, once each");
}

/// A forwarder of the path `edge->fog` whose log holds the events `0..count`, one entry each.
struct Forwarding {
    log: Arc<Mutex<Log>>,
    stop: watch::Sender<bool>,
    state: watch::Receiver<ForwarderState>,
    task: tokio::task::JoinHandle<Result<(), stratum_dataplane::Error>>,
    _directory: tempfile::TempDir,
}

impl Forwarding {
    fn of(count: i64, to: String) -> Forwarding {
        let directory = tempfile::tempdir().unwrap();
        let log =
            Arc::new(Mutex::new(Log::open(directory.path(), LogOptions::bounded(64 << 20, WhenFull::Reject)).unwrap()));
        for number in 0..count {
            log.lock().unwrap().append(&encode_batch(&[vec![Datum::Int(number)]]), number).unwrap().unwrap();
        }
        let (stop, stopped) = watch::channel(false);
        let (sender, state) = watch::channel(ForwarderState::default());
        let task = tokio::spawn(
            Forwarder { log: log.clone(), path: "edge->fog".into(), to, key: key(), tls: None }.run(stopped, sender),
        );
        Forwarding { log, stop, state, task, _directory: directory }
    }

    /// Entries not yet acknowledged.
    fn pending(&self) -> u64 {
        self.log.lock().unwrap().pending()
    }

    /// Stops the forwarder; how many connections it made.
    async fn stop(self) -> u64 {
        self.stop.send_replace(true);
        self.task.await.unwrap().unwrap();
        self.state.borrow().connections
    }
}

/// Sends one frame as the protocol does: `[length u32][kind u8][body]`.
async fn frame(stream: &mut tokio::net::TcpStream, kind: u8, body: &[u8]) {
    stream.write_all(&((body.len() + 1) as u32).to_le_bytes()).await.unwrap();
    stream.write_all(&[kind]).await.unwrap();
    stream.write_all(body).await.unwrap();
}

/// Reads until the peer closes the connection; what it sent.
async fn until_closed(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await.expect("closed");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_frame_is_refused_and_moves_nothing_on() {
    let (address, received) = receiver().await;
    // Someone on the network, without the key: a frame with a huge sequence number and a made-up MAC.
    let mut forger = tokio::net::TcpStream::connect(&address).await.unwrap();
    frame(&mut forger, 1, b"edge->fog").await;
    let mut forged = Vec::new();
    forged.extend_from_slice(&(1u64 << 40).to_le_bytes());
    forged.extend_from_slice(&0i64.to_le_bytes());
    forged.extend_from_slice(&[0u8; 32]);
    forged.extend_from_slice(&encode_batch(&[vec![Datum::Int(-1)]]));
    frame(&mut forger, 3, &forged).await;
    let answer = until_closed(&mut forger).await;
    assert_eq!(answer.len(), 4 + 1 + 8 + 16, "a WELCOME, then the connection closed: no ACK");
    // A path this receiver was not given is refused before anything is said.
    let mut stranger = tokio::net::TcpStream::connect(&address).await.unwrap();
    frame(&mut stranger, 1, b"other->fog").await;
    assert!(until_closed(&mut stranger).await.is_empty());

    // The real producer's events all arrive: the forged sequence number moved nothing on.
    let directory = tempfile::tempdir().unwrap();
    let log =
        Arc::new(Mutex::new(Log::open(directory.path(), LogOptions::bounded(64 << 20, WhenFull::Reject)).unwrap()));
    for number in 0..100 {
        log.lock().unwrap().append(&encode_batch(&[vec![Datum::Int(number)]]), number).unwrap().unwrap();
    }
    let (stop, stopped) = watch::channel(false);
    let (state, _) = watch::channel(ForwarderState::default());
    let forwarder =
        Forwarder { log: log.clone(), path: "edge->fog".into(), to: address.clone(), key: key(), tls: None };
    let running = tokio::spawn(forwarder.run(stopped, state));
    wait_for("the real events", Duration::from_secs(20), || received.lock().unwrap().len() >= 100).await;
    stop.send_replace(true);
    running.await.unwrap().unwrap();
    assert_eq!(*received.lock().unwrap(), (0..100).collect::<Vec<i64>>(), "nothing forged was handed on");

    // A forwarder with another key is refused the same way, and keeps its entries.
    let log = Arc::new(Mutex::new(
        Log::open(&directory.path().join("other"), LogOptions::bounded(1 << 20, WhenFull::Reject)).unwrap(),
    ));
    for number in 0..150 {
        log.lock().unwrap().append(&encode_batch(&[vec![Datum::Int(-number)]]), number).unwrap().unwrap();
    }
    let (stop, stopped) = watch::channel(false);
    let (state, _) = watch::channel(ForwarderState::default());
    let wrong = PathKey::from_bytes(&[8; 32]);
    let running = tokio::spawn(
        Forwarder { log: log.clone(), path: "edge->fog".into(), to: address, key: wrong, tls: None }
            .run(stopped, state),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send_replace(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), running).await;
    assert_eq!(received.lock().unwrap().len(), 100, "nothing sent with another key was handed on");
    assert_eq!(log.lock().unwrap().pending(), 150, "and its sender still holds them");
}
