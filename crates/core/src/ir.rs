//! The checked application model (IR): what a `.stratum` file means once every name is resolved, every unit
//! converted to its base unit and every schema inferred.
//!
//! The IR is versioned ([`IR_VERSION`]) and serializable; `stratum check FILE --emit ir` prints it as JSON. It is
//! the only thing later stages read: nothing downstream of the language front end sees the syntax tree.

use crate::types::{DataType, Field, Schema};
use crate::units::{Bandwidth, ByteSize, Duration, EventRate, HourlyCost};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped whenever the shape of the IR changes in a way a consumer could notice.
pub const IR_VERSION: u32 = 3;

/// Reads `ir_version` and refuses any but [`IR_VERSION`]: a consumer must never guess at a shape it does not know
/// (an agent of an older release, a state store written by a newer one).
fn ir_version<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    crate::version::expect(deserializer, "IR", IR_VERSION)
}

/// A whole application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Application {
    /// Checked on every read: an IR of another version is refused with both versions named.
    #[serde(deserialize_with = "ir_version")]
    pub ir_version: u32,
    /// Its name (`app NAME`).
    pub name: String,
    /// Its title, if the file gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Its machines.
    pub nodes: Vec<Node>,
    /// Its elastic pools of machines.
    pub pools: Vec<Pool>,
    /// The network between tiers and nodes.
    pub links: Vec<Link>,
    /// Its record types.
    pub schemas: Vec<Schema>,
    /// Where data enters.
    pub sources: Vec<Source>,
    /// Streaming analytics.
    pub streams: Vec<Stream>,
    /// Where data leaves.
    pub sinks: Vec<Sink>,
    /// Data at rest, for batches and training.
    pub datasets: Vec<Dataset>,
    /// Batch SQL.
    pub batches: Vec<Batch>,
    /// Models to build (or import).
    pub models: Vec<Model>,
    /// Inference services.
    pub services: Vec<Service>,
    /// Programs that run beside it.
    pub tools: Vec<Tool>,
    /// Dashboards.
    pub dashboards: Vec<Dashboard>,
    /// Policies: conditions and actions.
    pub policies: Vec<Policy>,
    /// How the planner weighs what it minimises.
    #[serde(default)]
    pub objective: ObjectiveWeights,
}

/// The weights of the planner's objective (`objective { … }` in the file). The planner minimises
/// `latency × ms of data-path latency + traffic × Mbit/s across tiers + cost × money per hour + near × ms between
/// components that should be near`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveWeights {
    /// Per millisecond of data-path latency.
    pub latency: f64,
    /// Per Mbit/s across tiers.
    pub traffic: f64,
    /// Per unit of money per hour.
    pub cost: f64,
    /// Per millisecond between components that should be near.
    pub near: f64,
}

impl Default for ObjectiveWeights {
    fn default() -> ObjectiveWeights {
        ObjectiveWeights { latency: 1.0, traffic: 1.0, cost: 0.1, near: 10.0 }
    }
}

impl Application {
    /// Looks up the output fields of anything that produces records: a source, stream, file sink or dataset.
    pub fn fields_of(&self, name: &str) -> Option<&[Field]> {
        if let Some(source) = self.sources.iter().find(|source| source.name == name) {
            return Some(&source.fields);
        }
        if let Some(stream) = self.streams.iter().find(|stream| stream.name == name) {
            return Some(&stream.fields);
        }
        if let Some(dataset) = self.datasets.iter().find(|dataset| dataset.name == name) {
            return Some(&dataset.fields);
        }
        if let Some(service) = self.services.iter().find(|service| service.name == name) {
            return Some(&service.fields);
        }
        self.sinks.iter().find(|sink| sink.name == name).map(|sink| sink.fields.as_slice())
    }
}

/// The three tiers of the cloud–fog–edge spectrum, ordered from the data's origin outwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Devices where data is made (cameras, gateways).
    Edge,
    /// Servers near the edge.
    Fog,
    /// Elastic data centres.
    Cloud,
}

impl Tier {
    /// The tiers' names, as the language spells them.
    pub const NAMES: &'static [&'static str] = &["edge", "fog", "cloud"];

    /// The tier of this name, if any.
    pub fn from_name(name: &str) -> Option<Tier> {
        match name {
            "edge" => Some(Tier::Edge),
            "fog" => Some(Tier::Fog),
            "cloud" => Some(Tier::Cloud),
            _ => None,
        }
    }

    /// Its name, as the language spells it.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Edge => "edge",
            Tier::Fog => "fog",
            Tier::Cloud => "cloud",
        }
    }
}

