//! The catalogue of diagnostic codes: each code's severity, title and long explanation with a wrong and a right
//! example, printed by `stratum explain CODE`. Codes are stable: never renumber one, only add.

use serde::{Deserialize, Serialize};

/// Declares [`Code`], [`Code::ALL`] and [`Code::as_str`] from one list, so that a code cannot be added to the
/// enum and forgotten in the others.
macro_rules! codes {
    ($($variant:ident = $code:literal,)*) => {
        /// Every kind of problem the front end can report.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $(
                #[doc = concat!("`", $code, "`: `stratum explain ", $code, "` says what it means and how to fix it.")]
                $variant,
            )*
        }

        impl Code {
            /// Every code, in the order of the catalogue.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code's one string form (`E0102`), stable across releases.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }
        }
    };
}

codes! {
    InvalidCharacter = "E0001",
    UnterminatedString = "E0002",
    InvalidEscape = "E0003",
    SyntaxError = "E0004",
    UnclosedDelimiter = "E0005",
    NestingTooDeep = "E0006",
    UnknownItemKind = "E0101",
    UnknownName = "E0102",
    WrongKindOfName = "E0103",
    DuplicateDefinition = "E0104",
    ImportFailed = "E0105",
    ImportCycle = "E0106",
    UnknownAttribute = "E0107",
    MissingAttribute = "E0108",
    DuplicateAttribute = "E0109",
    UnknownComponentKind = "E0110",
    UnknownField = "E0201",
    MismatchedTypes = "E0202",
    UnknownFunction = "E0203",
    AggregateMisuse = "E0204",
    InvalidChoice = "E0205",
    UnknownType = "E0206",
    WrongValue = "E0207",
    WrongUnit = "E0301",
    MissingUnit = "E0302",
    UnknownUnit = "E0303",
    OutOfRange = "E0304",
    PrivacyViolation = "E0401",
    DataflowCycle = "E0402",
    UnsuitableTarget = "E0501",
    UnsuitableMetric = "E0502",
    UnsuitableAlgorithm = "E0503",
    UnknownHyperparameter = "E0504",
    FoldsExceedRows = "E0505",
    ServiceInputMismatch = "E0506",
    CapacityExceeded = "E0601",
    NoFeasibleNode = "E0602",
    LatencyUnreachable = "E0603",
    BandwidthExceeded = "E0604",
    QueryError = "E0701",
    MissingApp = "W0001",
    UnusedSource = "W0002",
    UnusedStream = "W0003",
    DatasetWithoutData = "W0004",
    BufferTooSmall = "W0005",
    ImplausibleQuantity = "W0006",
}

