//! NATS: sources that subscribe to a subject (wildcards `*` and `>`), sinks that publish each record as a JSON
//! object to a subject (with `{field}` placeholders). Core NATS delivers at most once: a message published while
//! no source is subscribed, or while a source is too slow to keep up with the server, is gone — what NATS users
//! expect; an application that needs more puts a store-and-forward buffer behind the source.
//!
//! The client reconnects on its own; a source started before its server keeps trying to connect.

use crate::Error;
use crate::ack::Acks;
use crate::component::{BoxFuture, BuildContext, Context, Output, Sink, Source};
use crate::connectors::{Template, decode_message};
use crate::record::{Batch, Record, into_records, to_json_object};
use futures_util::StreamExt;
use std::time::Duration;
use stratum_core::Cause;
use stratum_core::ir::{Sink as SinkItem, SinkKind, Source as SourceItem, SourceKind};
use stratum_core::types::Field;

/// Where a component that names no server connects: the NATS server's own default.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// Messages gathered into one batch at most.
const SOURCE_BATCH: usize = 1024;

async fn connect(url: &str, name: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new().name(name).retry_on_initial_connect().connect(url).await
}

/// Builds a `nats` source.
pub fn build_source(source: &SourceItem, context: &BuildContext) -> Result<Box<dyn Source>, Error> {
    let SourceKind::Nats { subject, url } = &source.kind else {
        return Err(Error::Build { component: source.name.clone(), message: "not a NATS source".into() });
    };
    Ok(Box::new(NatsSource {
        url: url.clone().unwrap_or_else(|| DEFAULT_URL.into()),
        subject: subject.clone(),
        fields: source.fields.clone(),
        name: format!("stratum-{}-{}", context.application.name, source.name),
    }))
}

/// A NATS source: subscribes to a subject (core NATS: at most once).
pub struct NatsSource {
    /// The server's URL.
    pub url: String,
    /// The subject (wildcards allowed).
    pub subject: String,
    /// The fields of its records.
    pub fields: Vec<Field>,
    /// The client's name, as the server's monitoring shows it.
    pub name: String,
}

impl Source for NatsSource {
    fn run(self: Box<Self>, output: Output, mut context: Context) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async move {
            let connecting = connect(&self.url, &self.name);
            let client = tokio::select! {
                client = connecting => client,
                _ = context.stopped() => return Ok(()),
            }
            .map_err(|error| Error::Connect {
                component: context.component.clone(),
                what: format!("cannot connect to NATS at {}", self.url),
                source: error.into(),
            })?;
            let mut subscriber = client.subscribe(self.subject.clone()).await.map_err(|error| Error::Connect {
                component: context.component.clone(),
                what: format!("cannot subscribe to `{}`", self.subject),
                source: error.into(),
            })?;
            tracing::info!(component = context.component, url = self.url, subject = self.subject, "subscribed");
            let mut records: Vec<Record> = Vec::new();
            loop {
                let message = tokio::select! {
                    message = subscriber.next() => message,
                    _ = context.stopped() => None,
                };
                let Some(message) = message else { break };
                let mut next = Some(message);
                // Take what has already arrived as well, so that a busy subject moves in large batches.
                while let Some(message) = next.take() {
                    if let Some(record) = decode_message(
                        &message.payload,
                        &self.fields,
                        &format!("subject {}", message.subject),
                        &context,
                    ) {
                        records.push(record);
                    }
                    if records.len() < SOURCE_BATCH {
                        next = futures_util::FutureExt::now_or_never(subscriber.next()).flatten();
                    }
                }
                if output.send(std::mem::take(&mut records)).await.is_err() {
                    break;
                }
            }
            let _ = subscriber.unsubscribe().await;
            Ok(())
        })
    }
}

/// Builds a `nats` sink.
pub fn build_sink(sink: &SinkItem, context: &BuildContext) -> Result<Box<dyn Sink>, Error> {
    let SinkKind::Nats { subject, url } = &sink.kind else {
        return Err(Error::Build { component: sink.name.clone(), message: "not a NATS sink".into() });
    };
    Ok(Box::new(NatsSink {
        url: url.clone().unwrap_or_else(|| DEFAULT_URL.into()),
        // A value must not add tokens or wildcards to the subject.
        subject: Template::parse(&sink.name, subject, &sink.fields, &['.', '*', '>', ' ', '\t'])?,
        fields: sink.fields.clone(),
        name: format!("stratum-{}-{}", context.application.name, sink.name),
        client: None,
        unflushed: Acks::none(),
    }))
}

/// A NATS sink: publishes each record to a subject (a template of the record's fields).
pub struct NatsSink {
    url: String,
    subject: Template,
    fields: Vec<Field>,
    name: String,
    /// Connected on first use, so that building a pipeline needs no async runtime.
    client: Option<async_nats::Client>,
    /// Shares in what was published since the server last confirmed it had everything.
    unflushed: Acks,
}

impl NatsSink {
    /// Waits (a while) until everything published has left the client's buffer for the server.
    async fn reach_server(&self, client: &async_nats::Client, context: &Context) -> Result<(), Error> {
        match tokio::time::timeout(Duration::from_secs(10), client.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(self.failed(context, error)),
            Err(_) => Err(self.failed(context, "the server did not take the last messages within 10 s")),
        }
    }

    fn failed(&self, context: &Context, source: impl Into<Cause>) -> Error {
        let target = format!("NATS at {}", self.url);
        Error::Deliver { component: context.component.clone(), target, source: source.into() }
    }
}

impl Sink for NatsSink {
    fn write<'a>(&'a mut self, batch: Batch, acks: Acks, context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if self.client.is_none() {
                let client = connect(&self.url, &self.name).await.map_err(|error| self.failed(context, error))?;
                self.client = Some(client);
            }
            let Some(client) = self.client.clone() else { return Ok(()) };
            for record in into_records(batch) {
                let payload = serde_json::Value::Object(to_json_object(&record, &self.fields)).to_string().into_bytes();
                context.metrics.count_in(1, payload.len());
                client
                    .publish(self.subject.fill(&record), payload.into())
                    .await
                    .map_err(|error| self.failed(context, error))?;
            }
            self.unflushed.extend(acks);
            Ok(())
        })
    }

    fn flush<'a>(&'a mut self, context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let Some(client) = self.client.clone() else { return Ok(()) };
            if self.unflushed.is_empty() {
                return Ok(());
            }
            self.reach_server(&client, context).await?;
            // Core NATS keeps nothing: reaching the server is as durable as it gets (docs/reliability.md).
            std::mem::take(&mut self.unflushed).done();
            Ok(())
        })
    }

    fn finish<'a>(&'a mut self, context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let Some(client) = self.client.take() else { return Ok(()) };
            self.reach_server(&client, context).await?;
            std::mem::take(&mut self.unflushed).done();
            Ok(())
        })
    }
}
