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
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub nodes: Vec<Node>,
    pub pools: Vec<Pool>,
    pub links: Vec<Link>,
    pub schemas: Vec<Schema>,
    pub sources: Vec<Source>,
    pub streams: Vec<Stream>,
    pub sinks: Vec<Sink>,
    pub datasets: Vec<Dataset>,
    pub batches: Vec<Batch>,
    pub models: Vec<Model>,
    pub services: Vec<Service>,
    pub tools: Vec<Tool>,
    pub dashboards: Vec<Dashboard>,
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
    pub latency: f64,
    pub traffic: f64,
    pub cost: f64,
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
    Edge,
    Fog,
    Cloud,
}

impl Tier {
    pub const NAMES: &'static [&'static str] = &["edge", "fog", "cloud"];

    pub fn from_name(name: &str) -> Option<Tier> {
        match name {
            "edge" => Some(Tier::Edge),
            "fog" => Some(Tier::Fog),
            "cloud" => Some(Tier::Cloud),
            _ => None,
        }
    }

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
    X86_64,
    Aarch64,
    Armv7,
}

impl Arch {
    pub const NAMES: &'static [&'static str] = &["x86_64", "aarch64", "armv7"];

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
    pub count: u32,
    pub kind: String,
}

/// The hardware of one machine, shared by nodes and the members of a pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub tier: Tier,
    /// Cores (fractions allowed).
    pub cpu: f64,
    pub memory: ByteSize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<ByteSize>,
    pub arch: Arch,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accelerators: Vec<Accelerator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<HourlyCost>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// One machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    #[serde(flatten)]
    pub machine: Machine,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// An elastic group of identical machines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub name: String,
    #[serde(flatten)]
    pub machine: Machine,
    pub min: u32,
    pub max: u32,
}

/// One end of a link: a whole tier or one named node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Tier(Tier),
    Node(String),
}

/// The network between two tiers or nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub from: Endpoint,
    pub to: Endpoint,
    pub latency: Duration,
    pub bandwidth: Bandwidth,
    /// Packet loss as a fraction (0.01 is 1%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    #[serde(default)]
    pub metered: bool,
}

/// Where a component may run. Every field is a constraint; an empty placement lets the planner choose.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub near: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accelerators: Vec<Accelerator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<ByteSize>,
}

/// File formats for file sources, file sinks and datasets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    Csv,
    Jsonl,
    Parquet,
}

impl FileFormat {
    pub const NAMES: &'static [&'static str] = &["csv", "jsonl", "parquet"];

    /// The file extension, which is also the format's name.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Jsonl => "jsonl",
            FileFormat::Parquet => "parquet",
        }
    }

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
    Mqtt {
        topic: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        broker: Option<String>,
    },
    Nats {
        subject: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    Kafka {
        topic: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        brokers: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
    },
    Http {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        /// HTTPS with this certificate; plain HTTP without.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls: Option<TlsFiles>,
    },
    File {
        path: String,
        format: FileFormat,
        /// Keep reading as the file grows (`tail`) or read it once.
        tail: bool,
    },
    Generator {
        seed: u64,
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
    pub certificate: String,
    pub private_key: String,
}

/// What an edge buffer does when it is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    DropOldest,
    Reject,
}

/// Store-and-forward policy for a source: events wait here while the uplink is down.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BufferPolicy {
    pub max: ByteSize,
    pub ttl: Duration,
    pub when_full: WhenFull,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub name: String,
    #[serde(flatten)]
    pub kind: SourceKind,
    pub schema: String,
    pub fields: Vec<Field>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<EventRate>,
    /// The rate is per node the source runs on (`50/s per node`), not for the whole application.
    #[serde(default)]
    pub rate_per_node: bool,
    pub event_size: ByteSize,
    /// The event size was estimated from the schema because the file did not give `event_size`.
    #[serde(default)]
    pub event_size_estimated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<BufferPolicy>,
    pub placement: Placement,
    #[serde(default)]
    pub resources: Resources,
}

