//! MQTT: sources that subscribe to a topic filter (wildcards `+` and `#`), sinks that publish each record as a
//! JSON object to a topic (with `{field}` placeholders), over MQTT 3.1.1 (`mqtt://host:port`) or MQTT 5
//! (`mqtt5://host:port`), at QoS 1, and the embedded broker used when a component names no broker.
//!
//! A source acknowledges a message to the broker only once its record is in the pipeline, and keeps a
//! persistent session (a stable client id, no clean start), so the broker holds messages while the source is
//! down: at least once, from broker to pipeline.

use crate::Error;
use crate::ack::Acks;
use crate::component::{BoxFuture, BuildContext, Context, Output, Sink, Source};
use crate::connectors::{Template, decode_message};
use crate::ingest::{IngestLog, ingest_directory};
use crate::record::{Batch, Record, into_records, to_json_object};
use rumqttc::v5::mqttbytes::v5::Packet as Packet5;
use rumqttc::{Event, Packet};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use stratum_core::Cause;
use stratum_core::ir::{Application, Sink as SinkItem, SinkKind, Source as SourceItem, SourceKind};
use stratum_core::types::Field;

/// Why a broker URL names no broker Stratum can connect to.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BadBrokerUrl(String);

/// A broker address: host, port and protocol version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerAddress {
    /// The broker's host.
    pub host: String,
    /// The broker's port.
    pub port: u16,
    /// MQTT 5 rather than 3.1.1.
    pub version5: bool,
}

impl BrokerAddress {
    /// `mqtt://host:port` (3.1.1), `mqtt5://host:port` (5), `tcp://host:port` or `host:port`; the port defaults
    /// to 1883.
    pub fn parse(url: &str) -> Result<BrokerAddress, BadBrokerUrl> {
        let (version5, rest) = match url.split_once("://") {
            Some(("mqtt" | "tcp", rest)) => (false, rest),
            Some(("mqtt5", rest)) => (true, rest),
            Some((scheme, _)) => {
                return Err(BadBrokerUrl(format!(
                    "unknown scheme `{scheme}://`: use mqtt:// (MQTT 3.1.1) or mqtt5:// (MQTT 5)"
                )));
            }
            None => (false, url),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => {
                (host, port.parse::<u16>().map_err(|_| BadBrokerUrl(format!("`{port}` is not a port number")))?)
            }
            None => (rest, 1883),
        };
        if host.is_empty() {
            return Err(BadBrokerUrl(format!("`{url}` names no host")));
        }
        Ok(BrokerAddress { host: host.into(), port, version5 })
    }
}

fn broker_of(component: &str, declared: Option<&str>, context: &BuildContext) -> Result<BrokerAddress, Error> {
    let url = declared.or(context.mqtt_broker).ok_or_else(|| Error::Build {
        component: component.into(),
        message: "no MQTT broker: give the component a `broker`, or run it where the embedded broker runs".into(),
    })?;
    BrokerAddress::parse(url).map_err(|error| Error::Build { component: component.into(), message: error.0 })
}

/// A connected client of either protocol version.
#[derive(Clone)]
enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

enum EventLoop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// A message to acknowledge once handled.
enum Delivery {
    V4(Box<rumqttc::Publish>),
    V5(Box<rumqttc::v5::mqttbytes::v5::Publish>),
}

/// What the event loop saw, the same for both versions.
enum Seen {
    Message { topic: String, payload: Vec<u8>, delivery: Delivery },
    Connected,
    Acknowledged,
    Other,
}

fn connect(address: &BrokerAddress, client_id: &str, persistent: bool) -> (Client, EventLoop) {
    if address.version5 {
        let mut options = rumqttc::v5::MqttOptions::new(client_id, &address.host, address.port);
        options.set_keep_alive(Duration::from_secs(10)).set_clean_start(!persistent).set_manual_acks(true);
        options.set_max_packet_size(Some(1 << 20));
        if persistent {
            options.set_session_expiry_interval(Some(u32::MAX));
        }
        let (client, event_loop) = rumqttc::v5::AsyncClient::new(options, 1024);
        (Client::V5(client), EventLoop::V5(Box::new(event_loop)))
    } else {
        let mut options = rumqttc::MqttOptions::new(client_id, &address.host, address.port);
        options.set_keep_alive(Duration::from_secs(10)).set_clean_session(!persistent).set_manual_acks(true);
        options.set_max_packet_size(1 << 20, 1 << 20).set_inflight(256);
        let (client, event_loop) = rumqttc::AsyncClient::new(options, 1024);
        (Client::V4(client), EventLoop::V4(Box::new(event_loop)))
    }
}

