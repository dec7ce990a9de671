//! The one explicit registry of the component kinds this version can build from the IR: a source, operator or
//! sink kind is a line here, keyed by the kind's string form in the IR ([`SourceKind::name`],
//! [`SinkKind::name`]). It sits apart from the component traits so that connectors depend on the traits and the
//! registry depends on connectors, never the other way round.
//!
//! [`SourceKind::name`]: stratum_core::ir::SourceKind::name
//! [`SinkKind::name`]: stratum_core::ir::SinkKind::name

use crate::Error;
use crate::component::{BuildContext, Operator, Sink, Source};
use crate::connectors::{http, kafka, mqtt, nats};
use crate::{sinks, sources, stream};
use stratum_core::ir::{Sink as SinkItem, Source as SourceItem, Stream};

/// Builds a component of one kind from its IR item.
pub type Build<Item, Component> = fn(&Item, &BuildContext) -> Result<Box<Component>, Error>;

/// A kind of source this version can build.
pub struct SourceKindEntry {
    /// The kind's name in the language.
    pub kind: &'static str,
    /// Builds one.
    pub build: Build<SourceItem, dyn Source>,
}

/// A kind of stream operator.
pub struct OperatorKindEntry {
    /// The kind's name.
    pub kind: &'static str,
    /// Builds one.
    pub build: Build<Stream, dyn Operator>,
}

/// A kind of sink.
pub struct SinkKindEntry {
    /// The kind's name in the language.
    pub kind: &'static str,
    /// Builds one.
    pub build: Build<SinkItem, dyn Sink>,
}

/// The registry: every source kind this version runs. Kinds the language knows but this list lacks are
/// reported by name when a pipeline is built.
pub const SOURCES: &[SourceKindEntry] = &[
    SourceKindEntry { kind: "generator", build: sources::generator::build },
    SourceKindEntry { kind: "file", build: sources::file::build },
    SourceKindEntry { kind: "mqtt", build: mqtt::build_source },
    SourceKindEntry { kind: "nats", build: nats::build_source },
    SourceKindEntry { kind: "kafka", build: kafka::build_source },
    SourceKindEntry { kind: "http", build: http::build_source },
];

/// Every operator kind: a stream is one operator, whatever its shape.
pub const OPERATORS: &[OperatorKindEntry] = &[OperatorKindEntry { kind: "stream", build: stream::build }];

/// Every sink kind this version runs.
pub const SINKS: &[SinkKindEntry] = &[
    SinkKindEntry { kind: "file", build: sinks::file::build },
    SinkKindEntry { kind: "dataset", build: sinks::file::build_dataset },
    SinkKindEntry { kind: "mqtt", build: mqtt::build_sink },
    SinkKindEntry { kind: "nats", build: nats::build_sink },
    SinkKindEntry { kind: "kafka", build: kafka::build_sink },
    SinkKindEntry { kind: "http", build: http::build_sink },
];

/// Builds a source through the registry entry of its kind.
pub fn build_source(source: &SourceItem, context: &BuildContext) -> Result<Box<dyn Source>, Error> {
    let kind = source.kind.name();
    let entry = SOURCES.iter().find(|entry| entry.kind == kind).ok_or_else(|| Error::Unsupported {
        component: source.name.clone(),
        what: format!("the `{kind}` source kind"),
    })?;
    (entry.build)(source, context)
}

/// Builds a sink through the registry entry of its kind.
pub fn build_sink(sink: &SinkItem, context: &BuildContext) -> Result<Box<dyn Sink>, Error> {
    let kind = sink.kind.name();
    let entry = SINKS
        .iter()
        .find(|entry| entry.kind == kind)
        .ok_or_else(|| Error::Unsupported { component: sink.name.clone(), what: format!("the `{kind}` sink kind") })?;
    (entry.build)(sink, context)
}

/// Builds a stream's operator.
pub fn build_operator(stream: &Stream, context: &BuildContext) -> Result<Box<dyn Operator>, Error> {
    (OPERATORS[0].build)(stream, context)
}
