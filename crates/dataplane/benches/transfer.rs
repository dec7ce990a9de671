//! A data path's throughput over loopback, plain TCP against TLS: a forwarder sends 256 MiB of 64 KiB entries (what
//! a batch of about 500 records encodes to) from its log to a receiver that acknowledges each at once; the same
//! run with both ends over TLS (the receiver presenting a certificate from a test authority, the forwarder taking
//! only that name), as agents do by default. Prints MB/s for each and their ratio.
//!
//! Run: `cargo bench -p stratum-dataplane --bench transfer` (STRATUM_TRANSFER_BENCH_MIB for another size).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_core::ir::WhenFull;
use stratum_dataplane::log::{Log, LogOptions, SyncPolicy};
use stratum_dataplane::tls::{ClientTls, Identity, ServerTls};
use stratum_dataplane::transfer::{Delivered, Forwarder, ForwarderState, PathKey, Receiver};
use tokio::sync::{mpsc, watch};

/// A certificate authority and a certificate it signed for `name`, made for the run.
fn authority_and_identity(name: &str) -> (String, Identity) {
    let (authority, certificate_pem, key_pem) = stratum_test_support::authority_and_certificate(name);
    (authority, Identity { certificate_pem, key_pem })
}

/// Forwards `entries` entries of `size` bytes and returns the seconds until the last is acknowledged.
async fn forward(entries: u64, size: usize, tls: Option<(ServerTls, ClientTls)>) -> f64 {
    let (server, client) = match tls {
        Some((server, client)) => (Some(server), Some(client)),
        None => (None, None),
    };
    let key = PathKey::from_bytes(&[7; 32]);
    let receiver = Receiver::bind("127.0.0.1:0", server).await.unwrap();
    receiver.keys().lock().unwrap().insert("bench".into(), key.clone());
    let address = receiver.local_address().unwrap().to_string();
    let (deliveries, mut delivered) = mpsc::channel::<Delivered>(256);
    tokio::spawn(receiver.run(deliveries));
    tokio::spawn(async move {
        while let Some(delivery) = delivered.recv().await {
            delivery.done();
        }
    });
    let directory =
        tempfile::tempdir_in(std::env::var("STRATUM_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into())).unwrap();
    let options =
        LogOptions { sync: SyncPolicy::Never, ..LogOptions::bounded(entries * size as u64 * 2, WhenFull::Reject) };
    let mut log = Log::open(directory.path(), options).unwrap();
    let entry = vec![0x5Au8; size];
    for index in 0..entries {
        log.append(&entry, index as i64).unwrap().unwrap();
    }
    let log = Arc::new(Mutex::new(log));
    let (stop, stopped) = watch::channel(false);
    let (state, mut watching) = watch::channel(ForwarderState::default());
    let started = Instant::now();
    let forwarder = Forwarder { log, path: "bench".into(), to: address, key, tls: client };
    let running = tokio::spawn(forwarder.run(stopped, state));
    while watching.borrow().acknowledged < entries {
        if tokio::time::timeout(Duration::from_secs(60), watching.changed()).await.is_err() {
            panic!("the forwarder stalled at {} of {entries}", watching.borrow().acknowledged);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.send_replace(true);
    let _ = running.await;
    seconds
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mebibytes: u64 =
        std::env::var("STRATUM_TRANSFER_BENCH_MIB").ok().and_then(|text| text.parse().ok()).unwrap_or(256);
    let size = 64 << 10;
    let entries = mebibytes * 16;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let name = stratum_dataplane::tls::agent_identity("fog1");
        let (authority, identity) = authority_and_identity(&name);
        let tls = || (ServerTls::new(&identity).unwrap(), ClientTls::new(&authority, &name).unwrap());
        // Once each to warm up, then the measured runs.
        forward(64, size, None).await;
        forward(64, size, Some(tls())).await;
        let plain = forward(entries, size, None).await;
        let secured = forward(entries, size, Some(tls())).await;
        let rate = |seconds: f64| (entries * size as u64) as f64 / 1e6 / seconds;
        println!("plain TCP: {mebibytes} MiB in {plain:.2} s = {:.0} MB/s", rate(plain));
        println!("TLS:       {mebibytes} MiB in {secured:.2} s = {:.0} MB/s", rate(secured));
        println!("TLS throughput / plain throughput: {:.2}", plain / secured);
    });
}
