//! Model items: trained models (task, data, target, features, preparation, candidate algorithms with their
//! hyperparameter spaces, evaluation, budget, retraining) and imported ONNX models. Training soundness — target
//! and metric suit the task, folds fit the rows — is checked here.

use super::attributes::{Attributes, Shape, Spec};
use super::expressions::Scope;
use super::{Checker, ItemKind, Lowered};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::suggest;
use crate::syntax::ast::{ClauseKeyword, Expr, ExprKind, Section, StatementKind};
use std::collections::BTreeMap;
use stratum_core::ir::*;
use stratum_core::types::{DataType, Field, find_field};
use stratum_core::units::Dimension;

const TRAINED: Spec = &[
    ("data", Shape::Value),
    ("target", Shape::Value),
    ("features", Shape::Value),
    ("prepare", Shape::Value),
    ("candidates", Shape::Block),
    ("evaluate", Shape::Value),
    ("budget", Shape::Value),
    ("train_on", Shape::Value),
    ("parallel", Shape::Value),
    ("retrain", Shape::Value),
    ("seed", Shape::Value),
];
const IMPORTED: Spec =
    &[("path", Shape::Value), ("task", Shape::Value), ("input", Shape::Value), ("output", Shape::Value)];

const MODEL_KINDS: &[&str] = &["classifier", "regressor", "clustering", "forecaster", "onnx"];

/// How a hyperparameter's values are checked.
#[derive(Clone, Copy)]
enum Parameter {
    /// A whole number of at least this.
    Whole(f64),
    /// A number in (low, high] when `open_low`, else [low, high].
    Real {
        low: f64,
        high: f64,
        open_low: bool,
    },
    Choice(&'static [&'static str]),
}

struct Algorithm {
    name: &'static str,
    tasks: &'static [Task],
    parameters: &'static [(&'static str, Parameter)],
}

const POSITIVE: Parameter = Parameter::Real { low: 0.0, high: f64::MAX, open_low: true };
const NON_NEGATIVE: Parameter = Parameter::Real { low: 0.0, high: f64::MAX, open_low: false };
const UNIT_INTERVAL: Parameter = Parameter::Real { low: 0.0, high: 1.0, open_low: true };
const SUPERVISED: &[Task] = &[Task::Classification, Task::Regression, Task::Forecasting];
const REGRESSION: &[Task] = &[Task::Regression, Task::Forecasting];

/// The algorithms the ML engine implements, with their hyperparameters. docs/language.md lists the same table.
const ALGORITHMS: &[Algorithm] = &[
    Algorithm {
        name: "logistic_regression",
        tasks: &[Task::Classification],
        parameters: &[
            ("c", POSITIVE),
            ("penalty", Parameter::Choice(&["l1", "l2", "none"])),
            ("max_iter", Parameter::Whole(1.0)),
        ],
    },
    Algorithm {
        name: "decision_tree",
        tasks: SUPERVISED,
        parameters: &[
            ("max_depth", Parameter::Whole(1.0)),
            ("min_samples_split", Parameter::Whole(2.0)),
            ("criterion", Parameter::Choice(&["gini", "entropy", "squared_error"])),
        ],
    },
    Algorithm {
        name: "random_forest",
        tasks: SUPERVISED,
        parameters: &[
            ("trees", Parameter::Whole(1.0)),
            ("max_depth", Parameter::Whole(1.0)),
            ("min_samples_split", Parameter::Whole(2.0)),
            ("max_features", UNIT_INTERVAL),
        ],
    },
    Algorithm {
        name: "gradient_boosting",
        tasks: SUPERVISED,
        parameters: &[
            ("rounds", Parameter::Whole(1.0)),
            ("learning_rate", UNIT_INTERVAL),
            ("max_depth", Parameter::Whole(1.0)),
            ("subsample", UNIT_INTERVAL),
        ],
    },
    Algorithm {
        name: "knn",
        tasks: &[Task::Classification, Task::Regression],
        parameters: &[("k", Parameter::Whole(1.0)), ("weights", Parameter::Choice(&["uniform", "distance"]))],
    },
    Algorithm {
        name: "naive_bayes",
        tasks: &[Task::Classification],
        parameters: &[("variant", Parameter::Choice(&["gaussian", "multinomial", "bernoulli"]))],
    },
    Algorithm {
        name: "svm",
        tasks: &[Task::Classification],
        parameters: &[("c", POSITIVE), ("kernel", Parameter::Choice(&["linear"]))],
    },
    Algorithm {
        name: "mlp",
        tasks: &[Task::Classification, Task::Regression],
        parameters: &[
            ("hidden", Parameter::Whole(1.0)),
            ("learning_rate", UNIT_INTERVAL),
            ("epochs", Parameter::Whole(1.0)),
        ],
    },
    Algorithm { name: "linear_regression", tasks: REGRESSION, parameters: &[] },
    Algorithm { name: "ridge", tasks: REGRESSION, parameters: &[("alpha", NON_NEGATIVE)] },
    Algorithm { name: "lasso", tasks: REGRESSION, parameters: &[("alpha", NON_NEGATIVE)] },
    Algorithm {
        name: "elastic_net",
        tasks: REGRESSION,
        parameters: &[("alpha", NON_NEGATIVE), ("l1_ratio", Parameter::Real { low: 0.0, high: 1.0, open_low: false })],
    },
    Algorithm {
        name: "kmeans",
        tasks: &[Task::Clustering],
        parameters: &[("k", Parameter::Whole(2.0)), ("max_iter", Parameter::Whole(1.0))],
    },
    Algorithm {
        name: "dbscan",
        tasks: &[Task::Clustering],
        parameters: &[("eps", POSITIVE), ("min_samples", Parameter::Whole(1.0))],
    },
];

