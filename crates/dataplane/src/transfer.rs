//! Store-and-forward between nodes: a [`Forwarder`] sends the entries of a node's durable [`Log`] to a
//! [`Receiver`] on another node over TCP and removes them from the log only when the receiver acknowledges them.
//! The forwarder connects out (edge machines sit behind NAT), reconnects with backoff when the uplink drops,
//! and resends what was not acknowledged, in order.
//!
//! The protocol: frames of `[length u32][kind u8][body]`, little endian.
//! - `HELLO path \0 log-id` (forwarder → receiver): which data path this connection carries, from which log (a
//!   path's log made again under the same name numbers its entries from the start again).
//! - `WELCOME next challenge` (receiver → forwarder): the sequence number the receiver expects next on that path,
//!   so that entries it already has are skipped after a reconnect, and 16 random bytes for this connection.
//! - `DATA sequence time mac payload` (forwarder → receiver): one log entry, with the HMAC-SHA256 of the challenge,
//!   sequence, time and payload under the path's key ([`PathKey`], which the control plane gives both ends). A
//!   frame whose MAC does not check ends the connection, so no one without the key can inject or replay data or
//!   move a path's sequence on; a receiver refuses a path it has no key for.
//! - `ACK sequence` (receiver → forwarder): every entry up to this one has been handed on.
//!
//! A receiver hands entries to its consumer as they arrive and acknowledges each, in order, once the consumer says
//! it is done with it; the consumer decides how durable that is (the pipeline's end-to-end acknowledgement: every
//! sink has synced it, or the next hop's log has it). After a reconnect the forwarder sends again what was not
//! acknowledged, so an entry may reach the consumer twice: delivery is at least once.

use crate::Error;
use crate::log::{Entry, Log};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

const HELLO: u8 = 1;
const WELCOME: u8 = 2;
const DATA: u8 = 3;
const ACK: u8 = 4;
const MAX_FRAME: usize = crate::log::MAX_ENTRY_BYTES + 96;
const MAC_BYTES: usize = 32;
const CHALLENGE_BYTES: usize = 16;

/// A data path's secret, shared by its two ends: it authenticates every frame.
#[derive(Clone)]
pub struct PathKey(ring::hmac::Key);

impl PathKey {
    /// A key of 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> PathKey {
        PathKey(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes))
    }

    /// The key of `path` derived from a control plane's secret, in hex as the control plane hands it to agents
    /// (the same secret and path give the same key).
    pub fn derive_hex(secret: &[u8], path: &str) -> String {
        let derived = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret), path.as_bytes());
        stratum_core::bytes::hex(derived.as_ref())
    }

    /// A key from its hex form; `None` when it is not one.
    pub fn from_hex(hex: &str) -> Option<PathKey> {
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|at| hex.get(at..at + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
            .collect();
        bytes.filter(|bytes| bytes.len() == 32).map(|bytes| PathKey::from_bytes(&bytes))
    }

    fn mac(&self, challenge: &[u8], sequence: &[u8], time: &[u8], payload: &[u8]) -> ring::hmac::Tag {
        let mut context = ring::hmac::Context::with_key(&self.0);
        for part in [challenge, sequence, time, payload] {
            context.update(part);
        }
        context.sign()
    }
}

impl std::fmt::Debug for PathKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("PathKey(…)")
    }
}

/// The keys of the paths a receiver takes, by path; shared with whoever assigns paths (an agent).
pub type PathKeys = Arc<Mutex<HashMap<String, PathKey>>>;
/// Entries sent but not yet acknowledged, at most.
const IN_FLIGHT: u64 = 4096;

/// Awaits `future`; when it is not ready at once and `writer` holds unflushed frames, flushes them first.
async fn flushed_before_waiting<T>(
    future: impl std::future::Future<Output = T>,
    writer: &mut (impl AsyncWriteExt + Unpin),
    writing: &mut bool,
    unflushed: &mut bool,
) -> T {
    tokio::pin!(future);
    tokio::select! {
        biased;
        ready = &mut future => ready,
        () = std::future::ready(()), if *unflushed => {
            *writing = writer.flush().await.is_ok();
            *unflushed = false;
            future.await
        }
    }
}