/// A processor architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// 64-bit x86.
    X86_64,
    /// 64-bit ARM.
    Aarch64,
    /// 32-bit ARM.
    Armv7,
}

impl Arch {
    /// The architectures' names, as the language spells them.
    pub const NAMES: &'static [&'static str] = &["x86_64", "aarch64", "armv7"];

    /// The architecture of this name, if any.
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Aarch64),
            "armv7" => Some(Arch::Armv7),
            _ => None,
        }
    }
}

/// `count x "kind"`, for example `1 x "nvidia-t4"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accelerator {
    /// How many.
    pub count: u32,
    /// Which kind (`nvidia-t4`).
    pub kind: String,
}

/// The hardware of one machine, shared by nodes and the members of a pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Its tier.
    pub tier: Tier,
    /// Cores (fractions allowed).
    pub cpu: f64,
    /// Memory.
    pub memory: ByteSize,
    /// Disk, when the file says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<ByteSize>,
    /// Architecture.
    pub arch: Arch,
    /// Accelerators.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accelerators: Vec<Accelerator>,
    /// Operating system, when the file says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Labels, for placement.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// What it costs per hour, when the file says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<HourlyCost>,
    /// Who provides it (a cloud), when the file says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// One machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Its name.
    pub name: String,
    /// Its hardware.
    #[serde(flatten)]
    pub machine: Machine,
    /// Its address, when the file says (the generated deployments use it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// An elastic group of identical machines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// Its name.
    pub name: String,
    /// The hardware of each member.
    #[serde(flatten)]
    pub machine: Machine,
    /// The fewest members it runs.
    pub min: u32,
    /// The most members it runs.
    pub max: u32,
}

/// One end of a link: a whole tier or one named node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// A whole tier.
    Tier(Tier),
    /// One node, by name.
    Node(String),
}

/// The network between two tiers or nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// One end.
    pub from: Endpoint,
    /// The other end.
    pub to: Endpoint,
    /// Its latency.
    pub latency: Duration,
    /// Its bandwidth.
    pub bandwidth: Bandwidth,
    /// Packet loss as a fraction (0.01 is 1%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Traffic on it costs money (the planner avoids it).
    #[serde(default)]
    pub metered: bool,
}

/// Where a component may run. Every field is a constraint; an empty placement lets the planner choose.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// `on = TIER`: the tier it must run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// `on = NODE`: the node it must run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `on = POOL`: the pool it must run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Labels the machine must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// A component it should run near.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub near: Option<String>,
    /// Accelerators the machine must have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accelerators: Vec<Accelerator>,
    /// The architecture the machine must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    /// One instance on each machine of its tier, at most this many per machine (sources on every device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas_per_node: Option<u32>,
    /// The tier this component ends up on when it can be known before planning: its own `on`, the tier of its
    /// named node or pool, or else the tier of its input. The privacy check works on this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inferred_tier: Option<Tier>,
    /// The component reads private fields produced on this tier and states no tier of its own: the privacy check
    /// passed because it stays there, so the planner must keep it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_data_tier: Option<Tier>,
}

/// Resources a component asks for, when the file overrides the planner's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// Cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// Disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<ByteSize>,
}

/// File formats for file sources, file sinks and datasets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// Comma-separated values with a header.
    Csv,
    /// JSON, one object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

impl FileFormat {
    /// The formats' names, as the language spells them.
    pub const NAMES: &'static [&'static str] = &["csv", "jsonl", "parquet"];

    /// The file extension, which is also the format's name.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Jsonl => "jsonl",
            FileFormat::Parquet => "parquet",
        }
    }

    /// The format of this name, if any.
    pub fn from_name(name: &str) -> Option<FileFormat> {
        match name {
            "csv" => Some(FileFormat::Csv),
            "jsonl" => Some(FileFormat::Jsonl),
            "parquet" => Some(FileFormat::Parquet),
            _ => None,
        }
    }
}

/// Where data enters the application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceKind {
    /// An MQTT subscription.
    Mqtt {
        /// The topic filter (`+` and `#` allowed).
        topic: String,
        /// The broker (`mqtt://host:port`); the embedded one or the run's own when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        broker: Option<String>,
    },
    /// A NATS subscription (core NATS: at most once).
    Nats {
        /// The subject (wildcards allowed).
        subject: String,
        /// The server's URL; the run's own when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    /// A Kafka topic, consumed in a group.
    Kafka {
        /// The topic.
        topic: String,
        /// The brokers (`host:port`); the run's own when none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        brokers: Vec<String>,
        /// The consumer group; the application's name when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
    },
    /// HTTP pushes (`POST`s of JSON) on a path.
    Http {
        /// The path.
        path: String,
        /// The port (8080 when none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        /// HTTPS with this certificate; plain HTTP without.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls: Option<TlsFiles>,
    },
    /// A file, read once or tailed.
    File {
        /// Its path.
        path: String,
        /// Its format.
        format: FileFormat,
        /// Keep reading as the file grows (`tail`) or read it once.
        tail: bool,
    },
    /// Records made up from the schema (development, simulation).
    Generator {
        /// The seed of the values.
        seed: u64,
        /// How many to make; endless when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
    },
}