/// Every algorithm name with the tasks it serves, for docs and `stratum explain`.
pub(crate) fn algorithm_names() -> impl Iterator<Item = &'static str> {
    ALGORITHMS.iter().map(|algorithm| algorithm.name)
}

fn task_of_kind(kind: &str) -> Option<Task> {
    match kind {
        "classifier" => Some(Task::Classification),
        "regressor" => Some(Task::Regression),
        "clustering" => Some(Task::Clustering),
        "forecaster" => Some(Task::Forecasting),
        _ => None,
    }
}

fn default_metric(task: Task) -> Metric {
    match task {
        Task::Classification => Metric::F1,
        Task::Regression | Task::Forecasting => Metric::Rmse,
        Task::Clustering => Metric::Silhouette,
    }
}

impl<'a> Checker<'a> {
    pub(super) fn lower_model(&mut self, section: &'a Section, name: String) -> Lowered {
        let Some(kind) = self.component_kind(section, MODEL_KINDS, "model", "classifier") else {
            return Lowered::Nothing;
        };
        let model = match task_of_kind(kind) {
            Some(task) => self.trained_model(section, name, task),
            None => self.imported_model(section, name),
        };
        model.map(Lowered::Model).unwrap_or(Lowered::Nothing)
    }

    fn imported_model(&mut self, section: &'a Section, name: String) -> Option<Model> {
        let owner = format!("model `{name}`");
        let attributes = self.attributes(section.statements(), &[IMPORTED], &owner, section.keyword.span);
        let path =
            self.required(&attributes, "path", "path = \"models/detector.onnx\"").and_then(|value| self.string(value));
        let task = self
            .required(&attributes, "task", "task = classification")
            .and_then(|value| {
                self.word(value, &["classification", "regression", "clustering", "forecasting"], "a task")
            })
            .map(|task| match task {
                "classification" => Task::Classification,
                "regression" => Task::Regression,
                "clustering" => Task::Clustering,
                _ => Task::Forecasting,
            });
        let inputs = self.required(&attributes, "input", "input = FeatureSchema").and_then(|value| {
            let (schema, span) = self.name(value, "the name of a schema")?;
            let id = self.resolve(&schema, span, &[ItemKind::Schema], "`input`")?;
            self.lower_item(id);
            match &self.lowered[id] {
                Lowered::Schema(schema) => Some(schema.fields.clone()),
                _ => None,
            }
        });
        let output = self.required(&attributes, "output", "output = string").and_then(|value| {
            let (type_name, _) = self.name(value, "a type such as `string` or `float`")?;
            match DataType::scalar_from_name(&type_name) {
                Some(data_type) => Some(data_type),
                None => {
                    let help = suggest::did_you_mean(&type_name, DataType::SCALAR_NAMES.iter().copied())
                        .unwrap_or_else(|| format!("types are: {}", DataType::SCALAR_NAMES.join(", ")));
                    self.report(
                        Diagnostic::new(Code::UnknownType, value.span, format!("unknown type `{type_name}`"))
                            .label("not a type")
                            .help(help),
                    );
                    None
                }
            }
        });
        Some(Model { name, task: task?, inputs: inputs?, output: output?, origin: ModelOrigin::Onnx { path: path? } })
    }