impl EventLoop {
    async fn poll(&mut self) -> Result<Seen, Cause> {
        match self {
            EventLoop::V4(event_loop) => match event_loop.poll().await.map_err(Cause::from)? {
                Event::Incoming(Packet::Publish(publish)) => Ok(Seen::Message {
                    topic: publish.topic.clone(),
                    payload: publish.payload.to_vec(),
                    delivery: Delivery::V4(Box::new(publish)),
                }),
                Event::Incoming(Packet::ConnAck(_)) => Ok(Seen::Connected),
                Event::Incoming(Packet::PubAck(_)) => Ok(Seen::Acknowledged),
                _ => Ok(Seen::Other),
            },
            EventLoop::V5(event_loop) => match event_loop.poll().await.map_err(Cause::from)? {
                rumqttc::v5::Event::Incoming(Packet5::Publish(publish)) => Ok(Seen::Message {
                    topic: String::from_utf8_lossy(&publish.topic).into_owned(),
                    payload: publish.payload.to_vec(),
                    delivery: Delivery::V5(Box::new(publish)),
                }),
                rumqttc::v5::Event::Incoming(Packet5::ConnAck(_)) => Ok(Seen::Connected),
                rumqttc::v5::Event::Incoming(Packet5::PubAck(_)) => Ok(Seen::Acknowledged),
                _ => Ok(Seen::Other),
            },
        }
    }
}

impl Client {
    async fn subscribe(&self, filter: &str) -> Result<(), Cause> {
        match self {
            Client::V4(client) => client.subscribe(filter, rumqttc::QoS::AtLeastOnce).await.map_err(Cause::from),
            Client::V5(client) => {
                client.subscribe(filter, rumqttc::v5::mqttbytes::QoS::AtLeastOnce).await.map_err(Cause::from)
            }
        }
    }

    async fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), Cause> {
        match self {
            Client::V4(client) => {
                client.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload).await.map_err(Cause::from)
            }
            Client::V5(client) => client
                .publish(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce, false, payload)
                .await
                .map_err(Cause::from),
        }
    }

    async fn acknowledge(&self, delivery: &Delivery) {
        let result = match (self, delivery) {
            (Client::V4(client), Delivery::V4(publish)) => client.ack(publish).await.map_err(Cause::from),
            (Client::V5(client), Delivery::V5(publish)) => client.ack(publish).await.map_err(Cause::from),
            _ => Ok(()),
        };
        if let Err(error) = result {
            tracing::debug!(%error, "cannot acknowledge an MQTT message");
        }
    }

    /// Asks the event loop to disconnect, without waiting (it may be busy or gone).
    fn try_disconnect(&self) {
        let _ = match self {
            Client::V4(client) => client.try_disconnect().map_err(Cause::from),
            Client::V5(client) => client.try_disconnect().map_err(Cause::from),
        };
    }
}

/// Builds an `mqtt` source.
pub fn build_source(source: &SourceItem, context: &BuildContext) -> Result<Box<dyn Source>, Error> {
    let SourceKind::Mqtt { topic, broker } = &source.kind else {
        return Err(Error::Build { component: source.name.clone(), message: "not an MQTT source".into() });
    };
    Ok(Box::new(MqttSource {
        broker: broker_of(&source.name, broker.as_deref(), context)?,
        filter: topic.clone(),
        fields: source.fields.clone(),
        client_id: format!("stratum-{}-{}", context.application.name, source.name),
        ingest: context.data_dir.map(|data_dir| ingest_directory(data_dir, &source.name)),
    }))
}

/// An MQTT source: subscribes to a topic filter at QoS 1, acknowledging once records are durable.
pub struct MqttSource {
    /// The broker.
    pub broker: BrokerAddress,
    /// The topic filter (`+` and `#` allowed).
    pub filter: String,
    /// The fields of its records.
    pub fields: Vec<Field>,
    /// Its client id (stable, so the broker keeps its session).
    pub client_id: String,
    /// Where it keeps what it acknowledged before the pipeline made it durable ([`crate::ingest`]); without a
    /// data directory it acknowledges what is in the pipeline.
    pub ingest: Option<PathBuf>,
}

/// Messages gathered into one batch at most.
const SOURCE_BATCH: usize = 1024;
/// The longest a sink waits for the client to take one more message to publish.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// Events the source's reader may get ahead of the source before it pauses.
const HIGH_WATER: u64 = 8192;