impl SourceKind {
    /// The kind's one string form: its `kind` tag in the IR and its key in the data plane's registry.
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Mqtt { .. } => "mqtt",
            SourceKind::Nats { .. } => "nats",
            SourceKind::Kafka { .. } => "kafka",
            SourceKind::Http { .. } => "http",
            SourceKind::File { .. } => "file",
            SourceKind::Generator { .. } => "generator",
        }
    }
}

/// A server's certificate (its chain, PEM) and private key (PEM), as files relative to the application's folder
/// or absolute: read on the machine that runs the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFiles {
    /// The certificate chain (PEM file).
    pub certificate: String,
    /// Its private key (PEM file).
    pub private_key: String,
}

/// What an edge buffer does when it is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Drop the oldest entries to make room.
    DropOldest,
    /// Refuse new entries: the producer waits.
    Reject,
}

/// What a path between two machines may hold when its producer declares no `buffer` (the data plane's path logs
/// and the simulator's), in bytes. Once full, the producer waits.
pub const DEFAULT_PATH_BUFFER: u64 = 256 << 20;

/// Store-and-forward policy for a source: events wait here while the uplink is down.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BufferPolicy {
    /// The most it holds.
    pub max: ByteSize,
    /// How long an entry may wait before it is dropped.
    pub ttl: Duration,
    /// What happens when it is full.
    pub when_full: WhenFull,
}

/// Where data enters the application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Its name.
    pub name: String,
    /// What kind of source, with its settings.
    #[serde(flatten)]
    pub kind: SourceKind,
    /// The schema of its records.
    pub schema: String,
    /// The schema's fields.
    pub fields: Vec<Field>,
    /// Its rate, when the file says (the planner's traffic; the generator's pace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<EventRate>,
    /// The rate is per node the source runs on (`50/s per node`), not for the whole application.
    #[serde(default)]
    pub rate_per_node: bool,
    /// The size of one record, for the planner's traffic.
    pub event_size: ByteSize,
    /// The event size was estimated from the schema because the file did not give `event_size`.
    #[serde(default)]
    pub event_size_estimated: bool,
    /// Its store-and-forward buffer toward other machines, when the file declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<BufferPolicy>,
    /// Where it may run.
    pub placement: Placement,
    /// What it reserves.
    #[serde(default)]
    pub resources: Resources,
}

/// The aggregate functions: in a windowed stream's `select`, a call of one of these with one argument (two for
/// `percentile` and the `_if` ones) is an aggregate over the window. (`min` and `max` of two or more values are
/// scalars; the checker lowers them to `least` and `greatest`.)
pub const AGGREGATE_FUNCTIONS: &[&str] = &[
    "count",
    "count_if",
    "sum",
    "avg",
    "min",
    "max",
    "percentile",
    "distinct",
    "sum_if",
    "avg_if",
    "min_if",
    "max_if",
];

/// A typed expression over the fields of one record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "expr", rename_all = "snake_case")]
pub enum Expr {
    /// A constant.
    Literal {
        /// Its value.
        value: Value,
    },
    /// A field of the record.
    Field {
        /// Its name.
        name: String,
    },
    /// An operator on one operand.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// Its operand.
        operand: Box<Expr>,
    },
    /// An operator on two operands.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// The left operand.
        left: Box<Expr>,
        /// The right operand.
        right: Box<Expr>,
    },
    /// A function call.
    Call {
        /// The function.
        function: String,
        /// Its arguments.
        args: Vec<Expr>,
    },
    /// `[a, b]`, as the right side of `in`.
    List {
        /// Its items.
        items: Vec<Expr>,
    },
    /// `if condition then a else b`: `otherwise` also when the condition is missing, as SQL's `CASE` does.
    If {
        /// A bool.
        condition: Box<Expr>,
        /// The value when the condition holds.
        then: Box<Expr>,
        /// The value when it does not.
        otherwise: Box<Expr>,
    },
}

