//! Data items: schemas, sources, streams, sinks, datasets and batch jobs. Schemas flow from sources through
//! streams (whose output schemas are inferred here) into sinks, datasets and models; privacy is checked where
//! data crosses tiers.

use super::attributes::{Attributes, Shape, Spec};
use super::expressions::Scope;
use super::infrastructure::{PLACEMENT, RESOURCES};
use super::{Checker, ItemKind, Lowered, Output};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::suggest;
use crate::syntax::ast::{ClauseKeyword, Expr, ExprKind, Ident, Section, StatementKind, TypeExpr, TypeKind};
use stratum_core::ir::*;
use stratum_core::types::{DataType, Field, Schema, describe_fields, find_field};
use stratum_core::units::{ByteSize, Dimension, Duration, EventRate};

const SOURCE_COMMON: Spec =
    &[("schema", Shape::Value), ("rate", Shape::Value), ("event_size", Shape::Value), ("buffer", Shape::Block)];
const MQTT_SOURCE: Spec = &[("topic", Shape::Value), ("broker", Shape::Value)];
const NATS_SOURCE: Spec = &[("subject", Shape::Value), ("url", Shape::Value)];
const KAFKA_SOURCE: Spec = &[("topic", Shape::Value), ("brokers", Shape::Value), ("group", Shape::Value)];
const HTTP_SOURCE: Spec =
    &[("path", Shape::Value), ("port", Shape::Value), ("certificate", Shape::Value), ("private_key", Shape::Value)];
const FILE_SOURCE: Spec = &[("path", Shape::Value), ("format", Shape::Value), ("mode", Shape::Value)];
const GENERATOR_SOURCE: Spec = &[("seed", Shape::Value), ("count", Shape::Value)];
const BUFFER: Spec = &[("max", Shape::Value), ("ttl", Shape::Value), ("when_full", Shape::Value)];
const STREAM: Spec = &[
    ("from", Shape::Value),
    ("where", Shape::Value),
    ("join", Shape::Value),
    ("window", Shape::Value),
    ("lateness", Shape::Value),
    ("idle", Shape::Value),
    ("keep", Shape::Value),
    ("select", Shape::Block),
];
const SINK_COMMON: Spec = &[("from", Shape::Value)];
const MQTT_SINK: Spec = &[("topic", Shape::Value)];
const NATS_SINK: Spec = &[("subject", Shape::Value), ("url", Shape::Value)];
const KAFKA_SINK: Spec = &[("topic", Shape::Value), ("brokers", Shape::Value)];
const HTTP_SINK: Spec = &[("url", Shape::Value), ("retries", Shape::Value)];
const FILE_SINK: Spec = &[("path", Shape::Value), ("partition_by", Shape::Value)];
const DATASET_SINK: Spec = &[("into", Shape::Value)];
const DATASET: Spec =
    &[("schema", Shape::Value), ("path", Shape::Value), ("format", Shape::Value), ("rows", Shape::Value)];
const BATCH: Spec = &[("every", Shape::Value), ("cron", Shape::Value), ("query", Shape::Value), ("into", Shape::Value)];

/// A source's kind, from the name after its `:`. Each kind is matched without a fallback below, so a kind added
/// here cannot silently become another one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceConnector {
    Mqtt,
    Nats,
    Kafka,
    Http,
    File,
    Generator,
}

impl SourceConnector {
    const ALL: [SourceConnector; 6] = [
        SourceConnector::Mqtt,
        SourceConnector::Nats,
        SourceConnector::Kafka,
        SourceConnector::Http,
        SourceConnector::File,
        SourceConnector::Generator,
    ];
    /// Each kind's name, in the order of `ALL`.
    pub(crate) const NAMES: [&'static str; 6] = ["mqtt", "nats", "kafka", "http", "file", "generator"];

    fn named(name: &str) -> Option<SourceConnector> {
        Self::NAMES.iter().position(|known| *known == name).map(|index| Self::ALL[index])
    }
}

/// A sink's kind (also a service's `output = KIND { … }`), likewise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SinkConnector {
    Mqtt,
    Nats,
    Kafka,
    Http,
    File(FileFormat),
    Dataset,
}

impl SinkConnector {
    const ALL: [SinkConnector; 8] = [
        SinkConnector::Mqtt,
        SinkConnector::Nats,
        SinkConnector::Kafka,
        SinkConnector::Http,
        SinkConnector::File(FileFormat::Parquet),
        SinkConnector::File(FileFormat::Csv),
        SinkConnector::File(FileFormat::Jsonl),
        SinkConnector::Dataset,
    ];
    /// Each kind's name, in the order of `ALL`.
    pub(crate) const NAMES: [&'static str; 8] = ["mqtt", "nats", "kafka", "http", "parquet", "csv", "jsonl", "dataset"];

    pub(crate) fn named(name: &str) -> Option<SinkConnector> {
        Self::NAMES.iter().position(|known| *known == name).map(|index| Self::ALL[index])
    }

    /// The connector's own attributes, shared by `sink` items and a service's `output = kind { … }`.
    pub(crate) fn spec(self) -> Spec {
        match self {
            SinkConnector::Mqtt => MQTT_SINK,
            SinkConnector::Kafka => KAFKA_SINK,
            SinkConnector::Nats => NATS_SINK,
            SinkConnector::Http => HTTP_SINK,
            SinkConnector::Dataset => DATASET_SINK,
            SinkConnector::File(_) => FILE_SINK,
        }
    }
}

/// Fields every windowed stream adds to its output.
const WINDOW_FIELDS: &[&str] = &["window_start", "window_end"];

impl<'a> Checker<'a> {
    pub(super) fn lower_schema(&mut self, section: &'a Section, name: String) -> Lowered {
        let mut fields: Vec<Field> = Vec::new();
        let mut spans: Vec<Span> = Vec::new();
        for statement in section.statements() {
            let StatementKind::Field { name: field_name, data_type, modifiers } = &statement.kind else {
                self.report(
                    Diagnostic::new(
                        Code::UnknownAttribute,
                        statement.span,
                        format!("schema `{name}` holds only fields"),
                    )
                    .label("expected `name: type`")
                    .help("declare fields as `speed_kmh: float` or `plate: string private`"),
                );
                continue;
            };
            let Some(resolved) = self.data_type(data_type) else { continue };
            let mut private = false;
            for modifier in modifiers {
                if modifier.text == "private" {
                    private = true;
                } else {
                    let help = suggest::did_you_mean(&modifier.text, ["private"])
                        .unwrap_or_else(|| "the only modifier is `private`".into());
                    self.report(
                        Diagnostic::new(
                            Code::InvalidChoice,
                            modifier.span,
                            format!("unknown field modifier `{}`", modifier.text),
                        )
                        .label("not a modifier")
                        .help(help),
                    );
                }
            }
            if let Some(index) = fields.iter().position(|field| field.name == field_name.text) {
                self.report(
                    Diagnostic::new(
                        Code::DuplicateDefinition,
                        field_name.span,
                        format!("field `{}` is declared twice", field_name.text),
                    )
                    .label("declared again")
                    .secondary(spans[index], "first declared here")
                    .help("rename or remove one of them"),
                );
                continue;
            }
            fields.push(Field { name: field_name.text.clone(), data_type: resolved, private });
            spans.push(field_name.span);
        }
        Lowered::Schema(Schema { name, fields })
    }