async fn write_frame(writer: &mut (impl AsyncWriteExt + Unpin), kind: u8, body: &[&[u8]]) -> std::io::Result<()> {
    let length: usize = 1 + body.iter().map(|part| part.len()).sum::<usize>();
    writer.write_all(&(length as u32).to_le_bytes()).await?;
    writer.write_all(&[kind]).await?;
    for part in body {
        writer.write_all(part).await?;
    }
    Ok(())
}

async fn read_frame(reader: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<(u8, Vec<u8>)> {
    let mut length = [0u8; 4];
    reader.read_exact(&mut length).await?;
    let length = u32::from_le_bytes(length) as usize;
    if length == 0 || length > MAX_FRAME {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a frame of {length} bytes")));
    }
    let mut frame = vec![0u8; length];
    reader.read_exact(&mut frame).await?;
    let kind = frame.remove(0);
    Ok((kind, frame))
}

fn u64_of(body: &[u8]) -> std::io::Result<u64> {
    body.get(..8)
        .and_then(|bytes| bytes.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "a frame too short for its kind"))
}

/// Sends a log's entries to a receiver, for as long as it runs.
pub struct Forwarder {
    /// The log it sends.
    pub log: Arc<Mutex<Log>>,
    /// The data path's name (the same on both ends).
    pub path: String,
    /// The receiver's address.
    pub to: String,
    /// The path's key.
    pub key: PathKey,
    /// TLS to the receiving agent, checked against the cluster's authority and that agent's name; `None` on a
    /// cluster that runs without TLS (loopback development).
    pub tls: Option<crate::tls::ClientTls>,
}

/// What a forwarder has done, for metrics and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForwarderState {
    /// Connected now.
    pub connected: bool,
    /// Connections made.
    pub connections: u64,
    /// The latest sequence acknowledged, plus one.
    pub acknowledged: u64,
}

