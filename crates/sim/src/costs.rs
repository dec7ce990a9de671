//! What one record costs a component, per core, as measured by the project's own benchmarks
//! (docs/benchmarks.md). The simulator turns a component's requested cores into the records a second it can take
//! in; a component given more than that queues the rest in the path that feeds it, as the runtime does.

use stratum_core::ir::{Application, SinkKind, SourceKind};
use stratum_core::plan::ComponentKind;

/// Microseconds of one core per record a source takes in, by its kind.
fn source_microseconds(kind: &SourceKind) -> f64 {
    match kind {
        // "MQTT: end to end through a broker": 146,194 messages/s from the embedded broker into a pipeline.
        SourceKind::Mqtt { .. } | SourceKind::Nats { .. } | SourceKind::Kafka { .. } => 6.8,
        // "HTTP ingestion": a push of 100 readings is decoded and made durable in about 1 ms of work.
        SourceKind::Http { .. } => 10.0,
        SourceKind::File { .. } => 1.0,
        SourceKind::Generator { .. } => 0.2,
    }
}

/// Microseconds of one core per record a sink writes, by its kind.
fn sink_microseconds(kind: &SinkKind) -> f64 {
    match kind {
        SinkKind::Mqtt { .. } | SinkKind::Nats { .. } | SinkKind::Kafka { .. } => 6.8,
        SinkKind::Http { .. } => 10.0,
        SinkKind::File { .. } | SinkKind::Dataset { .. } => 1.0,
    }
}

/// "Data plane: filter → keyed tumbling window, in process": 6.0 million events/s on one core.
const STREAM_MICROSECONDS: f64 = 0.17;

/// "Serving": Stratum's HTTP path adds 75–80 µs at p50 to a prediction.
pub(crate) const SERVING_OVERHEAD_SECONDS: f64 = 80e-6;

/// "Serving": from zero replicas to the first answer for a cached model, under 50 ms.
pub(crate) const COLD_START_SECONDS: f64 = 0.05;

/// The records a second one instance of `name` (of `kind`) takes in with `cores`; unbounded for kinds that take
/// no records (batches, training, tools) and for services, whose cost is their model's (simulated as a queue).
pub(crate) fn records_per_second(application: &Application, kind: ComponentKind, name: &str, cores: f64) -> f64 {
    let microseconds = match kind {
        ComponentKind::Source => {
            application.sources.iter().find(|item| item.name == name).map(|item| source_microseconds(&item.kind))
        }
        ComponentKind::Stream => Some(STREAM_MICROSECONDS),
        ComponentKind::Sink => {
            application.sinks.iter().find(|item| item.name == name).map(|item| sink_microseconds(&item.kind))
        }
        _ => None,
    };
    match microseconds {
        Some(microseconds) => cores.max(0.01) * 1e6 / microseconds,
        None => f64::INFINITY,
    }
}