impl Expr {
    /// The expressions this one is made of, in order (none for a literal or a field).
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Literal { .. } | Expr::Field { .. } => Vec::new(),
            Expr::Unary { operand, .. } => vec![operand],
            Expr::Binary { left, right, .. } => vec![left, right],
            Expr::Call { args: items, .. } | Expr::List { items } => items.iter().collect(),
            Expr::If { condition, then, otherwise } => vec![condition, then, otherwise],
        }
    }

    /// The service a `predict(service)` call names, when this is one. The checker lowers the name to a string
    /// literal; a field reference is read the same way.
    pub fn predicted_service(&self) -> Option<&str> {
        match self {
            Expr::Call { function, args } if function == "predict" => match args.first() {
                Some(Expr::Literal { value: Value::String(name) } | Expr::Field { name }) => Some(name),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A constant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    String(String),
}

/// An operator on one operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnaryOp {
    /// `not`
    Not,
    /// `-`
    Negate,
}

/// An operator on two operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Subtract,
    /// `*`
    Multiply,
    /// `/`
    Divide,
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `and`
    And,
    /// `or`
    Or,
    /// `in`
    In,
}

impl BinaryOp {
    /// The operator as it is written in a `.stratum` file.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Subtract => "-",
            BinaryOp::Multiply => "*",
            BinaryOp::Divide => "/",
            BinaryOp::Equal => "==",
            BinaryOp::NotEqual => "!=",
            BinaryOp::Less => "<",
            BinaryOp::LessOrEqual => "<=",
            BinaryOp::Greater => ">",
            BinaryOp::GreaterOrEqual => ">=",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::In => "in",
        }
    }
}

/// A window over a stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Window {
    /// Back-to-back windows of `size`.
    Tumbling {
        /// Each window's length.
        size: Duration,
    },
    /// Windows of `size`, one starting every `slide`.
    Sliding {
        /// Each window's length.
        size: Duration,
        /// How often one starts.
        slide: Duration,
    },
    /// A window per key that closes after `gap` without records.
    Session {
        /// The silence that closes it.
        gap: Duration,
    },
}

/// A named computed field of a stream's output (`select { avg_speed = avg(speed_kmh) }`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Computed {
    /// Its name.
    pub name: String,
    /// How it is computed.
    pub expr: Expr,
    /// Its type.
    #[serde(flatten)]
    pub data_type: DataType,
}

/// A windowed join with a second stream on equal keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Join {
    /// The stream or source joined with.
    pub with: String,
    /// The fields both sides must agree on.
    pub keys: Vec<String>,
    /// How far apart in event time two records may be.
    pub within: Duration,
    /// Which records of the other side each record is joined with.
    #[serde(default, skip_serializing_if = "JoinMatch::is_every")]
    pub matching: JoinMatch,
}

/// Which records of the other side of a join a record is joined with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinMatch {
    /// Every record of the other side within the time bound: one joined record per pair.
    #[default]
    Every,
    /// `join = latest(weather) …`: each record comes out once, with the other side's latest record at or before
    /// it (no older than the time bound), or with the other side's fields missing when there is none: enrichment.
    Latest,
}

impl JoinMatch {
    /// The default: every match.
    pub fn is_every(&self) -> bool {
        *self == JoinMatch::Every
    }
}

impl Join {
    /// The record a join makes: the fields of its own input, then those of the other side except the keys, each
    /// prefixed with the other side's name when its name is already taken (`weather_ts`), and optional in a join of
    /// the latest match.
    pub fn widen(&self, own: &[Field], other: &[Field]) -> Vec<Field> {
        let mut fields = own.to_vec();
        for field in other.iter().filter(|field| !self.keys.contains(&field.name)) {
            let mut added = field.clone();
            // A join of the latest match lets records through without a match: the other side's fields may be
            // missing.
            if self.matching == JoinMatch::Latest && !matches!(added.data_type, DataType::Optional(_)) {
                added.data_type = DataType::Optional(Box::new(added.data_type));
            }
            if fields.iter().any(|existing| existing.name == field.name) {
                added.name = format!("{}_{}", self.with, field.name);
            }
            fields.push(added);
        }
        fields
    }
}

/// When a stream's watermark moves on with the wall clock while no records arrive, closing its windows: after
/// the stream has been quiet this long, or never (windows then close only by event time, and when the stream ends).
/// A producer slower than real time needs a longer `idle`, or `never`, for its records not to arrive after their
/// windows have closed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Idle {
    /// After the stream has been quiet this long.
    After(Duration),
    /// Never: windows close by event time only.
    Never,
}