    pub(super) fn data_type(&mut self, data_type: &TypeExpr) -> Option<DataType> {
        match &data_type.kind {
            TypeKind::Named(name) => {
                if let Some(scalar) = DataType::scalar_from_name(&name.text) {
                    return Some(scalar);
                }
                self.unknown_type(name);
                None
            }
            TypeKind::Generic { name, argument } => {
                let inner = self.data_type(argument)?;
                match name.text.as_str() {
                    "list" => Some(DataType::List(Box::new(inner))),
                    "optional" => Some(DataType::Optional(Box::new(inner))),
                    _ => {
                        self.unknown_type(name);
                        None
                    }
                }
            }
            TypeKind::Optional(inner) => Some(DataType::Optional(Box::new(self.data_type(inner)?))),
        }
    }

    fn unknown_type(&mut self, name: &Ident) {
        let synonym = match name.text.as_str() {
            "double" | "f64" | "f32" | "real" | "number" => Some("float"),
            "integer" | "i64" | "i32" | "long" => Some("int"),
            "str" | "text" => Some("string"),
            "boolean" => Some("bool"),
            "datetime" | "time" => Some("timestamp"),
            _ => None,
        };
        let known = ["bool", "int", "float", "string", "timestamp", "duration", "bytes", "list", "optional"];
        let help = synonym
            .map(|synonym| format!("did you mean `{synonym}`?"))
            .or_else(|| suggest::did_you_mean(&name.text, known))
            .unwrap_or_else(|| format!("types are: {}, list<T>, optional<T>", DataType::SCALAR_NAMES.join(", ")));
        self.report(
            Diagnostic::new(Code::UnknownType, name.span, format!("unknown type `{}`", name.text))
                .label("not a type")
                .help(help),
        );
    }

    /// The fields of the schema an expression names.
    fn schema_fields(&mut self, expr: &Expr) -> Option<(String, Vec<Field>)> {
        let (name, span) = self.name(expr, "the name of a schema")?;
        let id = self.resolve(&name, span, &[ItemKind::Schema], "`schema`")?;
        self.lower_item(id);
        match &self.lowered[id] {
            Lowered::Schema(schema) => Some((name, schema.fields.clone())),
            _ => None,
        }
    }

    pub(super) fn lower_source(&mut self, section: &'a Section, name: String) -> Lowered {
        self.source(section, name).map(Lowered::Source).unwrap_or(Lowered::Nothing)
    }

    fn source(&mut self, section: &'a Section, name: String) -> Option<Source> {
        let owner = format!("source `{name}`");
        let kind_name = self.component_kind(section, &SourceConnector::NAMES, "source", "mqtt")?;
        let connector = SourceConnector::named(kind_name)?;
        let specific = match connector {
            SourceConnector::Mqtt => MQTT_SOURCE,
            SourceConnector::Nats => NATS_SOURCE,
            SourceConnector::Kafka => KAFKA_SOURCE,
            SourceConnector::Http => HTTP_SOURCE,
            SourceConnector::File => FILE_SOURCE,
            SourceConnector::Generator => GENERATOR_SOURCE,
        };
        let attributes = self.attributes(
            section.statements(),
            &[SOURCE_COMMON, specific, PLACEMENT, RESOURCES],
            &owner,
            section.keyword.span,
        );
        let schema =
            self.required(&attributes, "schema", "schema = MySchema").and_then(|value| self.schema_fields(value));
        let kind = self.source_kind(connector, &attributes);
        let (rate, rate_per_node) = match attributes.value("rate") {
            Some(value) => self.rate(value),
            None => (None, false),
        };
        let placement = self.placement(&attributes, None);
        let resources = self.resources(&attributes);
        let buffer = attributes.block("buffer").and_then(|block| self.buffer(block, &name));
        let (schema_name, fields) = schema?;
        let (event_size, event_size_estimated) = match attributes.value("event_size") {
            Some(value) => (self.size(value)?, false),
            None => (ByteSize(16 + fields.iter().map(|field| field.data_type.estimated_size()).sum::<u64>()), true),
        };
        if let (Some(buffer), Some(rate), Some(block)) = (&buffer, rate, attributes.block("buffer")) {
            self.check_buffer(buffer, rate, event_size, event_size_estimated, block);
        }
        Some(Source {
            name,
            kind: kind?,
            schema: schema_name,
            fields,
            rate,
            rate_per_node,
            event_size,
            event_size_estimated,
            buffer,
            placement,
            resources,
        })
    }

