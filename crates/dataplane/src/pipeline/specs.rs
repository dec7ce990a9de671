//! What an application asks a machine to run, before anything is built: each component with the producers it
//! reads, the producer it sends on as, and its fingerprint (see [`super`]); and building one.

use super::PipelineOptions;
use crate::Error;
use crate::component::{BuildContext, Operator, Sink, Source};
use crate::log::LogOptions;
use crate::registry::{build_operator, build_sink, build_source};
use crate::remote::{Partition, RemoteOutput, RemoteSink, RemoteSource};
use crate::sinks::feed::{DEFAULT_FEED_LENGTH, Feed, FeedSink};
use crate::sources::generator;
use crate::transfer::Delivered;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use stratum_core::ir::{
    Application, Service, ServiceInput, Sink as SinkItem, SinkKind, Source as SourceItem, SourceKind, Stream,
};
use stratum_core::types::Field;
use tokio::sync::mpsc;

pub(super) use super::ComponentInfo;

/// One component the application asks for, before it is built.
pub(super) struct Spec<'a> {
    pub info: ComponentInfo,
    /// The kind its metrics carry.
    pub metrics_kind: String,
    /// The producers it reads, each with the input it arrives on.
    pub inputs: Vec<(String, usize)>,
    /// The producer whose records it sends on: its own name, or for a path from another machine the producer it
    /// stands in for. Sinks send nothing on.
    pub output: Option<String>,
    pub fingerprint: String,
    pub what: What<'a>,
}