/// Continuous processing: filter, join, window, projection and enrichment, in that order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    /// Its name.
    pub name: String,
    /// The stream or source it reads.
    pub from: String,
    /// `where`: the records it keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Expr>,
    /// `join`: the other stream it joins with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<Join>,
    /// `window`: how records are grouped in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// The keys a window groups by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// How late (in event time) a record may arrive and still count in its window or join; the data plane's
    /// default when the file does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lateness: Option<Duration>,
    /// When wall-clock time counts as event time passing for a stream that receives nothing; the data plane's
    /// default (at once) when the file does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<Idle>,
    /// Input fields passed through unchanged (all of them when neither `keep` nor `select` is given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<String>,
    /// `select`: the fields of its output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select: Vec<Computed>,
    /// Inference services this stream calls for each record (`predict(service)` in `select`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<String>,
    /// The inferred output schema.
    pub fields: Vec<Field>,
    /// Where it may run.
    pub placement: Placement,
    /// What it reserves.
    #[serde(default)]
    pub resources: Resources,
}

/// Where results leave the application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkKind {
    /// An MQTT topic.
    Mqtt {
        /// May contain `{field}` placeholders filled from each record.
        topic: String,
    },
    /// A NATS subject.
    Nats {
        /// The subject (may contain `{field}` placeholders).
        subject: String,
        /// The server's URL; the run's own when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    /// A Kafka topic.
    Kafka {
        /// The topic.
        topic: String,
        /// The brokers (`host:port`); the run's own when none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        brokers: Vec<String>,
    },
    /// A webhook: each batch of records is POSTed as a JSON array.
    Http {
        /// The URL records are `POST`ed to.
        url: String,
        /// Attempts after the first one before the records go to dead letters.
        retries: u32,
    },
    /// A file: CSV, JSON lines or Parquet.
    File {
        /// Its path.
        path: String,
        /// Its format.
        format: FileFormat,
        /// Fields whose values name a sub-folder per record (`date=…/`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        partition_by: Vec<String>,
    },
    /// Appends to a declared dataset, whose schema the records must match.
    Dataset {
        /// The dataset.
        into: String,
    },
}

impl SinkKind {
    /// The kind's one string form: its `kind` tag in the IR and its key in the data plane's registry.
    pub fn name(&self) -> &'static str {
        match self {
            SinkKind::Mqtt { .. } => "mqtt",
            SinkKind::Nats { .. } => "nats",
            SinkKind::Kafka { .. } => "kafka",
            SinkKind::Http { .. } => "http",
            SinkKind::File { .. } => "file",
            SinkKind::Dataset { .. } => "dataset",
        }
    }
}

/// Where results leave the application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sink {
    /// Its name.
    pub name: String,
    /// The stream or source it takes.
    pub from: String,
    /// What kind of sink, with its settings.
    #[serde(flatten)]
    pub kind: SinkKind,
    /// The fields written: those of `from`.
    pub fields: Vec<Field>,
    /// Where it may run.
    pub placement: Placement,
    /// What it reserves.
    #[serde(default)]
    pub resources: Resources,
}

/// A stored table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Its name.
    pub name: String,
    /// The schema of its rows.
    pub schema: String,
    /// The schema's fields.
    pub fields: Vec<Field>,
    /// Its file, when it has one (a dataset sinks fill has none until they do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Its file's format, when it is not the path's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FileFormat>,
    /// The number of rows, when the file states it (used to check that folds do not exceed rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

impl Dataset {
    /// Where the dataset is stored, relative to the application's folder: its `path`, or else
    /// `data/NAME.FORMAT` (Parquet unless a format is given) for a dataset filled at run time.
    pub fn location(&self) -> String {
        self.path
            .clone()
            .unwrap_or_else(|| format!("data/{}.{}", self.name, self.format.unwrap_or(FileFormat::Parquet).extension()))
    }
}

/// The port an `http` source listens on when the file does not say.
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// How often a webhook sink tries again after a failed POST when the file does not say.
pub const DEFAULT_WEBHOOK_RETRIES: u32 = 5;

/// When a batch job runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Every so often.
    Every(Duration),
    /// At the times of a cron expression.
    Cron(String),
}

/// Scheduled SQL over datasets, writing a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Its name.
    pub name: String,
    /// When it runs.
    pub schedule: Schedule,
    /// Its SQL query.
    pub query: String,
    /// The datasets (or file sinks) the query reads, found in its FROM and JOIN clauses.
    pub reads: Vec<String>,
    /// The dataset its result goes into.
    pub into: String,
    /// Where it may run.
    pub placement: Placement,
    /// What it reserves.
    #[serde(default)]
    pub resources: Resources,
}