    /// The `: kind` of a source, sink, batch or service header, checked against the allowed kinds.
    pub(super) fn component_kind(
        &mut self,
        section: &Section,
        kinds: &[&'static str],
        what: &str,
        example: &str,
    ) -> Option<&'static str> {
        let Some(kind) = section.kind() else {
            let name = section.name().map(|name| name.text.as_str()).unwrap_or("name");
            self.report(
                Diagnostic::new(
                    Code::UnknownComponentKind,
                    section.keyword.span,
                    format!("this {what} does not say its kind"),
                )
                .label(format!("expected `{what} {name}: KIND`"))
                .help(format!("write `{what} {name}: {example} {{ … }}`; kinds are: {}", kinds.join(", "))),
            );
            return None;
        };
        if let Some(found) = kinds.iter().find(|known| **known == kind.text) {
            return Some(found);
        }
        let help = suggest::did_you_mean(&kind.text, kinds.iter().copied())
            .unwrap_or_else(|| format!("kinds are: {}", kinds.join(", ")));
        self.report(
            Diagnostic::new(Code::UnknownComponentKind, kind.span, format!("unknown {what} kind `{}`", kind.text))
                .label(format!("not a kind of {what}"))
                .help(help),
        );
        None
    }

    fn source_kind(&mut self, kind: SourceConnector, attributes: &Attributes<'a>) -> Option<SourceKind> {
        let text = |checker: &mut Checker<'a>, name: &str, example: &str| {
            checker.required(attributes, name, example).and_then(|value| checker.string(value))
        };
        let optional_text =
            |checker: &mut Checker<'a>, name: &str| attributes.value(name).and_then(|value| checker.string(value));
        Some(match kind {
            SourceConnector::Mqtt => SourceKind::Mqtt {
                topic: text(self, "topic", "topic = \"sensors/+/readings\"")?,
                broker: optional_text(self, "broker"),
            },
            SourceConnector::Nats => SourceKind::Nats {
                subject: text(self, "subject", "subject = \"sensors.readings\"")?,
                url: optional_text(self, "url"),
            },
            SourceConnector::Kafka => SourceKind::Kafka {
                topic: text(self, "topic", "topic = \"readings\"")?,
                brokers: attributes.value("brokers").map(|value| self.strings(value)).unwrap_or_default(),
                group: optional_text(self, "group"),
            },
            SourceConnector::Http => {
                let path = text(self, "path", "path = \"/ingest\"")?;
                let port = attributes
                    .value("port")
                    .and_then(|value| self.whole(value, 1, "`port`"))
                    .and_then(|port| self.port(port, attributes));
                // HTTPS needs both files: one named asks for the other.
                let tls = match (attributes.value("certificate"), attributes.value("private_key")) {
                    (None, None) => None,
                    _ => Some(TlsFiles {
                        certificate: text(self, "certificate", "certificate = \"tls/ingest.pem\"")?,
                        private_key: text(self, "private_key", "private_key = \"tls/ingest.key\"")?,
                    }),
                };
                SourceKind::Http { path, port, tls }
            }
            SourceConnector::File => {
                let path = text(self, "path", "path = \"data/readings.csv\"")?;
                let format = match attributes.value("format") {
                    Some(value) => {
                        self.word(value, FileFormat::NAMES, "a file format").and_then(FileFormat::from_name)?
                    }
                    None => self.format_from_path(&path, attributes)?,
                };
                let tail = match attributes.value("mode") {
                    Some(value) => self.word(value, &["tail", "once"], "a file mode")? == "tail",
                    None => false,
                };
                SourceKind::File { path, format, tail }
            }
            SourceConnector::Generator => SourceKind::Generator {
                seed: attributes.value("seed").and_then(|value| self.whole(value, 0, "`seed`")).unwrap_or(0),
                count: attributes.value("count").and_then(|value| self.whole(value, 1, "`count`")),
            },
        })
    }

    fn port(&mut self, port: u64, attributes: &Attributes<'a>) -> Option<u16> {
        match u16::try_from(port) {
            Ok(port) => Some(port),
            Err(_) => {
                if let Some(value) = attributes.value("port") {
                    self.report(
                        Diagnostic::new(Code::OutOfRange, value.span, format!("port {port} is above 65535"))
                            .label("not a TCP port")
                            .help("use a port from 1 to 65535"),
                    );
                }
                None
            }
        }
    }

    fn format_from_path(&mut self, path: &str, attributes: &Attributes<'a>) -> Option<FileFormat> {
        let extension = path.rsplit('.').next().unwrap_or_default();
        let format = match extension {
            "json" | "ndjson" => Some(FileFormat::Jsonl),
            other => FileFormat::from_name(other),
        };
        if format.is_none() {
            let span = attributes.value("path").map(|value| value.span).unwrap_or(attributes.owner_span);
            self.report(
                Diagnostic::new(
                    Code::MissingAttribute,
                    span,
                    format!("cannot tell the format of `{path}` from its extension"),
                )
                .label("no known extension")
                .help("add `format = csv` (or jsonl, parquet)"),
            );
        }
        format
    }

    /// `50/s` or `50/s per node`.
    fn rate(&mut self, expr: &Expr) -> (Option<EventRate>, bool) {
        let (base, clauses) = expr.split_clauses();
        let mut per_node = false;
        for (keyword, keyword_span, argument) in clauses {
            if keyword == ClauseKeyword::Per && argument.as_name() == Some("node") {
                per_node = true;
            } else {
                self.unexpected_clause(
                    keyword,
                    keyword_span,
                    "a rate",
                    "write `rate = 50/s` or `rate = 50/s per node`",
                );
            }
        }
        (self.quantity(base, Dimension::Rate).map(EventRate), per_node)
    }

    fn buffer(&mut self, block: &'a Section, owner_name: &str) -> Option<BufferPolicy> {
        let owner = format!("the buffer of `{owner_name}`");
        let attributes = self.attributes(block.statements(), &[BUFFER], &owner, block.keyword.span);
        let max = self.required(&attributes, "max", "max = 512 MiB").and_then(|value| self.size(value));
        let ttl = self.required(&attributes, "ttl", "ttl = 24 h").and_then(|value| self.duration(value));
        let when_full = match attributes.value("when_full") {
            Some(value) => match self.word(value, &["drop_oldest", "reject"], "a buffer policy")? {
                "reject" => WhenFull::Reject,
                _ => WhenFull::DropOldest,
            },
            None => WhenFull::DropOldest,
        };
        Some(BufferPolicy { max: max?, ttl: ttl?, when_full })
    }