impl Source for MqttSource {
    fn run(self: Box<Self>, output: Output, mut context: Context) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async move {
            let ingest = match &self.ingest {
                Some(directory) => Some(IngestLog::open(directory, &output, &context).await?),
                None => None,
            };
            let (client, mut event_loop) = connect(&self.broker, &self.client_id, true);
            // The event loop runs on its own task, so that it always drains the client's requests (acknowledgements)
            // and no poll is ever cancelled half-way. What it sees waits in a channel: QoS 1 messages are bounded
            // by the broker's window of unacknowledged messages (we acknowledge only what the pipeline took); a
            // flood of QoS 0 messages is held back by pausing the reading above a high-water mark.
            let (seen_sender, mut seen) = tokio::sync::mpsc::unbounded_channel::<Result<Seen, Cause>>();
            let waiting = Arc::new(AtomicU64::new(0));
            let waiting_in_task = waiting.clone();
            let polling = tokio::spawn(async move {
                loop {
                    while waiting_in_task.load(Ordering::Relaxed) > HIGH_WATER {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    let event = event_loop.poll().await;
                    let failed = event.is_err();
                    waiting_in_task.fetch_add(1, Ordering::Relaxed);
                    if seen_sender.send(event).is_err() {
                        return;
                    }
                    if failed {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            });
            let mut records: Vec<Record> = Vec::new();
            let mut deliveries: Vec<Delivery> = Vec::new();
            loop {
                let event = tokio::select! {
                    event = seen.recv() => event,
                    _ = context.stopped() => {
                        client.try_disconnect();
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        polling.abort();
                        return Ok(());
                    }
                };
                let Some(event) = event else { return Ok(()) };
                waiting.fetch_sub(1, Ordering::Relaxed);
                // Take whatever else has arrived already, then hand the batch on and acknowledge it at once: the
                // broker sends only a few unacknowledged messages at a time (Mosquitto: 20), so a source that
                // waited to fill batches would starve itself and let the broker's queue overflow.
                let mut next = Some(event);
                while let Some(event) = next.take() {
                    self.handle(event, &client, &context, &mut records, &mut deliveries).await;
                    if records.len() < SOURCE_BATCH {
                        next = seen.try_recv().ok();
                        if next.is_some() {
                            waiting.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                }
                if records.is_empty() {
                    continue;
                }
                let records = std::mem::take(&mut records);
                let sent = match &ingest {
                    // In the ingest log, synced: the broker may forget them, and the pipeline has them after.
                    Some(ingest) => {
                        let sequence = ingest.keep(&records).await?;
                        for delivery in deliveries.drain(..) {
                            client.acknowledge(&delivery).await;
                        }
                        ingest.send(sequence, records, &output).await.is_ok()
                    }
                    // In the pipeline: the broker may forget them (a crash in the next moment loses them).
                    None => {
                        let sent = output.send(records).await.is_ok();
                        for delivery in deliveries.drain(..).filter(|_| sent) {
                            client.acknowledge(&delivery).await;
                        }
                        sent
                    }
                };
                if !sent {
                    client.try_disconnect();
                    polling.abort();
                    return Ok(());
                }
            }
        })
    }
}

impl MqttSource {
    async fn handle(
        &self,
        event: Result<Seen, Cause>,
        client: &Client,
        context: &Context,
        records: &mut Vec<Record>,
        deliveries: &mut Vec<Delivery>,
    ) {
        match event {
            Ok(Seen::Message { topic, payload, delivery }) => {
                match decode_message(&payload, &self.fields, &format!("topic {topic}"), context) {
                    Some(record) => {
                        records.push(record);
                        deliveries.push(delivery);
                    }
                    None => client.acknowledge(&delivery).await,
                }
            }
            Ok(Seen::Connected) => {
                tracing::info!(component = context.component, broker = %format!("{}:{}", self.broker.host, self.broker.port), filter = self.filter, "connected");
                if let Err(error) = client.subscribe(&self.filter).await {
                    tracing::warn!(component = context.component, %error, "cannot subscribe");
                }
            }
            Ok(_) => {}
            Err(error) => {
                context.metrics.count_error();
                tracing::warn!(component = context.component, %error, "MQTT connection failed; retrying");
            }
        }
    }
}

/// Builds an `mqtt` sink.
pub fn build_sink(sink: &SinkItem, context: &BuildContext) -> Result<Box<dyn Sink>, Error> {
    let SinkKind::Mqtt { topic } = &sink.kind else {
        return Err(Error::Build { component: sink.name.clone(), message: "not an MQTT sink".into() });
    };
    let broker = broker_of(&sink.name, None, context)?;
    Ok(Box::new(MqttSink::new(
        &sink.name,
        broker,
        topic,
        sink.fields.clone(),
        &format!("stratum-{}-{}", context.application.name, sink.name),
    )?))
}

/// An MQTT sink: publishes each record to a topic (a template of the record's fields).
pub struct MqttSink {
    broker: BrokerAddress,
    client_id: String,
    component: String,
    topic: Template,
    fields: Vec<Field>,
    published: u64,
    /// Shares in the acknowledgements of what was published, each with the count of messages published up to the
    /// end of its batch: done once the broker has acknowledged that many (PUBACK).
    unacknowledged: VecDeque<(u64, Acks)>,
    /// Connected on first use, so that building a pipeline needs no async runtime.
    connection: Option<Connection>,
}

struct Connection {
    client: Client,
    acknowledged: Arc<AtomicU64>,
    /// Set once the sink disconnects: the connection closing then is the end, not a failure to retry.
    closing: Arc<std::sync::atomic::AtomicBool>,
    event_loop: tokio::task::JoinHandle<()>,
}

impl MqttSink {
    /// A sink of `component` publishing records with `fields` to `broker` on the topic template `topic`, as
    /// client `client_id`.
    pub fn new(
        component: &str,
        broker: BrokerAddress,
        topic: &str,
        fields: Vec<Field>,
        client_id: &str,
    ) -> Result<MqttSink, Error> {
        let topic = Template::parse(component, topic, &fields, &['/', '+', '#'])?;
        Ok(MqttSink {
            broker,
            client_id: client_id.into(),
            component: component.into(),
            topic,
            fields,
            published: 0,
            unacknowledged: VecDeque::new(),
            connection: None,
        })
    }

    /// Marks done the batches the broker has acknowledged every message of.
    fn settle(&mut self) {
        let Some(connection) = &self.connection else { return };
        let acknowledged = connection.acknowledged.load(Ordering::Relaxed);
        while self.unacknowledged.front().is_some_and(|(published, _)| *published <= acknowledged) {
            if let Some((_, acks)) = self.unacknowledged.pop_front() {
                acks.done();
            }
        }
    }

    fn connection(&mut self) -> &Connection {
        self.connection.get_or_insert_with(|| {
            let (client, mut event_loop) = connect(&self.broker, &self.client_id, false);
            let acknowledged = Arc::new(AtomicU64::new(0));
            let counter = acknowledged.clone();
            let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let closed = closing.clone();
            let component = self.component.clone();
            let event_loop = tokio::spawn(async move {
                let mut failures = 0u64;
                loop {
                    match event_loop.poll().await {
                        Ok(Seen::Acknowledged) => {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => failures = 0,
                        Err(_) if closed.load(Ordering::Relaxed) => return,
                        Err(error) => {
                            failures += 1;
                            tracing::warn!(component, %error, "MQTT connection failed; retrying");
                            tokio::time::sleep(Duration::from_millis((100 * failures).min(2000))).await;
                        }
                    }
                }
            });
            Connection { client, acknowledged, closing, event_loop }
        })
    }
}

impl Sink for MqttSink {
    fn write<'a>(&'a mut self, batch: Batch, acks: Acks, context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let client = self.connection().client.clone();
            for record in into_records(batch) {
                let payload = serde_json::Value::Object(to_json_object(&record, &self.fields)).to_string().into_bytes();
                context.metrics.count_in(1, payload.len());
                let topic = self.topic.fill(&record);
                // The client queues what it publishes; a broker that cannot be reached lets the queue fill, and
                // then the wait is bounded: the sink fails (and its data plane starts again after a backoff).
                let published = match tokio::time::timeout(PUBLISH_TIMEOUT, client.publish(topic, payload)).await {
                    Ok(published) => published,
                    Err(_) => Err(Cause::from(format!(
                        "the broker took no message for {} s; is it running and reachable?",
                        PUBLISH_TIMEOUT.as_secs()
                    ))),
                };
                published.map_err(|source| Error::Deliver {
                    component: context.component.clone(),
                    target: format!("MQTT broker {}:{}", self.broker.host, self.broker.port),
                    source,
                })?;
                self.published += 1;
            }
            self.unacknowledged.push_back((self.published, acks));
            self.settle();
            Ok(())
        })
    }

    fn flush<'a>(&'a mut self, _context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.settle();
            Ok(())
        })
    }

    fn finish<'a>(&'a mut self, context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let Some(acknowledged) = self.connection.as_ref().map(|connection| connection.acknowledged.clone()) else {
                return Ok(());
            };
            // Wait (a while) for the broker to acknowledge everything published.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while acknowledged.load(Ordering::Relaxed) < self.published && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            self.settle();
            // What the broker did not acknowledge stays unfinished: its sources must not acknowledge it either.
            self.unacknowledged.clear();
            let Some(connection) = self.connection.take() else { return Ok(()) };
            let missing = self.published.saturating_sub(connection.acknowledged.load(Ordering::Relaxed));
            if missing > 0 {
                tracing::warn!(component = context.component, missing, "the broker did not acknowledge every message");
                context.metrics.count_error();
            }
            connection.closing.store(true, Ordering::Relaxed);
            connection.client.try_disconnect();
            tokio::time::sleep(Duration::from_millis(50)).await;
            connection.event_loop.abort();
            Ok(())
        })
    }
}