    fn trained_model(&mut self, section: &'a Section, name: String, task: Task) -> Option<Model> {
        let owner = format!("model `{name}`");
        let attributes = self.attributes(section.statements(), &[TRAINED], &owner, section.keyword.span);
        let data = self.required(&attributes, "data", "data = my_dataset").and_then(|value| {
            let (data, span) = self.name(value, "the name of a dataset")?;
            let id = self.resolve(&data, span, &[ItemKind::Dataset, ItemKind::Sink], "`data`")?;
            // A dataset with problems of its own cannot be checked against; those problems are already reported.
            let output = self.output_of(id, span).filter(|output| output.complete)?;
            let rows = match &self.lowered[id] {
                Lowered::Dataset(dataset) => dataset.rows,
                _ => None,
            };
            Some((data, output.fields, rows))
        });
        let candidates = match attributes.block("candidates") {
            Some(block) => self.candidates(block, task),
            None => {
                self.required(&attributes, "candidates", "candidates { random_forest { trees = [50, 100] } }");
                Vec::new()
            }
        };
        let (evaluation, metric) = self.evaluation(&attributes, task);
        let budget = attributes.value("budget").map(|value| self.budget(value)).unwrap_or_default();
        let mut placement = Placement::default();
        if let Some(on) = attributes.value("train_on") {
            self.read_on(on, &mut placement);
            placement.inferred_tier = placement.tier;
        }
        let parallel =
            attributes.value("parallel").and_then(|value| self.whole(value, 1, "`parallel`")).unwrap_or(1) as u32;
        let retrain = attributes.value("retrain").and_then(|value| self.retrain(value, task));
        let seed = attributes.value("seed").and_then(|value| self.whole(value, 0, "`seed`"));

        let (data, fields, rows) = data?;
        let description = format!("dataset `{data}`");
        let target = self.target(&attributes, task, &fields, &description);
        let (features, inputs) =
            self.features(&attributes, &fields, &description, target.as_ref().map(|(name, _)| name.as_str()));
        let prepare =
            attributes.value("prepare").map(|value| self.prepare(value, &fields, &description)).unwrap_or_default();
        if let (Some(rows), Some(evaluation)) = (rows, &evaluation) {
            self.check_rows(rows, evaluation, &attributes);
        }
        let output = match task {
            Task::Classification => target.as_ref().map(|(_, data_type)| data_type.clone())?,
            Task::Regression | Task::Forecasting => DataType::Float,
            Task::Clustering => DataType::Int,
        };
        if task != Task::Clustering && target.is_none() {
            return None;
        }
        let training = Training {
            data,
            target: target.map(|(name, _)| name),
            features: features?,
            prepare,
            candidates,
            evaluation: evaluation?,
            metric: metric?,
            budget,
            placement,
            parallel,
            retrain,
            seed,
        };
        Some(Model { name, task, inputs, output, origin: ModelOrigin::Trained(Box::new(training)) })
    }