    fn check_buffer(
        &mut self,
        buffer: &BufferPolicy,
        rate: EventRate,
        event_size: ByteSize,
        estimated: bool,
        block: &Section,
    ) {
        let needed = rate.0 * event_size.0 as f64 * buffer.ttl.0;
        if needed <= buffer.max.0 as f64 {
            return;
        }
        let lasts = Duration(buffer.max.0 as f64 / (rate.0 * event_size.0 as f64).max(1e-9));
        let size_note = if estimated { " (estimated from the schema; set `event_size` to be exact)" } else { "" };
        self.report(
            Diagnostic::new(
                Code::BufferTooSmall,
                block.keyword.span,
                format!(
                    "buffer holds {} but {} of events at {} need {}",
                    buffer.max,
                    buffer.ttl,
                    rate,
                    ByteSize(needed.ceil() as u64)
                ),
            )
            .label(format!(
                "{} × {}{size_note} × {} = {}",
                rate,
                event_size,
                buffer.ttl,
                ByteSize(needed.ceil() as u64)
            ))
            .help(format!(
                "during an outage events are kept for only {} instead of {}; raise `max` to {} or lower `ttl`",
                lasts,
                buffer.ttl,
                ByteSize(needed.ceil() as u64)
            )),
        );
    }

    /// Resolves the input of a stream, sink or service.
    pub(super) fn input(&mut self, expr: &Expr, kinds: &[ItemKind], role: &str) -> Option<(String, Output, Span)> {
        let (name, span) = self.name(expr, "the name of a source or stream")?;
        let id = self.resolve(&name, span, kinds, role)?;
        let output = self.output_of(id, span)?;
        Some((name, output, span))
    }

    pub(super) fn lower_stream(&mut self, section: &'a Section, name: String) -> Lowered {
        self.stream(section, name).map(Lowered::Stream).unwrap_or(Lowered::Nothing)
    }

    fn stream(&mut self, section: &'a Section, name: String) -> Option<Stream> {
        let owner = format!("stream `{name}`");
        let attributes =
            self.attributes(section.statements(), &[STREAM, PLACEMENT, RESOURCES], &owner, section.keyword.span);
        let from_expr = self.required(&attributes, "from", "from = my_source");
        let input = from_expr.and_then(|value| self.input(value, &[ItemKind::Source, ItemKind::Stream], "`from`"));
        let mut placement = self.placement(&attributes, input.as_ref().and_then(|(_, output, _)| output.tier));
        let resources = self.resources(&attributes);
        let (from, input, from_span) = input?;
        let description = format!("`{from}` (the input of stream `{name}`)");
        let mut complete = input.complete;

        // A join widens the record before filtering and windowing.
        let mut fields = input.fields.clone();
        let mut join = None;
        let mut used_private_sources: Vec<(String, Option<Tier>, Vec<String>)> = Vec::new();
        let mut join_used = Vec::new();
        if let Some(join_expr) = attributes.value("join") {
            match self.join(join_expr, &mut fields, &name) {
                Some((lowered_join, join_output, join_keys_used)) => {
                    join_used = join_keys_used;
                    complete &= join_output.complete;
                    used_private_sources.push((lowered_join.with.clone(), join_output.tier, join_used.clone()));
                    join = Some(lowered_join);
                }
                // The join's fields are unknown: a field it would have added is not reported as missing again.
                None => complete = false,
            }
        }

        let mut scope = Scope::new(&fields, description.clone());
        scope.complete = complete;
        let filter =
            attributes.value("where").and_then(|value| self.condition(value, &mut scope)).map(|typed| typed.expr);
        let mut used = std::mem::take(&mut scope.used);
        used.extend(join_used);

        let (window, keys) = match attributes.value("window") {
            Some(value) => match self.window(value, &scope) {
                Some((window, keys)) => (Some(window), keys),
                None => return None,
            },
            None => (None, Vec::new()),
        };
        used.extend(keys.iter().cloned());
        let lateness = attributes.value("lateness").and_then(|value| self.duration(value));
        let idle = attributes.value("idle").and_then(|value| match &value.kind {
            ExprKind::Name(_) => self.word(value, &["never"], "an idle time").map(|_| Idle::Never),
            _ => self.duration(value).map(Idle::After),
        });

        let keep: Vec<String> = match attributes.value("keep") {
            Some(value) if window.is_some() => {
                self.report(
                    Diagnostic::new(Code::AggregateMisuse, value.span, "`keep` cannot be used with a window")
                        .label("a window emits its keys and aggregates only")
                        .help("select aggregates in `select { … }`; the `by` keys are kept"),
                );
                Vec::new()
            }
            Some(value) => self.field_names(value, &scope),
            None => Vec::new(),
        };
        used.extend(keep.iter().cloned());

        let mut select = Vec::new();
        let mut calls = Vec::new();
        if let Some(block) = attributes.block("select") {
            let mut scope = Scope::new(&fields, description.clone());
            scope.complete = complete;
            scope.window_keys = window.as_ref().map(|_| keys.as_slice());
            scope.allow_predict = window.is_none();
            for statement in block.statements() {
                let StatementKind::Attribute { name: field_name, value } = &statement.kind else {
                    self.report(
                        Diagnostic::new(
                            Code::SyntaxError,
                            statement.span,
                            "`select` holds computed fields written `name = expression`",
                        )
                        .label("expected `name = expression`")
                        .help("to pass input fields through unchanged, list them in `keep = [a, b]`"),
                    );
                    continue;
                };
                if let Some(typed) = self.typed(value, &mut scope) {
                    select.push((
                        field_name.clone(),
                        Computed { name: field_name.text.clone(), expr: typed.expr, data_type: typed.data_type },
                        typed.private,
                    ));
                }
            }
            used.extend(scope.used);
            calls = scope.calls;
        }

        // The output schema.
        let mut output: Vec<(Field, Option<Span>)> = Vec::new();
        if window.is_some() {
            for key in &keys {
                if let Some(field) = find_field(&fields, key) {
                    output.push((field.clone(), None));
                }
            }
            for window_field in WINDOW_FIELDS {
                output.push((Field::new(*window_field, DataType::Timestamp), None));
            }
        } else if !keep.is_empty() {
            output.extend(keep.iter().filter_map(|kept| find_field(&fields, kept)).map(|field| (field.clone(), None)));
        } else if attributes.block("select").is_none() {
            output.extend(fields.iter().map(|field| (field.clone(), None)));
            used.extend(fields.iter().map(|field| field.name.clone()));
        }
        for (field_name, computed, private) in &select {
            output.push((
                Field { name: computed.name.clone(), data_type: computed.data_type.clone(), private: *private },
                Some(field_name.span),
            ));
        }
        let mut unique: Vec<Field> = Vec::new();
        for (field, span) in output {
            if unique.iter().any(|existing| existing.name == field.name) {
                if let Some(span) = span {
                    self.report(
                        Diagnostic::new(
                            Code::DuplicateDefinition,
                            span,
                            format!("the output of stream `{name}` already has a field `{}`", field.name),
                        )
                        .label("name taken")
                        .help("rename this computed field"),
                    );
                }
                continue;
            }
            unique.push(field);
        }

        used_private_sources.push((from.clone(), input.tier, used));
        for (source_name, source_tier, used) in used_private_sources {
            let source_fields = if source_name == from { input.fields.clone() } else { fields.clone() };
            keep_with_private_data(&mut placement, source_tier, &source_fields, &used);
            self.check_privacy_crossing(
                ItemKind::Stream,
                &name,
                placement.inferred_tier,
                &source_name,
                source_tier,
                &source_fields,
                &used,
                from_span,
                attributes.value("on").map(|on| on.span),
            );
        }

        Some(Stream {
            name,
            from,
            filter,
            join,
            window,
            keys,
            lateness,
            idle,
            keep,
            select: select.into_iter().map(|(_, computed, _)| computed).collect(),
            calls,
            fields: unique,
            placement,
            resources,
        })
    }

