//! Kafka through librdkafka: sources that consume a topic in a consumer group, sinks that produce each record as a
//! JSON object.
//!
//! A source stores a message's offset only once its record is durable downstream ([`crate::ack`]; in order, so
//! an offset never passes a record that is not), and the stored offsets are committed every second: a source that
//! stops or crashes starts again after the last committed offset, so delivery from Kafka is at least once. A sink waits for the brokers to acknowledge every
//! message of a batch (`acks=all`) before it takes the next one.

use crate::Error;
use crate::ack::{Ack, Acks, Settled, Settlement};
use crate::component::{BoxFuture, BuildContext, Context, Output, Sink, Source};
use crate::connectors::decode_message;
use crate::record::{Batch, Record, into_records, to_json_object};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use std::collections::VecDeque;
use std::time::Duration;
use stratum_core::Cause;
use stratum_core::ir::{Sink as SinkItem, SinkKind, Source as SourceItem, SourceKind};
use stratum_core::types::Field;

/// Messages gathered into one batch at most.
const SOURCE_BATCH: usize = 1024;
/// How long a source waits for more messages before it sends a batch that is not full.
const BATCH_WAIT: Duration = Duration::from_millis(5);
/// How long a stopping source waits for what it sent to become durable, so that it can commit those offsets.
const SETTLE_WAIT: Duration = Duration::from_secs(15);
/// How long a sink waits for the brokers to take a message before it reports the batch as failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

fn bootstrap_servers(component: &str, brokers: &[String]) -> Result<String, Error> {
    if brokers.is_empty() {
        return Err(Error::Build {
            component: component.into(),
            message: "no Kafka brokers: add `brokers = [\"host:9092\"]`".into(),
        });
    }
    Ok(brokers.join(","))
}

/// Builds a `kafka` source.
pub fn build_source(source: &SourceItem, context: &BuildContext) -> Result<Box<dyn Source>, Error> {
    let SourceKind::Kafka { topic, brokers, group } = &source.kind else {
        return Err(Error::Build { component: source.name.clone(), message: "not a Kafka source".into() });
    };
    Ok(Box::new(KafkaSource {
        brokers: bootstrap_servers(&source.name, brokers)?,
        topic: topic.clone(),
        group: group.clone().unwrap_or_else(|| format!("stratum-{}-{}", context.application.name, source.name)),
        fields: source.fields.clone(),
    }))
}

/// A Kafka source: consumes a topic in a group, committing offsets once records are durable.
pub struct KafkaSource {
    /// `host:port,host:port`.
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// The consumer group.
    pub group: String,
    /// The fields of its records.
    pub fields: Vec<Field>,
}

impl KafkaSource {
    fn consumer(&self) -> Result<StreamConsumer, rdkafka::error::KafkaError> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            // A new group starts at the beginning of the topic rather than missing what was produced before it.
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            // Offsets are stored by hand, once the record is in the pipeline.
            .set("enable.auto.offset.store", "false")
            // A consumer that died is replaced by the group after 10 s rather than Kafka's default 45 s.
            .set("session.timeout.ms", "10000")
            .create()?;
        consumer.subscribe(&[&self.topic])?;
        Ok(consumer)
    }
}

impl Source for KafkaSource {
    fn run(self: Box<Self>, output: Output, mut context: Context) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async move {
            let consumer = self.consumer().map_err(|error| Error::Connect {
                component: context.component.clone(),
                what: format!("cannot consume `{}` from {}", self.topic, self.brokers),
                source: error.into(),
            })?;
            tracing::info!(
                component = context.component,
                brokers = self.brokers,
                topic = self.topic,
                group = self.group,
                "subscribed"
            );
            let mut records: Vec<Record> = Vec::new();
            // (partition, offset) of the last message taken from each partition in this batch.
            let mut offsets: Vec<(i32, i64)> = Vec::new();
            // Batches sent and not yet durable, oldest first, with their offsets.
            let mut unsettled = Unsettled::default();
            loop {
                let first = tokio::select! {
                    biased;
                    outcome = unsettled.next() => {
                        unsettled.settle(outcome, &consumer, &self.topic, &context);
                        continue;
                    }
                    message = consumer.recv() => Some(message),
                    _ = context.stopped() => None,
                };
                let Some(first) = first else { break };
                let mut next = Some(first);
                let deadline = tokio::time::Instant::now() + BATCH_WAIT;
                while let Some(received) = next.take() {
                    match received {
                        Ok(message) => {
                            let origin = format!(
                                "{} partition {} offset {}",
                                message.topic(),
                                message.partition(),
                                message.offset()
                            );
                            if let Some(record) =
                                decode_message(message.payload().unwrap_or_default(), &self.fields, &origin, &context)
                            {
                                records.push(record);
                            }
                            match offsets.iter_mut().find(|(partition, _)| *partition == message.partition()) {
                                Some(entry) => entry.1 = message.offset(),
                                None => offsets.push((message.partition(), message.offset())),
                            }
                        }
                        Err(error) => {
                            context.metrics.count_error();
                            tracing::warn!(component = context.component, %error, "Kafka consumer error");
                        }
                    }
                    if records.len() < SOURCE_BATCH {
                        next = tokio::time::timeout_at(deadline, consumer.recv()).await.ok();
                    }
                }
                let (ack, settlement) = Ack::new();
                if output.send_acked(std::mem::take(&mut records), ack.into()).await.is_err() {
                    break;
                }
                unsettled.batches.push_back((std::mem::take(&mut offsets), settlement));
            }
            // What is still on its way: its offsets are stored as it becomes durable (downstream drains meanwhile:
            // its input ends with this output).
            drop(output);
            let _ = tokio::time::timeout(SETTLE_WAIT, async {
                while !unsettled.batches.is_empty() {
                    let outcome = unsettled.next().await;
                    unsettled.settle(outcome, &consumer, &self.topic, &context);
                }
            })
            .await;
            // Commit what was stored before leaving the group, so that a restart does not read it again.
            if let Err(error) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
                tracing::debug!(component = context.component, %error, "nothing to commit");
            }
            // Leaving the group waits for the coordinator: not on the async threads.
            consumer.unsubscribe();
            let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
            Ok(())
        })
    }
}