/// What a model learns to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Predict a class.
    Classification,
    /// Predict a number.
    Regression,
    /// Find groups.
    Clustering,
    /// Predict the next values of a series.
    Forecasting,
}

impl Task {
    /// Its name, as the language spells it.
    pub fn name(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
            Task::Clustering => "clustering",
            Task::Forecasting => "forecasting",
        }
    }
}

/// A model feature: a column, or a simple function of columns (`hour_of_day(ts)`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// Its name.
    pub name: String,
    /// How it is computed from a row.
    pub expr: Expr,
    /// Its type.
    #[serde(flatten)]
    pub data_type: DataType,
}

/// A data preparation step, applied in order before training and before every prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum PrepareStep {
    /// Keep only the rows where `condition` holds.
    Filter {
        /// The condition.
        condition: Expr,
    },
    /// Fill missing values.
    Impute {
        /// With what.
        strategy: ImputeStrategy,
    },
    /// Keep only these columns.
    Select {
        /// The columns.
        columns: Vec<String>,
    },
    /// Drop these columns.
    Drop {
        /// The columns.
        columns: Vec<String>,
    },
    /// Scale numeric features to mean 0 and variance 1.
    Standardize,
    /// Scale numeric features to between 0 and 1.
    MinMaxScale,
    /// Encode these categorical columns one-hot.
    OneHot {
        /// The columns.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        columns: Vec<String>,
    },
}

/// How missing values are filled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImputeStrategy {
    /// With the column's mean.
    Mean,
    /// With the column's median.
    Median,
    /// With the column's most frequent value.
    MostFrequent,
    /// With this constant.
    Constant(f64),
}

/// The values a hyperparameter may take during the search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "space", rename_all = "snake_case")]
pub enum ParameterSpace {
    /// These values.
    Values {
        /// The values.
        values: Vec<Value>,
    },
    /// A range (`4..16`).
    Range {
        /// Its lower end.
        min: f64,
        /// Its upper end.
        max: f64,
        /// Whole numbers only.
        integer: bool,
    },
}

/// One candidate algorithm with its hyperparameter search space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The algorithm (`random_forest` …).
    pub algorithm: String,
    /// Its hyperparameters' values to try, by name.
    pub parameters: BTreeMap<String, ParameterSpace>,
}

/// How models are judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Classification: the share predicted right.
    Accuracy,
    /// Classification: F1.
    F1,
    /// Classification: area under the ROC curve.
    RocAuc,
    /// Classification: log loss.
    LogLoss,
    /// Regression: root mean squared error.
    Rmse,
    /// Regression: mean absolute error.
    Mae,
    /// Regression: R².
    R2,
    /// Clustering: silhouette.
    Silhouette,
}

impl Metric {
    /// The metrics' names, as the language spells them.
    pub const NAMES: &'static [&'static str] =
        &["accuracy", "f1", "roc_auc", "log_loss", "rmse", "mae", "r2", "silhouette"];

    /// The metric of this name, if any.
    pub fn from_name(name: &str) -> Option<Metric> {
        Some(match name {
            "accuracy" => Metric::Accuracy,
            "f1" => Metric::F1,
            "roc_auc" => Metric::RocAuc,
            "log_loss" => Metric::LogLoss,
            "rmse" => Metric::Rmse,
            "mae" => Metric::Mae,
            "r2" => Metric::R2,
            "silhouette" => Metric::Silhouette,
            _ => return None,
        })
    }

    /// The metric's name as the language writes it.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::F1 => "f1",
            Metric::RocAuc => "roc_auc",
            Metric::LogLoss => "log_loss",
            Metric::Rmse => "rmse",
            Metric::Mae => "mae",
            Metric::R2 => "r2",
            Metric::Silhouette => "silhouette",
        }
    }

    /// The tasks this metric can judge.
    pub fn suits(self, task: Task) -> bool {
        match self {
            Metric::Accuracy | Metric::F1 | Metric::RocAuc | Metric::LogLoss => task == Task::Classification,
            Metric::Rmse | Metric::Mae | Metric::R2 => matches!(task, Task::Regression | Task::Forecasting),
            Metric::Silhouette => task == Task::Clustering,
        }
    }

    /// Whether a larger value is better (accuracy) or worse (rmse).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::LogLoss | Metric::Rmse | Metric::Mae)
    }
}

/// How candidates are evaluated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum Evaluation {
    /// k-fold cross-validation.
    Kfold {
        /// How many folds.
        folds: u32,
        /// Each fold keeps the classes' proportions.
        stratified: bool,
    },
    /// One random split.
    Holdout {
        /// The share held out for testing.
        fraction: f64,
    },
    /// One split by time: the latest rows test.
    TimeSplit {
        /// The share of the latest rows that test.
        fraction: f64,
    },
}