    fn target(
        &mut self,
        attributes: &Attributes<'a>,
        task: Task,
        fields: &[Field],
        description: &str,
    ) -> Option<(String, DataType)> {
        let Some(value) = attributes.value("target") else {
            if task != Task::Clustering {
                self.report(
                    Diagnostic::new(
                        Code::UnsuitableTarget,
                        attributes.owner_span,
                        format!("{} has no `target`", attributes.owner),
                    )
                    .label(format!("a {} model learns to predict a target column", task.name()))
                    .help("add `target = COLUMN`, the column to predict"),
                );
            }
            return None;
        };
        if task == Task::Clustering {
            self.report(
                Diagnostic::new(Code::UnsuitableTarget, value.span, "a clustering model has no target")
                    .label("clustering finds groups without labels")
                    .help("remove `target`, or make the model a classifier"),
            );
            return None;
        }
        let (name, span) = self.name(value, "a column name")?;
        let mut scope = Scope::new(fields, description.to_string());
        let typed = self.typed(value, &mut scope)?;
        let data_type = typed.data_type.without_optional().clone();
        let suits = match task {
            Task::Classification => matches!(data_type, DataType::Bool | DataType::String | DataType::Int),
            _ => data_type.is_numeric(),
        };
        if !suits {
            let (wanted, alternative) = match task {
                Task::Classification => ("a bool, string or int label", "a regressor"),
                _ => ("a number", "a classifier"),
            };
            self.report(
                Diagnostic::new(
                    Code::UnsuitableTarget,
                    span,
                    format!("target `{name}` is {data_type}, but a {} model needs {wanted}", task.name()),
                )
                .label(format!("`{name}` is {data_type}"))
                .help(format!("pick another target column, or make the model {alternative}")),
            );
            return None;
        }
        Some((name, data_type))
    }

    /// Features and the raw input columns they read (the model's inputs at serving time).
    fn features(
        &mut self,
        attributes: &Attributes<'a>,
        fields: &[Field],
        description: &str,
        target: Option<&str>,
    ) -> (Option<Vec<Feature>>, Vec<Field>) {
        let Some(value) = self.required(attributes, "features", "features = [column_a, hour_of_day(ts)]") else {
            return (None, Vec::new());
        };
        let mut scope = Scope::new(fields, description.to_string());
        let mut features = Vec::new();
        let mut failed = false;
        for item in self.items(value) {
            let Some(typed) = self.typed(item, &mut scope) else {
                failed = true;
                continue;
            };
            let name = match &item.kind {
                ExprKind::Name(name) => name.clone(),
                ExprKind::Call { function, arguments } => {
                    let argument_names: Vec<&str> = arguments.iter().filter_map(Expr::as_name).collect();
                    format!("{}_{}", function.text, argument_names.join("_"))
                }
                _ => format!("feature_{}", features.len() + 1),
            };
            if Some(name.as_str()) == target {
                self.report(
                    Diagnostic::new(
                        Code::UnsuitableTarget,
                        item.span,
                        format!("the target `{name}` is also a feature"),
                    )
                    .label("the model would see the answer")
                    .help("remove the target from `features`"),
                );
                failed = true;
                continue;
            }
            let data_type = typed.data_type.without_optional().clone();
            if !matches!(data_type, DataType::Int | DataType::Float | DataType::Bool | DataType::String) {
                self.report(
                    Diagnostic::new(
                        Code::MismatchedTypes,
                        item.span,
                        format!("feature `{name}` is {data_type}; features must be numbers, bools or strings"),
                    )
                    .label(format!("this is {data_type}"))
                    .help(if data_type == DataType::Timestamp {
                        "derive numbers from a timestamp with hour_of_day(ts), day_of_week(ts) or month(ts)".to_string()
                    } else {
                        "derive a number from it first".to_string()
                    }),
                );
                failed = true;
                continue;
            }
            features.push(Feature { name, expr: typed.expr, data_type });
        }
        let inputs: Vec<Field> = scope
            .used
            .iter()
            .filter_map(|name| find_field(fields, name))
            .map(|field| Field { name: field.name.clone(), data_type: field.data_type.clone(), private: field.private })
            .collect();
        (if failed { None } else { Some(features) }, inputs)
    }