impl Forwarder {
    /// Runs until `stop` turns true and everything is acknowledged (or `stop` turns true while disconnected).
    pub async fn run(self, mut stop: watch::Receiver<bool>, state: watch::Sender<ForwarderState>) -> Result<(), Error> {
        let mut backoff = Duration::from_millis(50);
        loop {
            if *stop.borrow() && self.pending()? == 0 {
                return Ok(());
            }
            match TcpStream::connect(&self.to).await {
                Ok(stream) => {
                    stream.set_nodelay(true).ok();
                    let result = match &self.tls {
                        None => self.session(stream, &mut stop, &state).await,
                        Some(tls) => match tls.connect(stream).await {
                            Ok(stream) => self.session(stream, &mut stop, &state).await,
                            Err(error) => Err(Error::Transfer(format!("TLS to {}: {error}", self.to).into())),
                        },
                    };
                    if state.borrow().connected {
                        backoff = Duration::from_millis(50);
                    }
                    state.send_modify(|state| state.connected = false);
                    match result {
                        Ok(()) => return Ok(()),
                        Err(error) => {
                            tracing::info!(path = self.path, to = self.to, %error, "uplink lost; will reconnect")
                        }
                    }
                }
                Err(error) => tracing::debug!(path = self.path, to = self.to, %error, "cannot connect"),
            }
            if *stop.borrow() {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    fn pending(&self) -> Result<u64, Error> {
        Ok(self.log.lock().map_err(|_| Error::Transfer("the log lock was poisoned".into()))?.pending())
    }

    fn with_log<T>(&self, work: impl FnOnce(&mut Log) -> Result<T, Error>) -> Result<T, Error> {
        let mut log = self.log.lock().map_err(|_| Error::Transfer("the log lock was poisoned".into()))?;
        work(&mut log)
    }

    /// One connection: returns Ok when told to stop with nothing pending, Err when the connection fails.
    async fn session<S>(
        &self,
        stream: S,
        stop: &mut watch::Receiver<bool>,
        state: &watch::Sender<ForwarderState>,
    ) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let io = |error: std::io::Error| Error::Transfer(error.into());
        state.send_modify(|state| {
            state.connected = true;
            state.connections += 1;
        });
        let (reader, writer) = tokio::io::split(stream);
        let (mut reader, mut writer) = (BufReader::new(reader), BufWriter::new(writer));
        let log_id = self.with_log(|log| Ok(log.id().to_string()))?;
        write_frame(&mut writer, HELLO, &[self.path.as_bytes(), b"\0", log_id.as_bytes()]).await.map_err(io)?;
        writer.flush().await.map_err(io)?;
        let (kind, body) = read_frame(&mut reader).await.map_err(io)?;
        if kind != WELCOME {
            return Err(Error::Transfer(format!("expected WELCOME, got frame kind {kind}").into()));
        }
        let expected = u64_of(&body).map_err(io)?;
        let challenge = body
            .get(8..8 + CHALLENGE_BYTES)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::Transfer("the receiver's WELCOME has no challenge (an older Stratum?)".into()))?;
        if expected > 0 {
            self.with_log(|log| log.acknowledge(expected - 1))?;
        }
        let mut next = self.with_log(|log| Ok(log.first_unacknowledged()))?;
        let mut acknowledged = next;
        // Acknowledgements arrive on their own task so that sending never waits for them.
        let (acks, mut ack_receiver) = mpsc::unbounded_channel::<std::io::Result<u64>>();
        let ack_task = tokio::spawn(async move {
            loop {
                let frame = read_frame(&mut reader).await;
                let done = frame.is_err();
                let result = frame.and_then(|(kind, body)| match kind {
                    ACK => u64_of(&body),
                    other => Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("unexpected frame kind {other}"),
                    )),
                });
                if acks.send(result).is_err() || done {
                    return;
                }
            }
        });
        let result = async {
            loop {
                // Send what the log has, up to the in-flight limit.
                let room = (acknowledged + IN_FLIGHT).saturating_sub(next) as usize;
                let entries: Vec<Entry> =
                    if room > 0 { self.with_log(|log| log.read(next, room, 4 << 20))? } else { Vec::new() };
                for entry in &entries {
                    let (sequence, time) = (entry.sequence.to_le_bytes(), entry.time.to_le_bytes());
                    let mac = self.key.mac(&challenge, &sequence, &time, &entry.payload);
                    write_frame(&mut writer, DATA, &[&sequence, &time, mac.as_ref(), &entry.payload])
                        .await
                        .map_err(io)?;
                    next = entry.sequence + 1;
                }
                if !entries.is_empty() {
                    writer.flush().await.map_err(io)?;
                }
                if *stop.borrow() && acknowledged >= self.with_log(|log| Ok(log.next_sequence()))? {
                    return Ok(());
                }
                let wait = if entries.is_empty() || room == 0 { Duration::from_millis(20) } else { Duration::ZERO };
                tokio::select! {
                    ack = ack_receiver.recv() => match ack {
                        Some(Ok(mut sequence)) => {
                            // ACKs that came together are noted once, for the latest: noting one syncs a file,
                            // and a receiver acknowledges many entries at once when a checkpoint copy settles them.
                            let mut failed = None;
                            while let Ok(later) = ack_receiver.try_recv() {
                                match later {
                                    Ok(later) => sequence = sequence.max(later),
                                    Err(error) => {
                                        failed = Some(error);
                                        break;
                                    }
                                }
                            }
                            self.with_log(|log| log.acknowledge(sequence))?;
                            acknowledged = acknowledged.max(sequence + 1);
                            state.send_modify(|state| state.acknowledged = acknowledged);
                            if let Some(error) = failed {
                                return Err(io(error));
                            }
                        }
                        Some(Err(error)) => return Err(io(error)),
                        None => return Err(Error::Transfer("the receiver closed the connection".into())),
                    },
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        .await;
        ack_task.abort();
        result
    }
}

/// An entry handed to the receiver's consumer; acknowledged to the forwarder once [`Delivered::done`] is called.
pub struct Delivered {
    /// The path it came on.
    pub path: String,
    /// Its sequence number in the sender's log.
    pub sequence: u64,
    /// When it was appended (milliseconds since 1970).
    pub time: i64,
    /// Its bytes.
    pub payload: Vec<u8>,
    done: oneshot::Sender<()>,
}

impl Delivered {
    /// The consumer has handled the entry.
    pub fn done(self) {
        self.done.send(()).ok();
    }
}

/// Accepts forwarders' connections and hands their entries on, each path's exactly once and in order while the
/// receiver runs.
pub struct Receiver {
    listener: TcpListener,
    paths: Paths,
    keys: PathKeys,
    tls: Option<crate::tls::ServerTls>,
}

/// What the receiver knows of each path, shared by its connections.
type Paths = Arc<Mutex<HashMap<String, Arc<PathState>>>>;

/// One path at the receiver: one connection serves it at a time (a new one takes over, and waits until the one
/// before has settled what it handed on), and everything before `durable` is done with.
#[derive(Default)]
struct PathState {
    serving: tokio::sync::Mutex<()>,
    durable: std::sync::atomic::AtomicU64,
    /// Bumped by each new connection, so that the one before stops reading (it may be stuck on a dead link).
    generation: watch::Sender<u64>,
}

/// How long a connection that ended waits for its consumer to finish what it handed on before the next
/// connection of its path goes on without it (what is not finished by then is sent again).
const SETTLE_WAIT: Duration = Duration::from_secs(30);
/// How long a connection may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Receiver {
    /// Listens on `address`, over TLS when given `tls` (then a connection without it is refused).
    pub async fn bind(address: &str, tls: Option<crate::tls::ServerTls>) -> Result<Receiver, Error> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|error| Error::Io { context: format!("transfer: cannot listen on {address}"), source: error })?;
        Ok(Receiver { listener, paths: Arc::default(), keys: Arc::default(), tls })
    }

    /// The keys of the paths it takes: a connection for a path without one is refused.
    pub fn keys(&self) -> PathKeys {
        self.keys.clone()
    }

    /// The address it listens on.
    pub fn local_address(&self) -> Result<SocketAddr, Error> {
        self.listener.local_addr().map_err(|error| Error::Transfer(error.into()))
    }

    /// Accepts connections until `deliveries` is closed by its consumer.
    pub async fn run(self, deliveries: mpsc::Sender<Delivered>) {
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    let deliveries = deliveries.clone();
                    let (paths, keys) = (self.paths.clone(), self.keys.clone());
                    let acceptor = self.tls.as_ref().map(crate::tls::ServerTls::acceptor);
                    tokio::spawn(async move {
                        stream.set_nodelay(true).ok();
                        let received = match acceptor {
                            None => receive(stream, deliveries, paths, keys).await,
                            // A handshake that does not finish soon holds nothing for long.
                            Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => receive(stream, deliveries, paths, keys).await,
                                Ok(Err(error)) => Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, format!("TLS: {error}"))),
                                Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the TLS handshake took too long")),
                            },
                        };
                        if let Err(error) = received {
                            let refused = error.kind() == std::io::ErrorKind::PermissionDenied;
                            if refused {
                                tracing::warn!(%peer, %error, "refused a data connection");
                            } else {
                                tracing::debug!(%peer, %error, "forwarder connection ended");
                            }
                        }
                    });
                }
                _ = deliveries.closed() => return,
            }
        }
    }
}