/// How long the search may run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// At most this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Duration>,
    /// At most this many candidates and parameter choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials: Option<u32>,
}

/// When a trained model is trained again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "trigger", rename_all = "snake_case")]
pub enum Retrain {
    /// On a schedule.
    Every {
        /// How often.
        interval: Duration,
    },
    /// When the served model's metric drifts past a threshold.
    Drift {
        /// The metric watched.
        metric: Metric,
        /// How far it may drift.
        threshold: f64,
    },
}

/// How to build a model from data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// The dataset it learns from.
    pub data: String,
    /// The column it predicts (none for clustering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The features it learns from.
    pub features: Vec<Feature>,
    /// How rows are prepared before fitting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prepare: Vec<PrepareStep>,
    /// The algorithms tried, each with its parameters.
    pub candidates: Vec<Candidate>,
    /// How candidates are evaluated.
    pub evaluation: Evaluation,
    /// The metric they are ranked by.
    pub metric: Metric,
    /// How much searching it may do.
    pub budget: Budget,
    /// Where training runs.
    pub placement: Placement,
    /// How many tasks at once.
    pub parallel: u32,
    /// When it is trained again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrain: Option<Retrain>,
    /// The seed of its randomness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Where a model comes from: trained by Stratum, or imported as an ONNX file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "origin", rename_all = "snake_case")]
pub enum ModelOrigin {
    /// Trained by Stratum from a dataset.
    Trained(Box<Training>),
    /// Imported from an ONNX file.
    Onnx {
        /// The file.
        path: String,
    },
}

/// A machine-learning model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Its name.
    pub name: String,
    /// What it learns to do.
    pub task: Task,
    /// The fields a caller must provide to get a prediction.
    pub inputs: Vec<Field>,
    /// The type of the prediction.
    pub output: DataType,
    /// Where it comes from: trained here, or imported.
    #[serde(flatten)]
    pub origin: ModelOrigin,
}

/// What feeds an inference service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServiceInput {
    /// The records of a stream or source.
    Stream {
        /// The stream or source.
        name: String,
    },
    /// Requests on an HTTP path.
    Http {
        /// The path.
        path: String,
    },
}

/// A latency or throughput objective.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// (percentile, at most this latency), for example (99, 20 ms).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency: Vec<LatencyTarget>,
    /// The throughput it must sustain, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<EventRate>,
}

/// A latency target: at this percentile, at most this long.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyTarget {
    /// The percentile (99 for p99).
    pub percentile: f64,
    /// The bound.
    pub at_most: Duration,
}

/// Serverless scaling of a service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    /// The fewest replicas (0 scales to zero).
    pub min: u32,
    /// The most replicas.
    pub max: u32,
    /// Requests one replica answers at once.
    pub concurrency: u32,
    /// How long a replica may idle before it is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<Duration>,
    /// Start replicas ahead of forecast load.
    pub predictive: bool,
}

impl Default for Scale {
    fn default() -> Scale {
        Scale { min: 1, max: 1, concurrency: 10, idle: None, predictive: false }
    }
}

/// ML as a service: a model behind a stream or HTTP input, with an objective and scaling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Its name.
    pub name: String,
    /// The model it serves.
    pub model: String,
    /// What it predicts on.
    pub input: ServiceInput,
    /// Where predictions go, besides the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<SinkKind>,
    /// The records the service writes: its input's fields (the model's inputs when requests come over HTTP) and
    /// `prediction`.
    #[serde(default)]
    pub fields: Vec<Field>,
    /// Its latency and throughput targets.
    pub slo: Slo,
    /// How it scales.
    pub scale: Scale,
    /// Where it may run.
    pub placement: Placement,
    /// What it reserves.
    #[serde(default)]
    pub resources: Resources,
}

/// How a tool is started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolRun {
    /// A command line.
    Command(Vec<String>),
    /// A container image.
    Image(String),
}

/// Any other program to deploy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// What runs.
    pub run: ToolRun,
    /// Ports it listens on (exposed by the generated deployments).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Its environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Where it may run.
    pub placement: Placement,
    /// What it reserves.
    #[serde(default)]
    pub resources: Resources,
}

/// How a panel draws its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chart {
    /// Lines over time.
    Line,
    /// Bars per group.
    Bar,
    /// The latest records.
    Table,
    /// One number.
    Stat,
    /// A map (shown as a table for now).
    Map,
}