    /// Reports private fields a component on `tier` reads from an input on another tier.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn check_privacy_crossing(
        &mut self,
        kind: ItemKind,
        component: &str,
        tier: Option<Tier>,
        input: &str,
        input_tier: Option<Tier>,
        input_fields: &[Field],
        used: &[String],
        span: Span,
        on_span: Option<Span>,
    ) {
        let (Some(tier), Some(input_tier)) = (tier, input_tier) else { return };
        if tier == input_tier {
            return;
        }
        let mut private: Vec<&str> = input_fields
            .iter()
            .filter(|field| field.private && used.contains(&field.name))
            .map(|field| field.name.as_str())
            .collect();
        private.dedup();
        if private.is_empty() {
            return;
        }
        let names = private.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ");
        let (noun, pronoun, possessive) =
            if private.len() == 1 { ("field", "it", "its") } else { ("fields", "them", "their") };
        let (from_tier, to_tier) = (input_tier.name(), tier.name());
        let mut diagnostic = Diagnostic::new(
            Code::PrivacyViolation,
            span,
            format!(
                "private {noun} {names} of `{input}` would leave the {from_tier} tier for `{component}` on {to_tier}"
            ),
        )
        .label(format!("`{input}` is on {from_tier}"))
        .help(match kind {
            // A sink writes every field of its input: the fix is upstream of it, or where it runs.
            ItemKind::Sink => format!(
                "a sink writes every field it gets: read from a stream on {from_tier} that leaves {pronoun} out \
                 (`keep` the other fields) or writes hash({}) in {possessive} place, or place `{component}` on \
                 {from_tier}",
                private[0]
            ),
            ItemKind::Service => format!(
                "the model reads {names}: serve from a stream on {from_tier} that pseudonymises {pronoun} with \
                 hash() or aggregates {pronoun}, or place `{component}` on {from_tier}"
            ),
            _ => format!(
                "do not read {names} here (list the fields you need in `keep`), count, sum, average or hash {pronoun} \
                 in a stream on {from_tier} first (min and max keep the value, so they stay private), or place \
                 `{component}` on {from_tier}"
            ),
        });
        if let Some(on_span) = on_span {
            diagnostic = diagnostic.secondary(on_span, format!("`{component}` is placed on {}", tier.name()));
        }
        self.report(diagnostic);
    }

    /// `join = other by key within 5 min`: adds the other stream's fields (prefixed when names clash);
    /// `join = latest(other) …` joins each record with the other side's latest record only.
    fn join(&mut self, expr: &Expr, fields: &mut Vec<Field>, stream: &str) -> Option<(Join, Output, Vec<String>)> {
        let (base, clauses) = expr.split_clauses();
        let (base, matching) = match &base.kind {
            ExprKind::Call { function, arguments } if function.text == "latest" => {
                let [argument] = arguments.as_slice() else {
                    self.report(
                        Diagnostic::new(Code::SyntaxError, base.span, "`latest` takes the stream to join with")
                            .label("expected one name")
                            .help("write `join = latest(weather) by camera within 5 min`"),
                    );
                    return None;
                };
                (argument, JoinMatch::Latest)
            }
            _ => (base, JoinMatch::Every),
        };
        let (other, output, _) = self.input(base, &[ItemKind::Source, ItemKind::Stream], "`join`")?;
        let mut keys = Vec::new();
        let mut keys_written = false;
        let mut within = None;
        for (keyword, keyword_span, argument) in clauses {
            match keyword {
                ClauseKeyword::By => {
                    keys_written = true;
                    for key in self.items(argument) {
                        let Some((key_name, span)) = self.name(key, "a field name") else { continue };
                        let in_left = find_field(fields, &key_name);
                        let in_right = find_field(&output.fields, &key_name);
                        match (in_left, in_right) {
                            (Some(left), Some(right))
                                if left.data_type.fits(&right.data_type) || right.data_type.fits(&left.data_type) =>
                            {
                                keys.push(key_name)
                            }
                            (Some(left), Some(right)) => self.report(
                                Diagnostic::new(
                                    Code::MismatchedTypes,
                                    span,
                                    format!(
                                        "join key `{key_name}` is {} on one side and {} on the other",
                                        left.data_type, right.data_type
                                    ),
                                )
                                .label("types differ")
                                .help("join on fields of the same type"),
                            ),
                            _ => {
                                let (side, side_fields) = if in_left.is_none() {
                                    (format!("the input of stream `{stream}`"), &fields[..])
                                } else {
                                    (format!("`{other}`"), &output.fields[..])
                                };
                                let names: Vec<&str> = side_fields.iter().map(|field| field.name.as_str()).collect();
                                let help =
                                    suggest::did_you_mean(&key_name, names.iter().copied()).unwrap_or_else(|| {
                                        format!("a join key is a field of both sides; {side} has: {}", names.join(", "))
                                    });
                                self.report(
                                    Diagnostic::new(
                                        Code::UnknownField,
                                        span,
                                        format!("join key `{key_name}` is not a field of {side}"),
                                    )
                                    .label("missing on one side")
                                    .help(help),
                                );
                            }
                        }
                    }
                }
                ClauseKeyword::Within => within = self.duration(argument),
                other_keyword => self.unexpected_clause(
                    other_keyword,
                    keyword_span,
                    "a join",
                    "write `join = other by key within 5 min`",
                ),
            }
        }
        // Keys that were written but are wrong have been reported, each where it stands; say only what is missing.
        let missing = match (keys_written, within.is_some()) {
            (false, false) => Some(("keys and a time window", "expected `by KEY within DURATION`")),
            (false, true) => Some(("keys", "expected `by KEY`")),
            (true, false) => Some(("a time window", "expected `within DURATION`")),
            (true, true) => None,
        };
        if let Some((what, label)) = missing {
            self.report(
                Diagnostic::new(Code::MissingAttribute, expr.span, format!("a join needs {what}"))
                    .label(label)
                    .help(format!("write `join = {other} by camera within 5 min`")),
            );
        }
        if keys.is_empty() || missing.is_some() {
            return None;
        }
        let join = Join { with: other, keys, within: within?, matching };
        *fields = join.widen(fields, &output.fields);
        let used: Vec<String> = output.fields.iter().map(|field| field.name.clone()).collect();
        Some((join, output, used))
    }

    /// `tumbling(1 min) by camera`, `sliding(5 min, 1 min) by [a, b]`, `session(30 s)`.
    fn window(&mut self, expr: &Expr, record: &Scope) -> Option<(Window, Vec<String>)> {
        let (base, clauses) = expr.split_clauses();
        let mut keys = Vec::new();
        for (keyword, keyword_span, argument) in clauses {
            if keyword != ClauseKeyword::By {
                self.unexpected_clause(keyword, keyword_span, "a window", "write `window = tumbling(1 min) by camera`");
                continue;
            }
            keys = self.field_names(argument, record);
        }
        let ExprKind::Call { function, arguments } = &base.kind else {
            self.wrong_value(base, "a window: tumbling(SIZE), sliding(SIZE, SLIDE) or session(GAP)");
            return None;
        };
        let arity = match function.text.as_str() {
            "tumbling" | "session" => 1,
            "sliding" => 2,
            other => {
                let help = suggest::did_you_mean(other, ["tumbling", "sliding", "session"])
                    .unwrap_or_else(|| "windows are tumbling(SIZE), sliding(SIZE, SLIDE) and session(GAP)".into());
                self.report(
                    Diagnostic::new(Code::UnknownFunction, function.span, format!("unknown window `{other}`"))
                        .label("not a window")
                        .help(help),
                );
                return None;
            }
        };
        if arguments.len() != arity {
            self.report(
                Diagnostic::new(
                    Code::UnknownFunction,
                    base.span,
                    format!("`{}` takes {arity} duration(s), found {}", function.text, arguments.len()),
                )
                .label("wrong number of arguments")
                .help("windows are tumbling(SIZE), sliding(SIZE, SLIDE) and session(GAP)"),
            );
            return None;
        }
        let durations: Vec<Option<Duration>> = arguments.iter().map(|argument| self.duration(argument)).collect();
        let window = match (function.text.as_str(), durations.as_slice()) {
            ("tumbling", [Some(size)]) => Window::Tumbling { size: *size },
            ("session", [Some(gap)]) => Window::Session { gap: *gap },
            ("sliding", [Some(size), Some(slide)]) => {
                if slide.0 > size.0 {
                    self.report(
                        Diagnostic::new(
                            Code::OutOfRange,
                            arguments[1].span,
                            format!("the slide ({slide}) is longer than the window ({size})"),
                        )
                        .label("records between windows would be skipped")
                        .help("make the slide at most the window size, or use a tumbling window"),
                    );
                    return None;
                }
                Window::Sliding { size: *size, slide: *slide }
            }
            _ => return None,
        };
        let zero = match &window {
            Window::Tumbling { size } | Window::Sliding { size, .. } => size.0 == 0.0,
            Window::Session { gap } => gap.0 == 0.0,
        };
        if zero {
            self.report(
                Diagnostic::new(Code::OutOfRange, base.span, "a window must last longer than 0")
                    .label("zero-length window")
                    .help("use a duration such as `1 min`"),
            );
            return None;
        }
        Some((window, keys))
    }

    /// A name or list of names, each a field of `fields`.
    fn field_names(&mut self, expr: &Expr, record: &Scope) -> Vec<String> {
        let mut names = Vec::new();
        for item in self.items(expr) {
            let Some((name, span)) = self.name(item, "a field name") else { continue };
            if find_field(record.fields, &name).is_none() {
                if record.complete {
                    let candidates: Vec<&str> = record.fields.iter().map(|field| field.name.as_str()).collect();
                    let help = suggest::did_you_mean(&name, candidates.iter().copied())
                        .unwrap_or_else(|| format!("{} has {}", record.description, describe_fields(record.fields)));
                    self.report(
                        Diagnostic::new(Code::UnknownField, span, format!("unknown field `{name}`"))
                            .label(format!("not a field of {}", record.description))
                            .help(help),
                    );
                }
                continue;
            }
            names.push(name);
        }
        names
    }

    pub(super) fn lower_sink(&mut self, section: &'a Section, name: String) -> Lowered {
        self.sink(section, name).map(Lowered::Sink).unwrap_or(Lowered::Nothing)
    }

    fn sink(&mut self, section: &'a Section, name: String) -> Option<Sink> {
        let owner = format!("sink `{name}`");
        let kind = self.component_kind(section, &SinkConnector::NAMES, "sink", "parquet")?;
        let kind = SinkConnector::named(kind)?;
        let attributes = self.attributes(
            section.statements(),
            &[SINK_COMMON, kind.spec(), PLACEMENT, RESOURCES],
            &owner,
            section.keyword.span,
        );
        let input = self
            .required(&attributes, "from", "from = my_stream")
            .and_then(|value| self.input(value, &[ItemKind::Source, ItemKind::Stream], "`from`"));
        let mut placement = self.placement(&attributes, input.as_ref().and_then(|(_, output, _)| output.tier));
        let resources = self.resources(&attributes);
        let (from, output, from_span) = input?;
        let mut record = Scope::new(&output.fields, format!("`{from}`"));
        record.complete = output.complete;
        let sink_kind = self.sink_kind(kind, &attributes, &record)?;
        let everything: Vec<String> = output.fields.iter().map(|field| field.name.clone()).collect();
        keep_with_private_data(&mut placement, output.tier, &output.fields, &everything);
        self.check_privacy_crossing(
            ItemKind::Sink,
            &name,
            placement.inferred_tier,
            &from,
            output.tier,
            &output.fields,
            &everything,
            from_span,
            attributes.value("on").map(|on| on.span),
        );
        Some(Sink { name, from, kind: sink_kind, fields: output.fields, placement, resources })
    }

    /// The connector part of a sink, shared by `sink` items and a service's `output = mqtt { … }`.
    pub(super) fn sink_kind(
        &mut self,
        kind: SinkConnector,
        attributes: &Attributes<'a>,
        record: &Scope,
    ) -> Option<SinkKind> {
        let text = |checker: &mut Checker<'a>, name: &str, example: &str| {
            checker.required(attributes, name, example).and_then(|value| checker.string(value))
        };
        Some(match kind {
            SinkConnector::Mqtt => {
                let topic = text(self, "topic", "topic = \"results/{camera}\"")?;
                if let Some(value) = attributes.value("topic") {
                    self.check_placeholders(&topic, value.span, record);
                }
                SinkKind::Mqtt { topic }
            }
            SinkConnector::Kafka => SinkKind::Kafka {
                topic: text(self, "topic", "topic = \"results\"")?,
                brokers: attributes.value("brokers").map(|value| self.strings(value)).unwrap_or_default(),
            },
            SinkConnector::Nats => {
                let subject = text(self, "subject", "subject = \"results.{camera}\"")?;
                if let Some(value) = attributes.value("subject") {
                    self.check_placeholders(&subject, value.span, record);
                }
                SinkKind::Nats { subject, url: attributes.value("url").and_then(|value| self.string(value)) }
            }
            SinkConnector::Http => {
                let url = text(self, "url", "url = \"https://example.com/hook\"")?;
                if let Some(value) = attributes.value("url")
                    && !(url.starts_with("http://") || url.starts_with("https://"))
                {
                    self.report(
                        Diagnostic::new(Code::WrongValue, value.span, format!("`{url}` is not an HTTP URL"))
                            .label("expected http://… or https://…")
                            .help("write the whole address, as in `url = \"https://example.com/hook\"`"),
                    );
                }
                let retries = match attributes.value("retries") {
                    Some(value) => {
                        self.whole(value, 0, "`retries`").map(|retries| u32::try_from(retries).unwrap_or(u32::MAX))
                    }
                    None => Some(DEFAULT_WEBHOOK_RETRIES),
                };
                SinkKind::Http { url, retries: retries? }
            }
            SinkConnector::Dataset => {
                let value = self.required(attributes, "into", "into = my_dataset")?;
                let (target, span) = self.name(value, "the name of a dataset")?;
                let id = self.resolve(&target, span, &[ItemKind::Dataset], "`into`")?;
                let dataset_fields = self.output_of(id, span)?.fields;
                self.check_fits_dataset(&dataset_fields, record, &target, span);
                SinkKind::Dataset { into: target }
            }
            SinkConnector::File(format) => {
                let path = text(self, "path", "path = \"data/history\"")?;
                let partition_by = match attributes.value("partition_by") {
                    Some(value) => self.field_names(value, record),
                    None => Vec::new(),
                };
                SinkKind::File { path, format, partition_by }
            }
        })
    }

    /// Reports the columns of a dataset that the records written into it lack, or carry with another type.
    fn check_fits_dataset(&mut self, columns: &[Field], record: &Scope, dataset: &str, span: Span) {
        let (fields, input) = (record.fields, &record.description);
        for column in columns {
            match find_field(fields, &column.name) {
                Some(field) if field.data_type.fits(&column.data_type) => {}
                Some(field) => self.report(
                    Diagnostic::new(
                        Code::MismatchedTypes,
                        span,
                        format!(
                            "dataset `{dataset}` stores `{}` as {}, but {input} has {}",
                            column.name, column.data_type, field.data_type
                        ),
                    )
                    .label("types differ")
                    .help("convert the field in a stream's `select`, or change the dataset's schema"),
                ),
                None if !record.complete => {}
                None => {
                    let names: Vec<&str> = fields.iter().map(|field| field.name.as_str()).collect();
                    let help = suggest::did_you_mean(&column.name, names.iter().copied())
                        .map(|suggestion| format!("{suggestion} (rename it in a stream's `select`)"))
                        .unwrap_or_else(|| format!("compute `{}` in a stream's `select`", column.name));
                    self.report(
                        Diagnostic::new(
                            Code::UnknownField,
                            span,
                            format!("dataset `{dataset}` needs a field `{}` that {input} lacks", column.name),
                        )
                        .label(format!("{input} has: {}", names.join(", ")))
                        .help(help),
                    );
                }
            }
        }
    }

    /// Checks the `{field}` placeholders of a topic template against the fields that will fill them.
    fn check_placeholders(&mut self, template: &str, span: Span, record: &Scope) {
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else { break };
            let placeholder = &rest[open + 1..open + close];
            if find_field(record.fields, placeholder).is_none() && record.complete {
                let names: Vec<&str> = record.fields.iter().map(|field| field.name.as_str()).collect();
                let help = suggest::did_you_mean(placeholder, names.iter().copied())
                    .unwrap_or_else(|| format!("{} has: {}", record.description, names.join(", ")));
                self.report(
                    Diagnostic::new(
                        Code::UnknownField,
                        span,
                        format!("placeholder `{{{placeholder}}}` is not a field of {}", record.description),
                    )
                    .label("unknown placeholder")
                    .help(help),
                );
            }
            rest = &rest[open + close + 1..];
        }
    }

    pub(super) fn lower_dataset(&mut self, section: &'a Section, name: String) -> Lowered {
        let owner = format!("dataset `{name}`");
        let attributes = self.attributes(section.statements(), &[DATASET], &owner, section.keyword.span);
        let schema =
            self.required(&attributes, "schema", "schema = MySchema").and_then(|value| self.schema_fields(value));
        let path = attributes.value("path").and_then(|value| self.string(value));
        let format = match (attributes.value("format"), &path) {
            (Some(value), _) => self.word(value, FileFormat::NAMES, "a file format").and_then(FileFormat::from_name),
            (None, Some(path)) => self.format_from_path(path, &attributes),
            (None, None) => Some(FileFormat::Parquet),
        };
        let rows = attributes.value("rows").and_then(|value| self.whole(value, 0, "`rows`"));
        match schema {
            Some((schema, fields)) => Lowered::Dataset(Dataset { name, schema, fields, path, format, rows }),
            None => Lowered::Nothing,
        }
    }

    pub(super) fn lower_batch(&mut self, section: &'a Section, name: String) -> Lowered {
        let owner = format!("batch `{name}`");
        self.component_kind(section, &["sql"], "batch", "sql");
        let attributes =
            self.attributes(section.statements(), &[BATCH, PLACEMENT, RESOURCES], &owner, section.keyword.span);
        let schedule = match (attributes.value("every"), attributes.value("cron")) {
            (Some(every), None) => self.duration(every).map(Schedule::Every),
            (None, Some(cron)) => self.cron(cron),
            (Some(_), Some(cron)) => {
                self.report(
                    Diagnostic::new(
                        Code::DuplicateAttribute,
                        cron.span,
                        "a batch has either `every` or `cron`, not both",
                    )
                    .label("second schedule")
                    .help("keep one of them"),
                );
                None
            }
            (None, None) => {
                self.report(
                    Diagnostic::new(Code::MissingAttribute, section.keyword.span, format!("{owner} has no schedule"))
                        .label("`every` or `cron` is required")
                        .help("add `every = 1 h` or `cron = \"0 * * * *\"`"),
                );
                None
            }
        };
        let query_expr = self.required(&attributes, "query", "query = \"\"\"SELECT …\"\"\"");
        let query = query_expr.and_then(|value| self.string(value));
        let into = self.required(&attributes, "into", "into = my_dataset").and_then(|value| {
            let (target, span) = self.name(value, "the name of a dataset")?;
            let id = self.resolve(&target, span, &[ItemKind::Dataset], "`into`")?;
            let fields = self.output_of(id, span).map(|output| output.fields).unwrap_or_default();
            Some((target, fields))
        });
        let reads = match (query_expr, &query) {
            (Some(expr), Some(query)) => self.check_query(query, expr, into.as_ref()),
            _ => Vec::new(),
        };
        let into = into.map(|(target, _)| target);
        let placement = self.placement(&attributes, None);
        let resources = self.resources(&attributes);
        match (schedule, query, into) {
            (Some(schedule), Some(query), Some(into)) => {
                Lowered::Batch(Batch { name, schedule, query, reads, into, placement, resources })
            }
            _ => Lowered::Nothing,
        }
    }

    fn cron(&mut self, expr: &Expr) -> Option<Schedule> {
        let text = self.string(expr)?;
        if let Err(error) = stratum_core::cron::CronSchedule::parse(&text) {
            let label = match error.field {
                Some(_) => "expected `minute hour day month weekday`, in UTC",
                None => "not a schedule that runs",
            };
            self.report(
                Diagnostic::new(Code::WrongValue, expr.span, format!("cron schedule `{text}`: {error}"))
                    .label(label)
                    .help("for every hour on the hour write `cron = \"0 * * * *\"`; fields take `*`, `5`, `1-5`, `*/15`, `1,15`"),
            );
            return None;
        }
        Some(Schedule::Cron(text))
    }
}

/// A component that reads private fields passed the privacy check only because it runs on its input's tier
/// (stated as its own, or inferred); record that tier so that neither the planner nor the control plane, when it
/// places the component again after a machine is lost, ever takes it elsewhere.
pub(super) fn keep_with_private_data(
    placement: &mut Placement,
    input_tier: Option<Tier>,
    fields: &[Field],
    used: &[String],
) {
    if input_tier.is_none() || placement.tier.is_some_and(|tier| Some(tier) != input_tier) {
        return;
    }
    if fields.iter().any(|field| field.private && used.contains(&field.name)) {
        placement.private_data_tier = input_tier;
    }
}