    fn prepare(&mut self, value: &Expr, fields: &[Field], description: &str) -> Vec<PrepareStep> {
        let mut steps = Vec::new();
        for item in self.items(value) {
            let (step, arguments): (&str, &[Expr]) = match &item.kind {
                ExprKind::Name(name) => (name.as_str(), &[]),
                ExprKind::Call { function, arguments } => (function.text.as_str(), arguments.as_slice()),
                _ => {
                    self.wrong_value(item, "a preparation step such as `standardize` or `impute(median)`");
                    continue;
                }
            };
            let names = ["impute", "standardize", "min_max_scale", "one_hot", "filter", "select", "drop"];
            let parsed = match (step, arguments) {
                ("standardize", []) => Some(PrepareStep::Standardize),
                ("min_max_scale", []) => Some(PrepareStep::MinMaxScale),
                ("one_hot", []) => Some(PrepareStep::OneHot { columns: Vec::new() }),
                ("one_hot", [columns]) => {
                    Some(PrepareStep::OneHot { columns: self.column_names(columns, fields, description) })
                }
                ("select", [columns]) => {
                    Some(PrepareStep::Select { columns: self.column_names(columns, fields, description) })
                }
                ("drop", [columns]) => {
                    Some(PrepareStep::Drop { columns: self.column_names(columns, fields, description) })
                }
                ("impute", [strategy]) => match &strategy.kind {
                    ExprKind::Number { value, .. } => {
                        Some(PrepareStep::Impute { strategy: ImputeStrategy::Constant(*value) })
                    }
                    _ => self.word(strategy, &["mean", "median", "most_frequent"], "an imputation strategy").map(
                        |word| PrepareStep::Impute {
                            strategy: match word {
                                "mean" => ImputeStrategy::Mean,
                                "median" => ImputeStrategy::Median,
                                _ => ImputeStrategy::MostFrequent,
                            },
                        },
                    ),
                },
                ("filter", [condition]) => {
                    let mut scope = Scope::new(fields, description.to_string());
                    self.condition(condition, &mut scope).map(|typed| PrepareStep::Filter { condition: typed.expr })
                }
                (known, _) if names.contains(&known) => {
                    self.report(
                        Diagnostic::new(Code::UnknownFunction, item.span, format!("wrong arguments for preparation step `{known}`"))
                            .label("unexpected arguments")
                            .help("steps: impute(mean|median|most_frequent|NUMBER), standardize, min_max_scale, one_hot, one_hot([cols]), filter(condition), select([cols]), drop([cols])"),
                    );
                    None
                }
                (unknown, _) => {
                    let help = suggest::did_you_mean(unknown, names)
                        .unwrap_or_else(|| format!("steps are: {}", names.join(", ")));
                    self.report(
                        Diagnostic::new(
                            Code::UnknownFunction,
                            item.span,
                            format!("unknown preparation step `{unknown}`"),
                        )
                        .label("not a preparation step")
                        .help(help),
                    );
                    None
                }
            };
            steps.extend(parsed);
        }
        steps
    }

    fn column_names(&mut self, expr: &Expr, fields: &[Field], description: &str) -> Vec<String> {
        let mut names = Vec::new();
        for item in self.items(expr) {
            let mut scope = Scope::new(fields, description.to_string());
            if let Some(name) = item.as_name()
                && self.typed(item, &mut scope).is_some()
            {
                names.push(name.to_string());
            } else if item.as_name().is_none() {
                self.wrong_value(item, "a column name");
            }
        }
        names
    }