pub(super) enum What<'a> {
    Sink(SinkItem),
    Feed(Feed),
    Stream(&'a Stream),
    Service(&'a Service),
    PathOut(RemoteOutput, LogOptions),
    Source { item: &'a SourceItem, simulated: bool },
    PathIn(mpsc::Receiver<Delivered>),
}

pub(super) enum Built {
    Source(Box<dyn Source>),
    Operator(Box<dyn Operator>),
    Sink(Box<dyn Sink>),
}

/// What a service serves, as its users' fingerprints take it: the service's definition, its model's and the
/// version of that model that serves in `model_store` (the chosen one, or the newest) — so a new version, or
/// another one chosen, restarts what loads it (the data plane's
/// `predict()` streams and service operators here, the control plane's service pools).
pub fn served_model(
    application: &Application,
    service: &str,
    model_store: Option<&std::path::Path>,
) -> serde_json::Value {
    let service = application.services.iter().find(|item| item.name == service);
    let model = service.and_then(|service| application.models.iter().find(|model| model.name == service.model));
    let version =
        service.and_then(|service| stratum_ml::artifact::ModelStore::new(model_store?).serving(&service.model).ok()?);
    json!({ "service": service, "model": model, "version": version })
}

/// The components an application (or a machine's part of it) asks for, each with what it reads and its
/// fingerprint, in the order the application gives them.
pub(super) fn specs<'a>(
    application: &'a Application,
    options: &PipelineOptions,
    partition: Option<Partition>,
) -> Result<Vec<Spec<'a>>, Error> {
    let (selected, partition) = match partition {
        Some(partition) => {
            let names = partition
                .components
                .iter()
                .map(|name| component_name(application, name))
                .collect::<Result<BTreeSet<&'a str>, Error>>()?;
            (names, partition)
        }
        None => (select(application, &options.only)?, Partition::default()),
    };
    let fields_of = |name: &str| application.fields_of(name).unwrap_or_default();
    let model_of = |service: &str| served_model(application, service, options.model_store.as_deref());
    let mut specs = Vec::new();
    let sink_spec = |sink: SinkItem, role: &'static str| {
        let kind = sink.kind.name().to_string();
        let (sink, kind) = match options.simulate.then(|| simulated_sink(&sink)).flatten() {
            Some(simulated) => (simulated, format!("{kind} (simulated)")),
            None => (sink, kind),
        };
        let dataset = match &sink.kind {
            stratum_core::ir::SinkKind::Dataset { into } => {
                application.datasets.iter().find(|dataset| dataset.name == *into)
            }
            _ => None,
        };
        let fingerprint =
            json!({ "sink": sink, "input": fields_of(&sink.from), "dataset": dataset, "app": application.name });
        Spec {
            info: ComponentInfo { name: sink.name.clone(), role, kind: kind.clone() },
            metrics_kind: kind,
            inputs: vec![(sink.from.clone(), 0)],
            output: None,
            fingerprint: fingerprint.to_string(),
            what: What::Sink(sink),
        }
    };
    for sink in application.sinks.iter().filter(|sink| selected.contains(sink.name.as_str())) {
        specs.push(sink_spec(sink.clone(), "sink"));
    }
    // Every stream or source a dashboard panel shows gets a feed.
    let mut feeds = BTreeSet::new();
    for panel in application.dashboards.iter().flat_map(|dashboard| &dashboard.panels) {
        if !selected.contains(panel.source.as_str()) || !feeds.insert(panel.source.as_str()) {
            continue;
        }
        let Some(fields) = application.fields_of(&panel.source) else { continue };
        let length = panel.last.map_or(DEFAULT_FEED_LENGTH, |last| (last as usize).max(DEFAULT_FEED_LENGTH));
        let name = format!("{}-feed", panel.source);
        specs.push(Spec {
            info: ComponentInfo { name, role: "feed", kind: "feed".into() },
            metrics_kind: "feed".into(),
            inputs: vec![(panel.source.clone(), 0)],
            output: None,
            fingerprint: json!({ "feed": panel.source, "fields": fields, "length": length }).to_string(),
            what: What::Feed(Feed::new(fields.to_vec(), length)),
        });
    }
    for stream in application.streams.iter().filter(|stream| selected.contains(stream.name.as_str())) {
        let mut inputs = vec![(stream.from.clone(), 0)];
        if let Some(join) = &stream.join {
            inputs.push((join.with.clone(), 1));
        }
        let read: Vec<&[Field]> = inputs.iter().map(|(input, _)| fields_of(input)).collect();
        let models: Vec<serde_json::Value> = stream.calls.iter().map(|service| model_of(service)).collect();
        specs.push(Spec {
            info: ComponentInfo { name: stream.name.clone(), role: "stream", kind: "stream".into() },
            metrics_kind: "stream".into(),
            inputs,
            output: Some(stream.name.clone()),
            fingerprint: json!({ "stream": stream, "inputs": read, "models": models }).to_string(),
            what: What::Stream(stream),
        });
    }
    // A service that reads a stream: its operator appends predictions; its output is a sink like any other.
    for service in application.services.iter().filter(|service| selected.contains(service.name.as_str())) {
        let ServiceInput::Stream { name: input } = &service.input else { continue };
        specs.push(Spec {
            info: ComponentInfo { name: service.name.clone(), role: "service", kind: "inference".into() },
            metrics_kind: "inference".into(),
            inputs: vec![(input.clone(), 0)],
            output: Some(service.name.clone()),
            fingerprint: json!({ "input": fields_of(input), "model": model_of(&service.name) }).to_string(),
            what: What::Service(service),
        });
        if let Some(output) = &service.output {
            let sink = SinkItem {
                name: format!("{}-output", service.name),
                from: service.name.clone(),
                kind: output.clone(),
                fields: service.fields.clone(),
                placement: service.placement.clone(),
                resources: service.resources.clone(),
            };
            specs.push(sink_spec(sink, "sink"));
        }
    }
    // Paths to other machines: each takes its producer's records like any local consumer.
    for output in partition.outputs {
        let producer = component_name(application, &output.producer)?;
        let buffer =
            application.sources.iter().find(|source| source.name == producer).and_then(|source| source.buffer.as_ref());
        let (kind, to, pin) = match &output.to {
            Some(to) => {
                (format!("to {}", to.address), Some(to.address.as_str()), to.tls.as_ref().and_then(|tls| tls.pin()))
            }
            None => (format!("waiting for {}", output.consumers.join(", ")), None, None),
        };
        // The consumers are part of it: a path that now leads to another consumer too adopts what waited for it;
        // and so is the receiver's certificate: one that joined again has a new one, and the old one opens nothing.
        let fingerprint =
            json!({ "path": output.path, "to": to, "certificate": pin, "consumers": output.consumers, "buffer": buffer })
                .to_string();
        specs.push(Spec {
            info: ComponentInfo { name: output.path.clone(), role: "path out", kind },
            metrics_kind: "path".into(),
            inputs: vec![(producer.to_string(), 0)],
            output: None,
            fingerprint,
            what: What::PathOut(output, RemoteSink::options_for(buffer)),
        });
    }
    for source in application.sources.iter().filter(|source| selected.contains(source.name.as_str())) {
        let simulated = options.simulate && simulated_source(source, &options.base_dir);
        let kind = if simulated { format!("{} (simulated)", source.kind.name()) } else { source.kind.name().into() };
        let tier = source.placement.inferred_tier.or(source.placement.tier);
        let nodes = application.nodes.iter().filter(|node| Some(node.machine.tier) == tier).count();
        specs.push(Spec {
            info: ComponentInfo { name: source.name.clone(), role: "source", kind: kind.clone() },
            metrics_kind: kind,
            inputs: Vec::new(),
            output: Some(source.name.clone()),
            fingerprint: json!({ "source": source, "simulated": simulated, "nodes": nodes, "app": application.name })
                .to_string(),
            what: What::Source { item: source, simulated },
        });
    }
    // Paths from other machines: each stands in for its producer towards the local consumers.
    for input in partition.inputs {
        let producer = component_name(application, &input.producer)?;
        specs.push(Spec {
            info: ComponentInfo { name: input.path.clone(), role: "path in", kind: "path".into() },
            metrics_kind: "path".into(),
            inputs: Vec::new(),
            output: Some(producer.to_string()),
            fingerprint: json!({ "path": input.path, "producer": producer }).to_string(),
            what: What::PathIn(input.deliveries),
        });
    }
    Ok(specs)
}