/// A typed expression over the fields of one record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "expr", rename_all = "snake_case")]
pub enum Expr {
    Literal { value: Value },
    Field { name: String },
    Unary { op: UnaryOp, operand: Box<Expr> },
    Binary { op: BinaryOp, left: Box<Expr>, right: Box<Expr> },
    Call { function: String, args: Vec<Expr> },
    List { items: Vec<Expr> },
}

impl Expr {
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
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnaryOp {
    Not,
    Negate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    And,
    Or,
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
    Tumbling { size: Duration },
    Sliding { size: Duration, slide: Duration },
    Session { gap: Duration },
}

/// A named computed field of a stream's output (`select { avg_speed = avg(speed_kmh) }`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Computed {
    pub name: String,
    pub expr: Expr,
    #[serde(flatten)]
    pub data_type: DataType,
}

/// A windowed join with a second stream on equal keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Join {
    pub with: String,
    pub keys: Vec<String>,
    pub within: Duration,
}

impl Join {
    /// The record a join makes: the fields of its own input, then those of the other side except the keys, each
    /// prefixed with the other side's name when its name is already taken (`weather_ts`).
    pub fn widen(&self, own: &[Field], other: &[Field]) -> Vec<Field> {
        let mut fields = own.to_vec();
        for field in other.iter().filter(|field| !self.keys.contains(&field.name)) {
            let mut added = field.clone();
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
    After(Duration),
    Never,
}

/// Continuous processing: filter, join, window, projection and enrichment, in that order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    pub name: String,
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Expr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<Join>,
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select: Vec<Computed>,
    /// Inference services this stream calls for each record (`predict(service)` in `select`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<String>,
    /// The inferred output schema.
    pub fields: Vec<Field>,
    pub placement: Placement,
    #[serde(default)]
    pub resources: Resources,
}

/// Where results leave the application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkKind {
    Mqtt {
        /// May contain `{field}` placeholders filled from each record.
        topic: String,
    },
    Nats {
        subject: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    Kafka {
        topic: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        brokers: Vec<String>,
    },
    /// A webhook: each batch of records is POSTed as a JSON array.
    Http {
        url: String,
        /// Attempts after the first one before the records go to dead letters.
        retries: u32,
    },
    File {
        path: String,
        format: FileFormat,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        partition_by: Vec<String>,
    },
    /// Appends to a declared dataset, whose schema the records must match.
    Dataset { into: String },
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sink {
    pub name: String,
    pub from: String,
    #[serde(flatten)]
    pub kind: SinkKind,
    /// The fields written: those of `from`.
    pub fields: Vec<Field>,
    pub placement: Placement,
    #[serde(default)]
    pub resources: Resources,
}

/// A stored table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub name: String,
    pub schema: String,
    pub fields: Vec<Field>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
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
    Every(Duration),
    Cron(String),
}

/// Scheduled SQL over datasets, writing a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub name: String,
    pub schedule: Schedule,
    pub query: String,
    /// The datasets (or file sinks) the query reads, found in its FROM and JOIN clauses.
    pub reads: Vec<String>,
    pub into: String,
    pub placement: Placement,
    #[serde(default)]
    pub resources: Resources,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Classification,
    Regression,
    Clustering,
    Forecasting,
}

impl Task {
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
    pub name: String,
    pub expr: Expr,
    #[serde(flatten)]
    pub data_type: DataType,
}

