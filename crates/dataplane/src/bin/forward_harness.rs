//! A producer node for the store-and-forward crash tests: appends numbered events to a durable log, prints
//! `acked N` once event N is durable (what "acknowledged to its producer" means), and forwards the log to a
//! receiver. The tests kill it with SIGKILL in the middle and start it again on the same log.
//!
//! Usage: forward_harness LOG_DIR RECEIVER_ADDRESS FIRST COUNT \[PAUSE_MICROSECONDS\]

use std::io::Write;
use std::sync::{Arc, Mutex};
use stratum_core::eval::Datum;
use stratum_core::ir::WhenFull;
use stratum_dataplane::log::{Log, LogOptions};
use stratum_dataplane::record::encode_batch;
use stratum_dataplane::transfer::{Forwarder, ForwarderState, PathKey};
use tokio::sync::watch;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<String> = std::env::args().collect();
    let [_, directory, address, first, count, rest @ ..] = arguments.as_slice() else {
        return Err("usage: forward_harness LOG_DIR RECEIVER_ADDRESS FIRST COUNT [PAUSE_MICROSECONDS]".into());
    };
    let (first, count): (i64, i64) = (first.parse()?, count.parse()?);
    let pause = std::time::Duration::from_micros(rest.first().map_or(Ok(0), |pause| pause.parse())?);
    let log = Arc::new(Mutex::new(Log::open(
        std::path::Path::new(directory),
        LogOptions::bounded(1 << 30, WhenFull::Reject),
    )?));
    let (stop, stopped) = watch::channel(false);
    let (state, _) = watch::channel(ForwarderState::default());
    // The tests' key for their path `edge->fog`.
    let key = PathKey::from_bytes(&[7; 32]);
    let forwarder = tokio::spawn(
        Forwarder { log: log.clone(), path: "edge->fog".into(), to: address.clone(), key, tls: None }
            .run(stopped, state),
    );
    let mut stdout = std::io::stdout();
    for number in first..first + count {
        let payload = encode_batch(&[vec![Datum::Int(number)]]);
        let appended = log.lock().map_err(|_| "poisoned")?.append(&payload, number)?;
        if appended.is_err() {
            return Err("the log is full".into());
        }
        writeln!(stdout, "acked {number}")?;
        stdout.flush()?;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    stop.send_replace(true);
    forwarder.await??;
    writeln!(stdout, "drained")?;
    Ok(())
}