/// Whether `simulate` replaces a source by a generator of its schema and rate: one that needs the outside world
/// (MQTT, NATS, Kafka, HTTP), or a file that is not there (`/var/lib/…` of a machine this is not).
pub fn simulated_source(source: &SourceItem, base_dir: &std::path::Path) -> bool {
    match &source.kind {
        SourceKind::Generator { .. } => false,
        SourceKind::File { path, .. } => !base_dir.join(path).exists(),
        _ => true,
    }
}

/// Events a second the sources behind `only` (everything when empty) make when generators stand in for them, on
/// average: what a stretch of simulated history costs.
pub fn events_per_second(application: &Application, only: &[String]) -> Result<f64, Error> {
    let selected = select(application, only)?;
    Ok(application
        .sources
        .iter()
        .filter(|source| selected.contains(source.name.as_str()))
        .map(|source| generator::rate_of(source, application))
        .sum())
}

/// Where a simulated sink writes, relative to the application's folder.
pub const SIMULATED_SINKS: &str = ".stratum/simulated";

/// Under `simulate`, a NATS or Kafka sink that names no server stands in for it as simulated sources stand in for
/// theirs: it writes its records as JSON lines to [`SIMULATED_SINKS`]`/NAME.jsonl`, where they can be read. None for
/// every other sink (MQTT has the run's broker; an HTTP sink names its URL).
pub fn simulated_sink(sink: &SinkItem) -> Option<SinkItem> {
    let unnamed = match &sink.kind {
        SinkKind::Nats { url, .. } => url.is_none(),
        SinkKind::Kafka { brokers, .. } => brokers.is_empty(),
        _ => false,
    };
    unnamed.then(|| SinkItem {
        kind: SinkKind::File {
            path: format!("{SIMULATED_SINKS}/{}.jsonl", sink.name),
            format: stratum_core::ir::FileFormat::Jsonl,
            partition_by: Vec::new(),
        },
        ..sink.clone()
    })
}

pub(super) fn build(name: &str, what: What, context: &BuildContext, options: &PipelineOptions) -> Result<Built, Error> {
    Ok(match what {
        What::Sink(sink) => Built::Sink(build_sink(&sink, context)?),
        What::Feed(feed) => Built::Sink(Box::new(FeedSink(feed))),
        What::Stream(stream) => Built::Operator(build_operator(stream, context)?),
        What::Service(service) => Built::Operator(crate::stream::predict::build_service(service, context)?),
        What::PathOut(output, log_options) => {
            let data_dir = options.data_dir.as_deref().ok_or_else(|| Error::Build {
                component: name.into(),
                message: "a path to another machine needs a data directory for its buffer".into(),
            })?;
            Built::Sink(Box::new(RemoteSink::open(&output, data_dir, log_options)))
        }
        What::Source { item, simulated: true } => Built::Source(generator::simulating(item, context)),
        What::Source { item, simulated: false } => Built::Source(build_source(item, context)?),
        What::PathIn(deliveries) => Built::Source(Box::new(RemoteSource { deliveries })),
    })
}

/// A component's name as the application spells it (borrowed from it), or an error naming what it has.
fn component_name<'a>(application: &'a Application, name: &str) -> Result<&'a str, Error> {
    application
        .sources
        .iter()
        .map(|source| source.name.as_str())
        .chain(application.streams.iter().map(|stream| stream.name.as_str()))
        .chain(application.sinks.iter().map(|sink| sink.name.as_str()))
        .chain(application.services.iter().map(|service| service.name.as_str()))
        .find(|known| *known == name)
        .ok_or_else(|| Error::Build {
            component: name.into(),
            message: format!("not a source, stream, service or sink of `{}`", application.name),
        })
}

/// The names of the components to run: `only` and everything upstream of them, or all components.
pub fn select<'a>(application: &'a Application, only: &'a [String]) -> Result<BTreeSet<&'a str>, Error> {
    let mut inputs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for stream in &application.streams {
        let mut of = vec![stream.from.as_str()];
        if let Some(join) = &stream.join {
            of.push(join.with.as_str());
        }
        inputs.insert(&stream.name, of);
    }
    for sink in &application.sinks {
        inputs.insert(&sink.name, vec![sink.from.as_str()]);
    }
    for service in &application.services {
        if let ServiceInput::Stream { name } = &service.input {
            inputs.insert(&service.name, vec![name.as_str()]);
        }
    }
    for source in &application.sources {
        inputs.insert(&source.name, Vec::new());
    }
    let mut wanted: Vec<&str> =
        if only.is_empty() { inputs.keys().copied().collect() } else { only.iter().map(String::as_str).collect() };
    let mut selected = BTreeSet::new();
    while let Some(name) = wanted.pop() {
        let Some(upstream) = inputs.get(name) else {
            let known: Vec<&str> = inputs.keys().copied().collect();
            return Err(Error::Build {
                component: name.into(),
                message: format!(
                    "not a source, stream or sink of `{}` (it has: {})",
                    application.name,
                    known.join(", ")
                ),
            });
        };
        if selected.insert(name) {
            wanted.extend(upstream.iter().copied());
        }
    }
    Ok(selected)
}