    fn candidates(&mut self, block: &'a Section, task: Task) -> Vec<Candidate> {
        let mut candidates = Vec::new();
        for statement in block.statements() {
            let StatementKind::Section(candidate) = &statement.kind else {
                self.report(
                    Diagnostic::new(Code::SyntaxError, statement.span, "each candidate is an algorithm with a block")
                        .label("expected `algorithm { … }`")
                        .help("write `random_forest { trees = [50, 100] }`, or `ridge {}` for the defaults"),
                );
                continue;
            };
            let algorithm_name = &candidate.keyword;
            let Some(algorithm) = ALGORITHMS.iter().find(|algorithm| algorithm.name == algorithm_name.text) else {
                let suited: Vec<&str> = ALGORITHMS
                    .iter()
                    .filter(|algorithm| algorithm.tasks.contains(&task))
                    .map(|algorithm| algorithm.name)
                    .collect();
                let help = suggest::did_you_mean(&algorithm_name.text, algorithm_names())
                    .unwrap_or_else(|| format!("{} algorithms: {}", task.name(), suited.join(", ")));
                self.report(
                    Diagnostic::new(
                        Code::UnsuitableAlgorithm,
                        algorithm_name.span,
                        format!("unknown algorithm `{}`", algorithm_name.text),
                    )
                    .label("not an algorithm Stratum implements")
                    .help(help),
                );
                continue;
            };
            if !algorithm.tasks.contains(&task) {
                let suited: Vec<&str> = ALGORITHMS
                    .iter()
                    .filter(|algorithm| algorithm.tasks.contains(&task))
                    .map(|algorithm| algorithm.name)
                    .collect();
                self.report(
                    Diagnostic::new(
                        Code::UnsuitableAlgorithm,
                        algorithm_name.span,
                        format!("`{}` does not do {}", algorithm.name, task.name()),
                    )
                    .label(format!("not a {} algorithm", task.name()))
                    .help(format!("{} algorithms: {}", task.name(), suited.join(", "))),
                );
                continue;
            }
            if !candidate.header.is_empty() || candidate.body.is_none() {
                self.report(
                    Diagnostic::new(
                        Code::SyntaxError,
                        algorithm_name.span,
                        format!("`{}` needs a block of hyperparameters", algorithm.name),
                    )
                    .label("expected `{ … }`")
                    .help(format!("write `{} {{}}` for the defaults", algorithm.name)),
                );
                continue;
            }
            let mut parameters = BTreeMap::new();
            for parameter_statement in candidate.statements() {
                let StatementKind::Attribute { name, value } = &parameter_statement.kind else {
                    self.report(
                        Diagnostic::new(
                            Code::SyntaxError,
                            parameter_statement.span,
                            "hyperparameters are written `name = values`",
                        )
                        .label("expected `name = values`"),
                    );
                    continue;
                };
                let Some((_, kind)) = algorithm.parameters.iter().find(|(known, _)| *known == name.text) else {
                    let known: Vec<&str> = algorithm.parameters.iter().map(|(known, _)| *known).collect();
                    let help = suggest::did_you_mean(&name.text, known.iter().copied()).unwrap_or_else(|| {
                        if known.is_empty() {
                            format!("`{}` has no hyperparameters", algorithm.name)
                        } else {
                            format!("`{}` takes: {}", algorithm.name, known.join(", "))
                        }
                    });
                    self.report(
                        Diagnostic::new(
                            Code::UnknownHyperparameter,
                            name.span,
                            format!("`{}` has no hyperparameter `{}`", algorithm.name, name.text),
                        )
                        .label("unknown hyperparameter")
                        .help(help),
                    );
                    continue;
                };
                if parameters.contains_key(&name.text) {
                    self.report(
                        Diagnostic::new(
                            Code::DuplicateAttribute,
                            name.span,
                            format!("hyperparameter `{}` is set twice", name.text),
                        )
                        .label("set again here")
                        .help("remove one of them"),
                    );
                    continue;
                }
                if let Some(space) = self.parameter_space(value, *kind, &name.text) {
                    parameters.insert(name.text.clone(), space);
                }
            }
            candidates.push(Candidate { algorithm: algorithm.name.to_string(), parameters });
        }
        if candidates.is_empty() && block.statements().is_empty() {
            self.report(
                Diagnostic::new(Code::MissingAttribute, block.keyword.span, "no candidate algorithms")
                    .label("empty")
                    .help("list at least one algorithm, such as `random_forest { trees = [50, 100] }`"),
            );
        }
        candidates
    }

    fn parameter_space(&mut self, value: &Expr, kind: Parameter, name: &str) -> Option<ParameterSpace> {
        if let ExprKind::Range { start, end } = &value.kind {
            if let Parameter::Choice(_) = kind {
                self.wrong_value(value, "one of the named choices, or a list of them");
                return None;
            }
            let low = self.parameter_number(start, kind, name)?;
            let high = self.parameter_number(end, kind, name)?;
            if low >= high {
                self.report(
                    Diagnostic::new(
                        Code::OutOfRange,
                        value.span,
                        format!("the range of `{name}` is empty: {low} is not below {high}"),
                    )
                    .label("empty range")
                    .help("write `low..high` with low < high"),
                );
                return None;
            }
            return Some(ParameterSpace::Range { min: low, max: high, integer: matches!(kind, Parameter::Whole(_)) });
        }
        let mut values = Vec::new();
        for item in self.items(value) {
            let parsed = match kind {
                Parameter::Choice(choices) => self
                    .word(item, choices, &format!("a value of `{name}`"))
                    .map(|word| Value::String(word.to_string())),
                Parameter::Whole(_) => self.parameter_number(item, kind, name).map(|number| Value::Int(number as i64)),
                Parameter::Real { .. } => self.parameter_number(item, kind, name).map(Value::Float),
            };
            values.push(parsed?);
        }
        if values.is_empty() {
            self.wrong_value(value, "at least one value");
            return None;
        }
        Some(ParameterSpace::Values { values })
    }