/// A source's batches on their way, with the offsets each moves past.
#[derive(Default)]
struct Unsettled {
    batches: VecDeque<(Vec<(i32, i64)>, Settlement)>,
    /// A batch was not made durable: no later offset may be stored, or it would skip that batch.
    failed: bool,
}

impl Unsettled {
    /// The outcome of the oldest batch (never, while there is none).
    async fn next(&mut self) -> Settled {
        match self.batches.front_mut() {
            Some((_, settlement)) => settlement.await,
            None => std::future::pending().await,
        }
    }

    /// Stores the oldest batch's offsets, once it settled durable, for the next commit.
    fn settle(&mut self, outcome: Settled, consumer: &StreamConsumer, topic: &str, context: &Context) {
        let Some((offsets, _)) = self.batches.pop_front() else { return };
        self.failed |= outcome == Settled::Failed;
        if self.failed {
            return;
        }
        for (partition, offset) in offsets {
            if let Err(error) = consumer.store_offset(topic, partition, offset) {
                tracing::warn!(component = context.component, %error, partition, offset, "cannot store a Kafka offset");
            }
        }
    }
}

/// Builds a `kafka` sink.
pub fn build_sink(sink: &SinkItem, _context: &BuildContext) -> Result<Box<dyn Sink>, Error> {
    let SinkKind::Kafka { topic, brokers } = &sink.kind else {
        return Err(Error::Build { component: sink.name.clone(), message: "not a Kafka sink".into() });
    };
    Ok(Box::new(KafkaSink {
        brokers: bootstrap_servers(&sink.name, brokers)?,
        topic: topic.clone(),
        fields: sink.fields.clone(),
        producer: None,
    }))
}

/// A Kafka sink: produces each record to a topic.
pub struct KafkaSink {
    brokers: String,
    topic: String,
    fields: Vec<Field>,
    /// Created on first use.
    producer: Option<FutureProducer>,
}

impl KafkaSink {
    fn failed(&self, context: &Context, source: impl Into<Cause>) -> Error {
        Error::Deliver {
            component: context.component.clone(),
            target: format!("Kafka topic `{}` at {}", self.topic, self.brokers),
            source: source.into(),
        }
    }
}

impl Sink for KafkaSink {
    fn write<'a>(&'a mut self, batch: Batch, acks: Acks, context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if self.producer.is_none() {
                let producer: FutureProducer = ClientConfig::new()
                    .set("bootstrap.servers", &self.brokers)
                    .set("acks", "all")
                    .set("enable.idempotence", "true")
                    .set("linger.ms", "5")
                    .create()
                    .map_err(|error| self.failed(context, error))?;
                self.producer = Some(producer);
            }
            let Some(producer) = &self.producer else { return Ok(()) };
            let payloads: Vec<Vec<u8>> = into_records(batch)
                .iter()
                .map(|record| serde_json::Value::Object(to_json_object(record, &self.fields)).to_string().into_bytes())
                .collect();
            let deliveries = payloads.iter().map(|payload| {
                context.metrics.count_in(1, payload.len());
                producer.send(FutureRecord::<(), [u8]>::to(&self.topic).payload(payload), DELIVERY_TIMEOUT)
            });
            for delivery in futures_util::future::join_all(deliveries).await {
                if let Err((error, _)) = delivery {
                    return Err(self.failed(context, error));
                }
            }
            // Every in-sync replica has every record (`acks = all`).
            acks.done();
            Ok(())
        })
    }

    fn finish<'a>(&'a mut self, context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let Some(producer) = self.producer.take() else { return Ok(()) };
            let flushed = tokio::task::spawn_blocking(move || producer.flush(Timeout::After(Duration::from_secs(10))))
                .await
                .map_err(|error| self.failed(context, error))?;
            flushed.map_err(|error| self.failed(context, error))
        })
    }
}