/// A data preparation step, applied in order before training and before every prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum PrepareStep {
    Filter {
        condition: Expr,
    },
    Impute {
        strategy: ImputeStrategy,
    },
    Select {
        columns: Vec<String>,
    },
    Drop {
        columns: Vec<String>,
    },
    Standardize,
    MinMaxScale,
    OneHot {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        columns: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImputeStrategy {
    Mean,
    Median,
    MostFrequent,
    Constant(f64),
}

/// The values a hyperparameter may take during the search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "space", rename_all = "snake_case")]
pub enum ParameterSpace {
    Values { values: Vec<Value> },
    Range { min: f64, max: f64, integer: bool },
}

/// One candidate algorithm with its hyperparameter search space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub algorithm: String,
    pub parameters: BTreeMap<String, ParameterSpace>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Accuracy,
    F1,
    RocAuc,
    LogLoss,
    Rmse,
    Mae,
    R2,
    Silhouette,
}

impl Metric {
    pub const NAMES: &'static [&'static str] =
        &["accuracy", "f1", "roc_auc", "log_loss", "rmse", "mae", "r2", "silhouette"];

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
    Kfold { folds: u32, stratified: bool },
    Holdout { fraction: f64 },
    TimeSplit { fraction: f64 },
}

/// How long the search may run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials: Option<u32>,
}

/// When a trained model is trained again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "trigger", rename_all = "snake_case")]
pub enum Retrain {
    Every { interval: Duration },
    Drift { metric: Metric, threshold: f64 },
}

/// How to build a model from data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Training {
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub features: Vec<Feature>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prepare: Vec<PrepareStep>,
    pub candidates: Vec<Candidate>,
    pub evaluation: Evaluation,
    pub metric: Metric,
    pub budget: Budget,
    pub placement: Placement,
    pub parallel: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrain: Option<Retrain>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Where a model comes from: trained by Stratum, or imported as an ONNX file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "origin", rename_all = "snake_case")]
pub enum ModelOrigin {
    Trained(Box<Training>),
    Onnx { path: String },
}

/// A machine-learning model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    pub task: Task,
    /// The fields a caller must provide to get a prediction.
    pub inputs: Vec<Field>,
    /// The type of the prediction.
    pub output: DataType,
    #[serde(flatten)]
    pub origin: ModelOrigin,
}

/// What feeds an inference service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServiceInput {
    Stream { name: String },
    Http { path: String },
}

/// A latency or throughput objective.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// (percentile, at most this latency), for example (99, 20 ms).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency: Vec<LatencyTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<EventRate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyTarget {
    pub percentile: f64,
    pub at_most: Duration,
}

/// Serverless scaling of a service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    pub min: u32,
    pub max: u32,
    pub concurrency: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<Duration>,
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
    pub name: String,
    pub model: String,
    pub input: ServiceInput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<SinkKind>,
    /// The records the service writes: its input's fields (the model's inputs when requests come over HTTP) and
    /// `prediction`.
    #[serde(default)]
    pub fields: Vec<Field>,
    pub slo: Slo,
    pub scale: Scale,
    pub placement: Placement,
    #[serde(default)]
    pub resources: Resources,
}

/// How a tool is started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolRun {
    Command(Vec<String>),
    Image(String),
}

/// Any other program to deploy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub run: ToolRun,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    pub placement: Placement,
    #[serde(default)]
    pub resources: Resources,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chart {
    Line,
    Bar,
    Table,
    Stat,
    Map,
}

impl Chart {
    pub const NAMES: &'static [&'static str] = &["line", "bar", "table", "stat", "map"];

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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Panel {
    pub title: String,
    pub chart: Chart,
    /// The stream, service or dataset shown.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    pub name: String,
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
        P50 = "p50",
        P90 = "p90",
        P95 = "p95",
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
        signal: Signal,
        op: BinaryOp,
        threshold: f64,
    },
    SloMissed,
    NodeLost,
}

/// What a policy does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    ScaleOut,
    Migrate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Tier>,
    },
    ShedLoad {
        fraction: f64,
    },
}

/// What to do when an objective is missed or a machine is overloaded or lost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    /// The components it applies to (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    pub condition: Condition,
    /// How long the condition must hold before acting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sustained: Option<Duration>,
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