    fn parameter_number(&mut self, expr: &Expr, kind: Parameter, name: &str) -> Option<f64> {
        let value = self.number(expr)?;
        let problem = match kind {
            Parameter::Whole(min) if value.fract() != 0.0 || value < min => {
                Some(format!("a whole number of at least {min}"))
            }
            Parameter::Real { low, high, open_low }
                if (open_low && value <= low) || (!open_low && value < low) || value > high =>
            {
                let low_bound = if open_low { format!("above {low}") } else { format!("at least {low}") };
                Some(if high == f64::MAX { low_bound } else { format!("{low_bound} and at most {high}") })
            }
            _ => None,
        };
        if let Some(problem) = problem {
            self.report(
                Diagnostic::new(
                    Code::UnknownHyperparameter,
                    expr.span,
                    format!("`{name}` must be {problem}, found {value}"),
                )
                .label("out of range")
                .help(format!("use a value {problem}")),
            );
            return None;
        }
        Some(value)
    }

    /// `evaluate = kfold(5, stratified) by f1`, `holdout(0.2) by rmse`, `time_split(0.2)`.
    fn evaluation(&mut self, attributes: &Attributes<'a>, task: Task) -> (Option<Evaluation>, Option<Metric>) {
        let Some(value) = attributes.value("evaluate") else {
            return (
                Some(Evaluation::Kfold { folds: 5, stratified: task == Task::Classification }),
                Some(default_metric(task)),
            );
        };
        let (base, clauses) = value.split_clauses();
        let mut metric = Some(default_metric(task));
        for (keyword, keyword_span, argument) in clauses {
            if keyword != ClauseKeyword::By {
                self.unexpected_clause(keyword, keyword_span, "an evaluation", "write `evaluate = kfold(5) by f1`");
                continue;
            }
            metric = self.word(argument, Metric::NAMES, "a metric").and_then(Metric::from_name);
            if let Some(chosen) = metric
                && !chosen.suits(task)
            {
                let suited: Vec<&str> = Metric::NAMES
                    .iter()
                    .copied()
                    .filter(|name| Metric::from_name(name).is_some_and(|metric| metric.suits(task)))
                    .collect();
                self.report(
                    Diagnostic::new(
                        Code::UnsuitableMetric,
                        argument.span,
                        format!("metric `{}` does not judge {}", argument.as_name().unwrap_or("?"), task.name()),
                    )
                    .label(format!("not a {} metric", task.name()))
                    .help(format!("{} metrics: {}", task.name(), suited.join(", "))),
                );
                metric = None;
            }
        }
        let ExprKind::Call { function, arguments } = &base.kind else {
            self.wrong_value(
                base,
                "an evaluation: kfold(K), kfold(K, stratified), holdout(FRACTION) or time_split(FRACTION)",
            );
            return (None, metric);
        };
        let evaluation = match (function.text.as_str(), arguments.as_slice()) {
            ("kfold", [folds]) | ("kfold", [folds, _]) => {
                let folds_value = self.number(folds);
                let stratified = match arguments.get(1) {
                    Some(flag) => self.word(flag, &["stratified"], "`stratified`").is_some(),
                    None => false,
                };
                if stratified && task != Task::Classification {
                    self.report(
                        Diagnostic::new(
                            Code::UnsuitableMetric,
                            arguments[1].span,
                            format!("stratified folds need classes, but this is {}", task.name()),
                        )
                        .label("only classifiers have classes to stratify")
                        .help("use `kfold(5)`"),
                    );
                }
                match folds_value {
                    Some(count) if count >= 2.0 && count.fract() == 0.0 => {
                        Some(Evaluation::Kfold { folds: count as u32, stratified })
                    }
                    Some(count) => {
                        self.report(
                            Diagnostic::new(
                                Code::OutOfRange,
                                folds.span,
                                format!("k-fold needs a whole number of at least 2 folds, found {count}"),
                            )
                            .label("too few folds")
                            .help("5 or 10 folds are usual"),
                        );
                        None
                    }
                    None => None,
                }
            }
            ("holdout", [fraction]) => {
                self.fraction(fraction, "the hold-out fraction").map(|fraction| Evaluation::Holdout { fraction })
            }
            ("time_split", [fraction]) => {
                self.fraction(fraction, "the test fraction").map(|fraction| Evaluation::TimeSplit { fraction })
            }
            (other, _) => {
                let help = suggest::did_you_mean(other, ["kfold", "holdout", "time_split"]).unwrap_or_else(|| {
                    "evaluations: kfold(K), kfold(K, stratified), holdout(FRACTION), time_split(FRACTION)".into()
                });
                self.report(
                    Diagnostic::new(
                        Code::UnknownFunction,
                        base.span,
                        format!("unknown evaluation `{other}` or wrong arguments"),
                    )
                    .label("not an evaluation")
                    .help(help),
                );
                None
            }
        };
        (evaluation, metric)
    }