stratum_core::vocabulary! {
    /// How bad a problem is: an error stops the file from running, a warning does not.
    pub enum Severity {
        /// Reported; the file still runs.
        Warning = "warning",
        /// The file does not run until it is fixed.
        Error = "error",
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A code is written and read as its string form (`E0102`), in diagnostics' JSON and the API alike.
impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Code, D::Error> {
        let text = String::deserialize(deserializer)?;
        Code::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown diagnostic code `{text}`")))
    }
}

/// The long-form documentation of one code.
pub struct Explanation {
    /// A short title, as `stratum explain` heads it.
    pub title: &'static str,
    /// What the problem is and how to fix it.
    pub text: &'static str,
    /// A small file that triggers the code.
    pub wrong: &'static str,
    /// The same file, fixed.
    pub right: &'static str,
}

impl Code {
    /// Parses a code as a user types it (`e0102` or `E0102`).
    pub fn parse(text: &str) -> Option<Code> {
        let wanted = text.trim().to_ascii_uppercase();
        Code::ALL.iter().copied().find(|code| code.as_str() == wanted)
    }

    /// Codes reported by the planner (`stratum plan`), which needs a placement, rather than by `stratum check`.
    pub fn is_planner(self) -> bool {
        self.as_str().starts_with("E06")
    }

    /// Codes reported only while running (`stratum run-batch`), when the data is at hand, rather than by `stratum
    /// check`. A query error is both: `check` reports what parsing and the tables' schemas show, a run what
    /// planning shows.
    pub fn is_runtime(self) -> bool {
        self.as_str().starts_with("E07") && self != Code::QueryError
    }

    /// Error or warning: `W` codes are warnings.
    pub fn severity(self) -> Severity {
        if self.as_str().starts_with('W') { Severity::Warning } else { Severity::Error }
    }

    /// Its long-form documentation.
    pub fn explanation(self) -> Explanation {
        let (title, text, wrong, right) = match self {
            Code::InvalidCharacter => (
                "a character the language does not use",
                "Names are made of ASCII letters, digits and `_`; comments start with `#`; strings use double quotes. \
                 A file that is not valid UTF-8 is reported here too, at its first bad byte.",
                "node edge1 { cpu = 4 @ }\n",
                "node edge1 { cpu = 4 }\n",
            ),
            Code::UnterminatedString => (
                "a string is not closed",
                "A `\"…\"` string must end on the line it starts. Text over several lines (SQL, for instance) goes \
                 between triple quotes: `\"\"\"…\"\"\"`.",
                "app demo \"Demo\napp_title = 1\n",
                "app demo \"Demo\"\n",
            ),
            Code::InvalidEscape => (
                "an unknown escape in a string",
                "Inside `\"…\"` a backslash starts an escape: \\n \\t \\r \\\\ \\\" \\0 or \\u{…}. Any other letter after a \
                 backslash is an error; write \\\\ for a literal backslash, or use a triple-quoted string, which takes text as written.",
                "source logs: file { schema = Line  path = \"C:\\data\\logs.csv\" }\nschema Line { text: string }\n",
                "source logs: file { schema = Line  path = \"C:\\\\data\\\\logs.csv\" }\nschema Line { text: string }\n",
            ),
            Code::SyntaxError => (
                "the text does not follow the grammar",
                "Every statement has one of five shapes: `name = value`, `name: type`, `name <= value`, \
                 `keyword header { … }` and a bare call such as `line(counts.vehicles)`. The message names what \
                 the parser expected; the rest of the file is still checked.",
                "node edge1 {\n  cpu = = 4\n}\n",
                "node edge1 {\n  cpu = 4\n}\n",
            ),
            Code::UnclosedDelimiter => (
                "a bracket or brace is never closed",
                "Every `{`, `[` and `(` needs its closing partner. The diagnostic points at the opening one.",
                "node edge1 {\n  cpu = 4\n",
                "node edge1 {\n  cpu = 4\n}\n",
            ),
            Code::NestingTooDeep => (
                "blocks or expressions nest too deeply",
                "The parser accepts up to 128 levels of nesting. Real files need a handful; deeper nesting is almost \
                 always generated by mistake. Split the structure into named items that refer to each other.",
                "x = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
                "x = [1]\n",
            ),
            Code::UnknownItemKind => (
                "an unknown kind of item at the top of the file",
                "The top level of a file holds items: app, import, node, pool, link, schema, source, stream, sink, \
                 dataset, batch, model, service, tool, dashboard, policy.",
                "nod edge1 { tier = edge  cpu = 4  memory = 4 GiB }\n",
                "node edge1 { tier = edge  cpu = 4  memory = 4 GiB }\n",
            ),
            Code::UnknownName => (
                "a name that is not defined",
                "A reference must name an item defined in this file or an imported one. The help line suggests the \
                 nearest defined name.",
                "schema Reading { value: float }\nsource readings: generator { schema = Readin }\n",
                "schema Reading { value: float }\nsource readings: generator { schema = Reading }\n",
            ),
            Code::WrongKindOfName => (
                "a name refers to the wrong kind of item",
                "Each reference expects certain kinds of item: a stream reads from a source or another stream, a \
                 service serves a model, a source uses a schema.",
                "schema Reading { value: float }\nsource readings: generator { schema = readings }\n",
                "schema Reading { value: float }\nsource readings: generator { schema = Reading }\n",
            ),
            Code::DuplicateDefinition => (
                "a name is defined twice",
                "Items share one namespace across the file and its imports, and the fields of a schema must be \
                 distinct. Rename one of the two.",
                "node edge1 { tier = edge  cpu = 4  memory = 4 GiB }\nnode edge1 { tier = edge  cpu = 2  memory = 2 GiB }\n",
                "node edge1 { tier = edge  cpu = 4  memory = 4 GiB }\nnode edge2 { tier = edge  cpu = 2  memory = 2 GiB }\n",
            ),
            Code::ImportFailed => (
                "an imported file cannot be read",
                "`import \"path\"` reads another .stratum file, relative to the importing file. Check the path.",
                "import \"does-not-exist.stratum\"\n",
                "# shared definitions can live in another file and be imported with import \"shared.stratum\"\n",
            ),
            Code::ImportCycle => (
                "files import each other in a cycle",
                "An import cycle (a imports b, b imports a) is reported with the chain. Move the shared definitions \
                 into a third file that both import.",
                "import \"self.stratum\"\n",
                "# a file must not import itself, directly or through others\n",
            ),
            Code::UnknownAttribute => (
                "an attribute this item does not have",
                "Each kind of item accepts a fixed set of attributes, listed in docs/language.md and in the help \
                 line. A misspelt attribute gets a suggestion.",
                "node edge1 { tier = edge  cpus = 4  memory = 4 GiB }\n",
                "node edge1 { tier = edge  cpu = 4  memory = 4 GiB }\n",
            ),
            Code::MissingAttribute => (
                "a required attribute is missing",
                "Some attributes have no sensible default: a node's tier, cpu and memory; a stream's `from`; a \
                 model's training data.",
                "node edge1 { tier = edge  cpu = 4 }\n",
                "node edge1 { tier = edge  cpu = 4  memory = 4 GiB }\n",
            ),
            Code::DuplicateAttribute => (
                "an attribute is set twice",
                "Each attribute may be set once per block; the two places are shown. Remove one.",
                "node edge1 { tier = edge  cpu = 4  cpu = 8  memory = 4 GiB }\n",
                "node edge1 { tier = edge  cpu = 8  memory = 4 GiB }\n",
            ),
            Code::UnknownComponentKind => (
                "an unknown kind of source, sink, model, batch or service",
                "The kind after the colon selects the connector or algorithm family: sources are mqtt, nats, kafka, \
                 http, file or generator; sinks are mqtt, nats, kafka, http, parquet, csv or jsonl; models are \
                 classifier, regressor, clustering, forecaster or onnx; batches are sql; services are inference.",
                "schema Reading { value: float }\nsource readings: mqqt { schema = Reading  topic = \"r\" }\n",
                "schema Reading { value: float }\nsource readings: mqtt { schema = Reading  topic = \"r\" }\n",
            ),
            Code::UnknownField => (
                "a field that the input does not have",
                "Filters, aggregates, keys, features and targets refer to fields of their input's schema. The help \
                 line lists the nearest field; `stratum check FILE --explain-schema NAME` shows a stream's schema.",
                "schema Reading { value: float }\nsource readings: generator { schema = Reading }\nstream high { from = readings  where = valeu > 10 }\n",
                "schema Reading { value: float }\nsource readings: generator { schema = Reading }\nstream high { from = readings  where = value > 10 }\n",
            ),
            Code::MismatchedTypes => (
                "a value of the wrong type",
                "Operators and functions take values of given types: arithmetic on numbers, `and`/`or` on bools, a \
                 filter must be a bool. An int is accepted where a float is expected.",
                "schema Reading { value: float  name: string }\nsource readings: generator { schema = Reading }\nstream high { from = readings  where = name > 10 }\n",
                "schema Reading { value: float  name: string }\nsource readings: generator { schema = Reading }\nstream high { from = readings  where = value > 10 }\n",
            ),
            Code::UnknownFunction => (
                "an unknown function, or the wrong number of arguments",
                "Expressions may call the functions listed in docs/language.md (aggregates such as count, avg and \
                 percentile; scalar functions such as abs, lower, hour_of_day; windows tumbling, sliding, session).",
                "schema Reading { value: float }\nsource readings: generator { schema = Reading }\nstream s { from = readings  window = tumbling(1 min)  select { mean = average(value) } }\n",
                "schema Reading { value: float }\nsource readings: generator { schema = Reading }\nstream s { from = readings  window = tumbling(1 min)  select { mean = avg(value) } }\n",
            ),
            Code::AggregateMisuse => (
                "an aggregate without a window, or a raw field inside a window",
                "Aggregates (count, sum, avg …) need a `window`. In a windowed stream every selected field must be \
                 an aggregate or one of the `by` keys.",
                "schema Reading { value: float }\nsource readings: generator { schema = Reading }\nstream s { from = readings  select { mean = avg(value) } }\n",
                "schema Reading { value: float }\nsource readings: generator { schema = Reading }\nstream s { from = readings  window = tumbling(1 min)  select { mean = avg(value) } }\n",
            ),
            Code::InvalidChoice => (
                "a value that is not one of the allowed words",
                "Some attributes take one word from a fixed list: a tier (edge, fog, cloud), an architecture \
                 (x86_64, aarch64, armv7), a buffer policy (drop_oldest, reject), a file format (csv, jsonl, parquet).",
                "node edge1 { tier = egde  cpu = 4  memory = 4 GiB }\n",
                "node edge1 { tier = edge  cpu = 4  memory = 4 GiB }\n",
            ),
            Code::UnknownType => (
                "an unknown field type",
                "Field types are bool, int, float, string, timestamp, duration, bytes, list<T>, optional<T> and T?.",
                "schema Reading { value: double }\n",
                "schema Reading { value: float }\n",
            ),
            Code::WrongValue => (
                "the wrong kind of value for an attribute",
                "Each attribute takes one kind of value: a number, a string, a name, a list, a block. The message \
                 says which one was expected.",
                "node edge1 { tier = edge  cpu = \"four\"  memory = 4 GiB }\n",
                "node edge1 { tier = edge  cpu = 4  memory = 4 GiB }\n",
            ),
            Code::WrongUnit => (
                "a quantity in a unit of the wrong dimension",
                "Units are checked: a latency is a duration (ms, s, min, h, d), a memory a size (KiB, MiB, GiB), a \
                 bandwidth bits per second (Mbit/s), a rate events per time (50/s).",
                "link edge -> fog { latency = 5 GiB  bandwidth = 100 Mbit/s }\n",
                "link edge -> fog { latency = 5 ms  bandwidth = 100 Mbit/s }\n",
            ),
            Code::MissingUnit => (
                "a quantity without its unit",
                "Sizes, durations, rates, bandwidths and costs must say their unit, so `4` cannot be read as 4 bytes \
                 when 4 GiB was meant.",
                "node edge1 { tier = edge  cpu = 4  memory = 4 }\n",
                "node edge1 { tier = edge  cpu = 4  memory = 4 GiB }\n",
            ),
            Code::UnknownUnit => (
                "a unit the language does not know",
                "Known units: B, KiB, MiB, GiB, TiB, kB, MB, GB, TB; ms, s, min, h, d; /s, /min, /h; bit/s, kbit/s, \
                 Mbit/s, Gbit/s; CUR/h for money (USD/h, EUR/h); % and trials.",
                "node edge1 { tier = edge  cpu = 4  memory = 4 Gib }\n",
                "node edge1 { tier = edge  cpu = 4  memory = 4 GiB }\n",
            ),
            Code::OutOfRange => (
                "a number outside its allowed range",
                "Values are range-checked: counts are positive, min <= max, fractions lie between 0 and 1, folds are \
                 at least 2. The message gives the numbers.",
                "pool workers { tier = cloud  cpu = 8  memory = 32 GiB  min = 5  max = 2 }\n",
                "pool workers { tier = cloud  cpu = 8  memory = 32 GiB  min = 2  max = 5 }\n",
            ),
            Code::PrivacyViolation => (
                "a private field leaves its tier",
                "A field marked `private` may not reach a component on another tier, or a sink on another tier, \
                 unless it is aggregated away (count, sum, avg, percentile …) or pseudonymised with hash() on its \
                 own tier. Data crossing tiers carries only the fields its consumer uses, so drop the field with \
                 `keep`, or aggregate it where it is produced.",
                "schema Car { plate: string private  speed: float }\nsource cars: generator { schema = Car  on = edge }\nstream fast { from = cars  where = speed > 90  on = cloud }\nsink out: jsonl { from = fast  path = \"fast.jsonl\"  on = cloud }\n",
                "schema Car { plate: string private  speed: float }\nsource cars: generator { schema = Car  on = edge }\nstream fast { from = cars  where = speed > 90  keep = [speed]  on = cloud }\nsink out: jsonl { from = fast  path = \"fast.jsonl\"  on = cloud }\n",
            ),
            Code::DataflowCycle => (
                "streams read from each other in a cycle",
                "Data must flow from sources to sinks. A stream that (directly or through others) reads its own \
                 output would never settle.",
                "stream a { from = b }\nstream b { from = a }\n",
                "schema Reading { value: float }\nsource readings: generator { schema = Reading }\nstream a { from = readings }\nstream b { from = a }\n",
            ),
            Code::UnsuitableTarget => (
                "the target does not suit the model's task",
                "A classifier predicts a bool, string or int column; a regressor or forecaster a numeric column; \
                 clustering has no target. Supervised models need a `target`.",
                "schema Row { x: float  label: string }\ndataset rows { schema = Row  path = \"rows.csv\" }\nmodel m: regressor { data = rows  target = label  features = [x]  candidates { linear_regression {} } }\n",
                "schema Row { x: float  label: string }\ndataset rows { schema = Row  path = \"rows.csv\" }\nmodel m: classifier { data = rows  target = label  features = [x]  candidates { logistic_regression {} } }\n",
            ),
            Code::UnsuitableMetric => (
                "the metric or evaluation does not suit the model's task",
                "Classification: accuracy, f1, roc_auc, log_loss. Regression and forecasting: rmse, mae, r2. \
                 Clustering: silhouette. Stratified k-fold keeps class proportions, so it needs a classifier too.",
                "schema Row { x: float  y: float }\ndataset rows { schema = Row  path = \"rows.csv\" }\nmodel m: regressor { data = rows  target = y  features = [x]  candidates { linear_regression {} }  evaluate = kfold(5) by f1 }\n",
                "schema Row { x: float  y: float }\ndataset rows { schema = Row  path = \"rows.csv\" }\nmodel m: regressor { data = rows  target = y  features = [x]  candidates { linear_regression {} }  evaluate = kfold(5) by rmse }\n",
            ),
            Code::UnsuitableAlgorithm => (
                "an unknown algorithm, or one that does not suit the task",
                "Candidates are algorithms the ML engine implements for the model's task; docs/language.md lists them \
                 with their hyperparameters.",
                "schema Row { x: float  y: float }\ndataset rows { schema = Row  path = \"rows.csv\" }\nmodel m: regressor { data = rows  target = y  features = [x]  candidates { logistic_regression {} } }\n",
                "schema Row { x: float  y: float }\ndataset rows { schema = Row  path = \"rows.csv\" }\nmodel m: regressor { data = rows  target = y  features = [x]  candidates { ridge {} } }\n",
            ),
            Code::UnknownHyperparameter => (
                "a hyperparameter the algorithm does not have, or a bad value for it",
                "Each algorithm accepts a fixed set of hyperparameters, each a value, a list of values to search, or \
                 a range `low..high`. Values are range-checked.",
                "schema Row { x: float  y: bool }\ndataset rows { schema = Row  path = \"rows.csv\" }\nmodel m: classifier { data = rows  target = y  features = [x]  candidates { random_forest { tres = [50, 100] } } }\n",
                "schema Row { x: float  y: bool }\ndataset rows { schema = Row  path = \"rows.csv\" }\nmodel m: classifier { data = rows  target = y  features = [x]  candidates { random_forest { trees = [50, 100] } } }\n",
            ),
            Code::FoldsExceedRows => (
                "more folds, or a larger hold-out, than the data has rows",
                "k-fold cross-validation needs at least k rows; a dataset that states `rows` is checked against it.",
                "schema Row { x: float  y: bool }\ndataset rows { schema = Row  path = \"rows.csv\"  rows = 3 }\nmodel m: classifier { data = rows  target = y  features = [x]  candidates { logistic_regression {} }  evaluate = kfold(5) }\n",
                "schema Row { x: float  y: bool }\ndataset rows { schema = Row  path = \"rows.csv\"  rows = 300 }\nmodel m: classifier { data = rows  target = y  features = [x]  candidates { logistic_regression {} }  evaluate = kfold(5) }\n",
            ),
            Code::ServiceInputMismatch => (
                "a service's input does not carry the model's features",
                "A service feeds each record of its input to the model, so the input must have every column the \
                 model's features use, with a compatible type.",
                "schema Row { x: float  y: bool }\ndataset rows { schema = Row  path = \"rows.csv\" }\nmodel m: classifier { data = rows  target = y  features = [x]  candidates { logistic_regression {} } }\nschema Live { z: float }\nsource live: generator { schema = Live }\nservice s: inference { model = m  input = live }\n",
                "schema Row { x: float  y: bool }\ndataset rows { schema = Row  path = \"rows.csv\" }\nmodel m: classifier { data = rows  target = y  features = [x]  candidates { logistic_regression {} } }\nschema Live { x: float }\nsource live: generator { schema = Live }\nservice s: inference { model = m  input = live }\n",
            ),
            Code::CapacityExceeded => (
                "components do not fit the machines",
                "Reported by `stratum plan`. Every component reserves cores, memory, disk (a source's buffer is \
                 reserved on disk) and accelerators on the machine it runs on; the defaults per kind are in \
                 docs/planner.md and `cpu`, `memory` and `disk` override them. The message names what the component \
                 needs, what the best machine has, and what already took the rest. Give the machine more, ask for \
                 less, or allow more machines.",
                "app demo\nnode edge1 { tier = edge  cpu = 2  memory = 1 GiB  disk = 8 GiB }\nschema Reading { value: float }\nsource readings: generator {\n  schema = Reading\n  on = edge1\n  buffer { max = 16 GiB  ttl = 1 h }\n}\nsink out: jsonl { from = readings  path = \"out.jsonl\"  on = edge1 }\n",
                "app demo\nnode edge1 { tier = edge  cpu = 2  memory = 1 GiB  disk = 32 GiB }\nschema Reading { value: float }\nsource readings: generator {\n  schema = Reading\n  on = edge1\n  buffer { max = 16 GiB  ttl = 1 h }\n}\nsink out: jsonl { from = readings  path = \"out.jsonl\"  on = edge1 }\n",
            ),
            Code::NoFeasibleNode => (
                "no machine satisfies a component's constraints",
                "Reported by `stratum plan`. A component's tier, node, pool, labels, architecture and accelerators \
                 together rule out every machine. The message lists each machine with the constraint it fails.",
                "app demo\nnode fog1 { tier = fog  cpu = 8  memory = 16 GiB }\nschema Reading { value: float }\nsource readings: generator { schema = Reading  on = fog }\nsink out: jsonl { from = readings  path = \"out.jsonl\"  gpu = 1 x \"nvidia-t4\" }\n",
                "app demo\nnode fog1 { tier = fog  cpu = 8  memory = 16 GiB  gpu = 1 x \"nvidia-t4\" }\nschema Reading { value: float }\nsource readings: generator { schema = Reading  on = fog }\nsink out: jsonl { from = readings  path = \"out.jsonl\"  gpu = 1 x \"nvidia-t4\" }\n",
            ),
            Code::LatencyUnreachable => (
                "a service cannot meet its latency objective",
                "Reported by `stratum plan`. A service's answer takes the network path from its input plus the \
                 model's time per prediction (estimated from the slowest candidate algorithm until the model is \
                 profiled). When no placement brings that under the objective, the message gives the numbers. Place \
                 the service nearer its input, relax the objective, or pick faster candidates.",
                "app demo\nnode cam { tier = edge  cpu = 2  memory = 2 GiB }\npool cloud { tier = cloud  cpu = 8  memory = 32 GiB  min = 1  max = 2 }\nlink edge -> cloud { latency = 40 ms  bandwidth = 100 Mbit/s }\nschema Row { x: float  y: bool }\ndataset rows { schema = Row  path = \"rows.csv\" }\nmodel m: classifier { data = rows  target = y  features = [x]  candidates { logistic_regression {} } }\nschema Live { x: float }\nsource live: generator { schema = Live  on = cam }\nservice s: inference { model = m  input = live  on = cloud  slo { p99 <= 10 ms } }\n",
                "app demo\nnode cam { tier = edge  cpu = 2  memory = 2 GiB }\npool cloud { tier = cloud  cpu = 8  memory = 32 GiB  min = 1  max = 2 }\nlink edge -> cloud { latency = 40 ms  bandwidth = 100 Mbit/s }\nschema Row { x: float  y: bool }\ndataset rows { schema = Row  path = \"rows.csv\" }\nmodel m: classifier { data = rows  target = y  features = [x]  candidates { logistic_regression {} } }\nschema Live { x: float }\nsource live: generator { schema = Live  on = cam }\nservice s: inference { model = m  input = live  on = edge  slo { p99 <= 10 ms } }\n",
            ),
            Code::BandwidthExceeded => (
                "data exceeds a link's bandwidth",
                "Reported by `stratum plan`. The records crossing a link (rate × event size, per source instance) \
                 must fit its bandwidth. Filter or aggregate on the producing side, send fewer fields, or give \
                 the link more bandwidth.",
                "app demo\nnode cam { tier = edge  cpu = 2  memory = 2 GiB }\nnode server { tier = fog  cpu = 8  memory = 16 GiB }\nlink edge -> fog { latency = 5 ms  bandwidth = 1 Mbit/s }\nschema Frame { camera: string  pixels: bytes }\nsource frames: generator { schema = Frame  rate = 100/s  event_size = 64 KiB  on = edge }\nsink archive: parquet { from = frames  path = \"frames\"  on = fog }\n",
                "app demo\nnode cam { tier = edge  cpu = 2  memory = 2 GiB }\nnode server { tier = fog  cpu = 8  memory = 16 GiB }\nlink edge -> fog { latency = 5 ms  bandwidth = 100 Mbit/s }\nschema Frame { camera: string  pixels: bytes }\nsource frames: generator { schema = Frame  rate = 100/s  event_size = 64 KiB  on = edge }\nsink archive: parquet { from = frames  path = \"frames\"  on = fog }\n",
            ),
            Code::QueryError => (
                "a batch query is wrong",
                "The query does not parse (with the parser and dialect DataFusion uses), names a table that is no \
                 dataset or file sink, or — in a plain `SELECT` over tables — a column their schemas lack: `stratum \
                 check` reports these, pointing into the query in the `.stratum` file. What only planning shows (a \
                 function DataFusion does not know, types that do not fit) is reported by `stratum run-batch` and by \
                 the batch's schedule. Tables are the datasets and file sinks the query names; their columns are \
                 their schemas' fields.",
                "app demo\nschema Row { camera: string  vehicles: int }\ndataset counts { schema = Row  path = \"counts.csv\" }\nschema Total { camera: string  vehicles: int }\ndataset totals { schema = Total  path = \"totals.csv\" }\nbatch daily: sql {\n  every = 1 d\n  into = totals\n  query = \"\"\"SELECT camera, sum(vehicle) AS vehicles FROM counts GROUP BY camera\"\"\"\n}\n",
                "app demo\nschema Row { camera: string  vehicles: int }\ndataset counts { schema = Row  path = \"counts.csv\" }\nschema Total { camera: string  vehicles: int }\ndataset totals { schema = Total  path = \"totals.csv\" }\nbatch daily: sql {\n  every = 1 d\n  into = totals\n  query = \"\"\"SELECT camera, sum(vehicles) AS vehicles FROM counts GROUP BY camera\"\"\"\n}\n",
            ),
            Code::MissingApp => (
                "the file does not name its application",
                "Start the file with `app NAME \"Title\"`; the name labels everything Stratum deploys.",
                "node edge1 { tier = edge  cpu = 4  memory = 4 GiB }\n",
                "app demo \"Demo\"\nnode edge1 { tier = edge  cpu = 4  memory = 4 GiB }\n",
            ),
            Code::UnusedSource => (
                "a source nothing reads",
                "Data that enters but is never used still costs bandwidth and buffers. Read it from a stream, sink \
                 or service, or remove it.",
                "app demo\nschema Reading { value: float }\nsource readings: generator { schema = Reading }\n",
                "app demo\nschema Reading { value: float }\nsource readings: generator { schema = Reading }\nsink out: jsonl { from = readings  path = \"out.jsonl\" }\n",
            ),
            Code::UnusedStream => (
                "a stream nothing reads",
                "A stream whose output goes nowhere computes for nothing. Send it to a sink, a service or a \
                 dashboard, or remove it.",
                "app demo\nschema Reading { value: float }\nsource readings: generator { schema = Reading }\nstream high { from = readings  where = value > 10 }\n",
                "app demo\nschema Reading { value: float }\nsource readings: generator { schema = Reading }\nstream high { from = readings  where = value > 10 }\nsink out: jsonl { from = high  path = \"out.jsonl\" }\n",
            ),
            Code::DatasetWithoutData => (
                "a dataset that nothing fills",
                "A dataset needs a `path` to existing data, or a batch or sink that writes `into` it; otherwise the \
                 models and batches that read it find it empty.",
                "schema Row { x: float }\ndataset rows { schema = Row }\n",
                "schema Row { x: float }\ndataset rows { schema = Row  path = \"rows.csv\" }\n",
            ),
            Code::BufferTooSmall => (
                "an edge buffer cannot hold what arrives during its ttl",
                "A store-and-forward buffer holds events while the uplink is down. At the declared rate and event \
                 size it needs rate × size × ttl bytes to keep everything for its ttl; a smaller `max` means the \
                 oldest events are dropped (or new ones rejected) sooner. The message gives the numbers.",
                "schema Reading { value: float }\nsource readings: generator {\n  schema = Reading  rate = 1000/s  event_size = 1 KiB\n  buffer { max = 1 MiB  ttl = 1 h  when_full = drop_oldest }\n}\n",
                "schema Reading { value: float }\nsource readings: generator {\n  schema = Reading  rate = 1000/s  event_size = 1 KiB\n  buffer { max = 4 GiB  ttl = 1 h  when_full = drop_oldest }\n}\n",
            ),
            Code::ImplausibleQuantity => (
                "more cores, memory or disk than any machine has",
                "A machine or a component with more than 100,000 cores, 1024 TiB of memory or 1048576 TiB of disk \
                 is almost certainly a typing slip — an exponent (`1e300`) or a unit one step too large (`2000 TiB` \
                 for `2000 GiB`). Such values would saturate and be planned as if real, so the checker warns.",
                "app demo \"Demo\"\nnode edge1 { tier = edge  cpu = 4  memory = 2000 TiB }\n",
                "app demo \"Demo\"\nnode edge1 { tier = edge  cpu = 4  memory = 2000 GiB }\n",
            ),
        };
        Explanation { title, text, wrong, right }
    }
}