async fn receive<S>(stream: S, deliveries: mpsc::Sender<Delivered>, paths: Paths, keys: PathKeys) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    use std::sync::atomic::Ordering;
    let (reader, writer) = tokio::io::split(stream);
    let (mut reader, mut writer) = (BufReader::new(reader), BufWriter::new(writer));
    let (kind, body) = read_frame(&mut reader).await?;
    if kind != HELLO {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "expected HELLO"));
    }
    // The path, and the id of the log it sends from: what the receiver remembers of a path (which entry it expects
    // next) is that log's, not that of an earlier log under the same name, whose numbers the new one reuses.
    let hello = String::from_utf8_lossy(&body).into_owned();
    let (path, log_id) = hello.split_once('\0').map_or((hello.as_str(), ""), |(path, id)| (path, id));
    let (path, incarnation) = (path.to_string(), format!("{path}\0{log_id}"));
    let refused = |message: String| std::io::Error::new(std::io::ErrorKind::PermissionDenied, message);
    let key = keys.lock().ok().and_then(|keys| keys.get(&path).cloned());
    let Some(key) = key else {
        return Err(refused(format!("no path `{path}` comes to this machine")));
    };
    let mut challenge = [0u8; CHALLENGE_BYTES];
    getrandom::fill(&mut challenge).map_err(std::io::Error::other)?;
    let state = match paths.lock() {
        Ok(mut paths) => paths.entry(incarnation).or_default().clone(),
        Err(_) => return Err(std::io::Error::other("the receiver's path table was poisoned")),
    };
    // Take over the path: the connection before stops reading, settles what it handed on, and lets go.
    let mut mine = 0;
    state.generation.send_modify(|generation| {
        *generation += 1;
        mine = *generation;
    });
    let mut superseded = state.generation.subscribe();
    let _serving = state.serving.lock().await;
    let mut next = state.durable.load(Ordering::Acquire);
    write_frame(&mut writer, WELCOME, &[&next.to_le_bytes(), &challenge]).await?;
    writer.flush().await?;
    // Entries are handed on as they arrive and acknowledged in order as their consumer finishes them, which may
    // take a while (until a sink has synced them): many are in flight at once, as the forwarder sends them.
    let (handed, mut in_flight) = mpsc::channel::<(u64, oneshot::Receiver<()>)>(IN_FLIGHT as usize);
    let acknowledge = async {
        // ACKs of entries that finish together go out in one write; before waiting for anything, the ACKs written
        // so far go out (entries may stay in flight for a second, until a checkpoint copy holds them: an ACK must
        // not wait for them in the buffer).
        let mut writing = true;
        let mut unflushed = false;
        while let Some((sequence, handled)) =
            flushed_before_waiting(in_flight.recv(), &mut writer, &mut writing, &mut unflushed).await
        {
            if flushed_before_waiting(handled, &mut writer, &mut writing, &mut unflushed).await.is_err() {
                // Not finished (the pipeline failed or stopped): the forwarder sends it and everything after it
                // again, on a new connection.
                break;
            }
            state.durable.fetch_max(sequence + 1, Ordering::AcqRel);
            // Once the connection has gone, what is finished is still noted, for the next connection's WELCOME.
            if writing {
                writing = write_frame(&mut writer, ACK, &[&sequence.to_le_bytes()]).await.is_ok();
                unflushed = writing;
            }
        }
        if unflushed {
            writer.flush().await.ok();
        }
    };
    let hand_on = async move {
        loop {
            let frame = tokio::select! {
                frame = read_frame(&mut reader) => frame?,
                _ = superseded.wait_for(|generation| *generation != mine) => return Ok(()),
            };
            let (kind, body) = frame;
            if kind != DATA || body.len() < 16 + MAC_BYTES {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "expected DATA"));
            }
            let (header, rest) = body.split_at(16);
            let (mac, payload) = rest.split_at(MAC_BYTES);
            let expected_mac = key.mac(&challenge, &header[..8], &header[8..], payload);
            // Compared in constant time: how much of a forged MAC matched must not show in the timing.
            if !stratum_core::bytes::same_secret(mac, expected_mac.as_ref()) {
                return Err(refused(format!("a frame on `{path}` failed its check: forged, or sent with another key")));
            }
            let sequence = u64_of(header)?;
            let time = u64_of(&header[8..])? as i64;
            let (done, handled) = oneshot::channel();
            if sequence >= next {
                let delivered = Delivered { path: path.clone(), sequence, time, payload: payload.to_vec(), done };
                if deliveries.send(delivered).await.is_err() {
                    return Ok(());
                }
                next = sequence + 1;
            } else {
                // Finished before (everything before `durable` is): acknowledged again, in its turn.
                done.send(()).ok();
            }
            if handed.send((sequence, handled)).await.is_err() {
                return Ok(());
            }
        }
    };
    tokio::pin!(acknowledge);
    let (result, acknowledging) = tokio::select! {
        // An entry was not finished: the connection ends, and its sender sends from there again.
        () = &mut acknowledge => (Ok(()), false),
        result = hand_on => (result, true),
    };
    // The reading ended (and with it the sender of `in_flight`): settle what was handed on, within a bound, so
    // that the next connection of this path does not take it again.
    if acknowledging {
        let _ = tokio::time::timeout(SETTLE_WAIT, acknowledge).await;
    }
    result
}