    fn check_rows(&mut self, rows: u64, evaluation: &Evaluation, attributes: &Attributes<'a>) {
        let span = attributes.value("evaluate").map(|value| value.span).unwrap_or(attributes.owner_span);
        let problem = match evaluation {
            Evaluation::Kfold { folds, .. } if u64::from(*folds) > rows => {
                Some(format!("{folds} folds need at least {folds} rows, but the dataset has {rows}"))
            }
            Evaluation::Holdout { fraction } | Evaluation::TimeSplit { fraction } if (rows as f64 * fraction) < 1.0 => {
                Some(format!("holding out {fraction} of {rows} rows leaves no row to test on"))
            }
            _ => None,
        };
        if let Some(problem) = problem {
            self.report(
                Diagnostic::new(Code::FoldsExceedRows, span, problem)
                    .label("more folds than rows")
                    .help("use fewer folds, or more data"),
            );
        }
    }

    /// `10 min`, `50 trials`, or a list of both.
    fn budget(&mut self, value: &Expr) -> Budget {
        let mut budget = Budget::default();
        for item in self.items(value) {
            match &item.kind {
                ExprKind::Quantity { unit, .. } if unit == "trials" || unit == "trial" => {
                    budget.trials = self.quantity(item, Dimension::Trials).map(|trials| trials as u32);
                }
                _ => budget.time = self.duration(item),
            }
        }
        budget
    }

    /// `every(1 d)` or `drift(f1, 0.05)`.
    fn retrain(&mut self, value: &Expr, task: Task) -> Option<Retrain> {
        match &value.kind {
            ExprKind::Call { function, arguments } if function.text == "every" && arguments.len() == 1 => {
                self.duration(&arguments[0]).map(|interval| Retrain::Every { interval })
            }
            ExprKind::Call { function, arguments } if function.text == "drift" && arguments.len() == 2 => {
                let metric = self.word(&arguments[0], Metric::NAMES, "a metric").and_then(Metric::from_name)?;
                if !metric.suits(task) {
                    self.report(
                        Diagnostic::new(
                            Code::UnsuitableMetric,
                            arguments[0].span,
                            format!(
                                "metric `{}` does not judge {}",
                                arguments[0].as_name().unwrap_or("?"),
                                task.name()
                            ),
                        )
                        .label("unsuitable metric")
                        .help("watch a metric of the model's task"),
                    );
                    return None;
                }
                let threshold = self.number(&arguments[1])?;
                Some(Retrain::Drift { metric, threshold })
            }
            _ => {
                self.wrong_value(value, "`every(DURATION)` or `drift(METRIC, THRESHOLD)`");
                None
            }
        }
    }
}