/// Whether the components that run (`runs` says which) need a broker from the machine: an MQTT sink or a service's
/// MQTT output publishes to it, and an MQTT source that names no broker reads from it — unless sources are
/// simulated. One rule for `stratum up` and `run-pipeline`, which start the embedded broker when it holds.
pub fn needs_machine_broker(application: &Application, runs: &dyn Fn(&str) -> bool, simulate: bool) -> bool {
    application.sinks.iter().any(|sink| runs(&sink.name) && matches!(sink.kind, SinkKind::Mqtt { .. }))
        || application
            .services
            .iter()
            .any(|service| runs(&service.name) && matches!(service.output, Some(SinkKind::Mqtt { .. })))
        || (!simulate
            && application
                .sources
                .iter()
                .any(|source| runs(&source.name) && matches!(source.kind, SourceKind::Mqtt { broker: None, .. })))
}

/// The broker embedded in Stratum (rumqttd), for applications on one machine: MQTT 3.1.1 and MQTT 5 listeners.
pub struct EmbeddedBroker {
    /// The MQTT 3.1.1 listener.
    pub v4: SocketAddr,
    /// The MQTT 5 listener.
    pub v5: SocketAddr,
}

impl EmbeddedBroker {
    /// Starts the broker on its own threads, listening on `v4` (MQTT 3.1.1) and `v5` (MQTT 5); returns once
    /// both accept connections. The broker runs until the process ends.
    pub fn start(v4: SocketAddr, v5: SocketAddr) -> Result<EmbeddedBroker, Error> {
        let server = |name: &str, listen: SocketAddr| {
            serde_json::json!({
                "name": name,
                "listen": listen.to_string(),
                "next_connection_delay_ms": 1,
                "connections": {
                    "connection_timeout_ms": 60000,
                    "max_payload_size": 1 << 20,
                    "max_inflight_count": 500,
                    "dynamic_filters": true
                }
            })
        };
        let config = serde_json::json!({
            "id": 0,
            "router": {
                "max_connections": 10010,
                "max_outgoing_packet_count": 1000,
                "max_segment_size": 104857600,
                "max_segment_count": 10
            },
            "v4": { "1": server("v4", v4) },
            "v5": { "1": server("v5", v5) }
        });
        let config: rumqttd::Config =
            serde_json::from_value(config).map_err(|error| Error::Broker(format!("configuration: {error}").into()))?;
        let mut broker = rumqttd::Broker::new(config);
        std::thread::Builder::new()
            .name("stratum-mqtt-broker".into())
            .spawn(move || {
                if let Err(error) = broker.start() {
                    tracing::error!(%error, "the embedded MQTT broker stopped");
                }
            })
            .map_err(Error::io("starting the embedded MQTT broker"))?;
        for address in [v4, v5] {
            let started = std::time::Instant::now();
            while std::net::TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_err() {
                if started.elapsed() > Duration::from_secs(5) {
                    return Err(Error::Broker(
                        format!("the embedded MQTT broker did not start listening on {address} (is the port taken?)")
                            .into(),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        tracing::info!(%v4, %v5, "embedded MQTT broker listening");
        Ok(EmbeddedBroker { v4, v5 })
    }

    /// The URL of its MQTT 3.1.1 listener.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.v4)
    }

    /// Its MQTT 5 URL (`mqtt5://…`).
    pub fn url5(&self) -> String {
        format!("mqtt5://{}", self.v5)
    }
}