impl Chart {
    /// The charts' names, as the language spells them.
    pub const NAMES: &'static [&'static str] = &["line", "bar", "table", "stat", "map"];

    /// The chart of this name, if any.
    pub fn from_name(name: &str) -> Option<Chart> {
        Some(match name {
            "line" => Chart::Line,
            "bar" => Chart::Bar,
            "table" => Chart::Table,
            "stat" => Chart::Stat,
            "map" => Chart::Map,
            _ => return None,
        })
    }
}

/// One panel of a dashboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Panel {
    /// Its title.
    pub title: String,
    /// How it draws.
    pub chart: Chart,
    /// The stream, service or dataset shown.
    pub source: String,
    /// The field it shows, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The field it groups by, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// How many of the latest records it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u64>,
    /// How far back in time it shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Duration>,
}

/// A dashboard: panels over the application's streams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    /// Its name.
    pub name: String,
    /// Its panels.
    pub panels: Vec<Panel>,
}

crate::vocabulary! {
    /// What a policy's condition measures and compares with a threshold. The checker accepts exactly these and the
    /// runtime measures each one (`stratum_control::qos`), so a condition that checks is one that can be judged.
    pub enum Signal {
        /// The busy share of the machine's CPU the target runs on.
        Cpu = "cpu",
        /// The share of that machine's memory in use.
        Memory = "memory",
        /// Failed over received, over the last interval.
        ErrorRate = "error_rate",
        /// The median latency.
        P50 = "p50",
        /// The 90th percentile latency.
        P90 = "p90",
        /// The 95th percentile latency.
        P95 = "p95",
        /// The 99th percentile latency.
        P99 = "p99",
        /// Requests in flight (a service) or batches waiting (another component).
        Queue = "queue",
    }
}

impl Signal {
    /// The dimension of its threshold: a fraction (`85%`), a duration (`20 ms`), or a plain number.
    pub fn dimension(self) -> Option<crate::units::Dimension> {
        use crate::units::Dimension;
        match self {
            Signal::Cpu | Signal::Memory | Signal::ErrorRate => Some(Dimension::Fraction),
            Signal::P50 | Signal::P90 | Signal::P95 | Signal::P99 => Some(Dimension::Duration),
            Signal::Queue => None,
        }
    }

    /// The latency percentile it is, for the latency signals.
    pub fn percentile(self) -> Option<f64> {
        match self {
            Signal::P50 => Some(0.5),
            Signal::P90 => Some(0.9),
            Signal::P95 => Some(0.95),
            Signal::P99 => Some(0.99),
            Signal::Cpu | Signal::Memory | Signal::ErrorRate | Signal::Queue => None,
        }
    }

    /// Whether it measures the machine the target runs on (rather than the target itself).
    pub fn of_machine(self) -> bool {
        matches!(self, Signal::Cpu | Signal::Memory)
    }
}

/// What a policy watches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "when", rename_all = "snake_case")]
pub enum Condition {
    /// A measured signal (`cpu`, `memory`, `p99`, `queue` …) compared with a threshold in the signal's base unit.
    Threshold {
        /// The signal.
        signal: Signal,
        /// The comparison.
        op: BinaryOp,
        /// The threshold, in the signal's base unit.
        threshold: f64,
    },
    /// A service missed its latency target.
    SloMissed,
    /// A machine running a target was lost.
    NodeLost,
}

/// What a policy does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Add an instance on another machine.
    ScaleOut,
    /// Move to another machine.
    Migrate {
        /// The tier to move to; the nearest when none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Tier>,
    },
    /// Turn away a share of requests.
    ShedLoad {
        /// The share.
        fraction: f64,
    },
}

/// What to do when an objective is missed or a machine is overloaded or lost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Its name.
    pub name: String,
    /// The components it applies to (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// What it watches.
    pub condition: Condition,
    /// How long the condition must hold before acting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sustained: Option<Duration>,
    /// What it does.
    pub action: Action,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_ordered_from_edge_to_cloud() {
        assert!(Tier::Edge < Tier::Fog && Tier::Fog < Tier::Cloud);
    }

    #[test]
    fn an_empty_application_round_trips_through_json() {
        let app = Application { ir_version: IR_VERSION, name: "demo".into(), ..Application::default() };
        let json = serde_json::to_string(&app).unwrap();
        let back: Application = serde_json::from_str(&json).unwrap();
        assert_eq!(app, back);
    }

    #[test]
    fn metrics_know_their_tasks() {
        assert!(Metric::F1.suits(Task::Classification));
        assert!(!Metric::F1.suits(Task::Regression));
        assert!(Metric::Rmse.suits(Task::Forecasting));
        assert!(!Metric::Rmse.higher_is_better());
    }
}
