//! Operational items: inference services (model, input, output, objective, serverless scaling), tools,
//! dashboards and policies.

use super::attributes::{Shape, Spec};
use super::expressions::Scope;
use super::infrastructure::{PLACEMENT, RESOURCES};
use super::{Checker, ItemKind, Lowered};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::suggest;
use crate::syntax::ast::{ClauseKeyword, Expr, ExprKind, Section, StatementKind};
use stratum_core::ir::*;
use stratum_core::types::{DataType, Field, find_field};
use stratum_core::units::{Dimension, EventRate};

const SERVICE: Spec = &[
    ("model", Shape::Value),
    ("input", Shape::Value),
    ("output", Shape::Value),
    ("slo", Shape::Block),
    ("scale", Shape::Block),
];
const SCALE: Spec = &[
    ("min", Shape::Value),
    ("max", Shape::Value),
    ("concurrency", Shape::Value),
    ("idle", Shape::Value),
    ("predictive", Shape::Value),
];
const HTTP_INPUT: Spec = &[("path", Shape::Value)];
const TOOL: Spec =
    &[("image", Shape::Value), ("command", Shape::Value), ("ports", Shape::Value), ("env", Shape::Value)];
const POLICY: Spec = &[("target", Shape::Value), ("when", Shape::Value), ("then", Shape::Value)];

/// The field a service adds to its input records when it writes them to its output.
const PREDICTION_FIELD: &str = "prediction";

impl<'a> Checker<'a> {
    pub(super) fn lower_service(&mut self, section: &'a Section, name: String) -> Lowered {
        self.service(section, name).map(Lowered::Service).unwrap_or(Lowered::Nothing)
    }

    fn service(&mut self, section: &'a Section, name: String) -> Option<Service> {
        let owner = format!("service `{name}`");
        self.component_kind(section, &["inference"], "service", "inference")?;
        let attributes =
            self.attributes(section.statements(), &[SERVICE, PLACEMENT, RESOURCES], &owner, section.keyword.span);
        let model = self.required(&attributes, "model", "model = my_model").and_then(|value| {
            let (model, span) = self.name(value, "the name of a model")?;
            let id = self.resolve(&model, span, &[ItemKind::Model], "`model`")?;
            self.lower_item(id);
            match &self.lowered[id] {
                Lowered::Model(lowered) => Some((model, lowered.inputs.clone(), lowered.output.clone())),
                _ => None,
            }
        });
        let input_expr = self.required(&attributes, "input", "input = my_stream");
        let mut input_fields: Option<Vec<Field>> = None;
        let mut input_tier = None;
        let mut input_complete = true;
        let mut input_span = None;
        let input = match input_expr.map(|value| &value.kind) {
            Some(ExprKind::Object { kind, body }) if kind.text == "http" => {
                let http = self.attributes(&body.statements, &[HTTP_INPUT], "an http input", kind.span);
                self.required(&http, "path", "path = \"/predict\"")
                    .and_then(|value| self.string(value))
                    .map(|path| ServiceInput::Http { path })
            }
            Some(_) => {
                let value = input_expr?;
                self.input(value, &[ItemKind::Source, ItemKind::Stream], "`input`").map(|(stream, output, span)| {
                    input_fields = Some(output.fields);
                    input_tier = output.tier;
                    input_complete = output.complete;
                    input_span = Some(span);
                    ServiceInput::Stream { name: stream }
                })
            }
            None => None,
        };
        let mut placement = self.placement(&attributes, input_tier);
        let resources = self.resources(&attributes);

        if let (Some((model_name, model_inputs, _)), Some(fields), Some(span)) = (&model, &input_fields, input_span) {
            let missing: Vec<String> = model_inputs
                .iter()
                .filter(|wanted| {
                    !find_field(fields, &wanted.name).is_some_and(|field| field.data_type.fits(&wanted.data_type))
                })
                .map(|wanted| format!("`{}: {}`", wanted.name, wanted.data_type))
                .collect();
            if !missing.is_empty() && input_complete {
                let have: Vec<String> =
                    fields.iter().map(|field| format!("{}: {}", field.name, field.data_type)).collect();
                self.report(
                    Diagnostic::new(
                        Code::ServiceInputMismatch,
                        span,
                        format!("model `{model_name}` needs {} which this input does not provide", missing.join(", ")),
                    )
                    .label(format!("has {}", have.join(", ")))
                    .help("compute the missing columns in a stream (`select { name = … }`) and serve from that stream"),
                );
            }
            let used: Vec<String> = model_inputs.iter().map(|input| input.name.clone()).collect();
            super::data::keep_with_private_data(&mut placement, input_tier, fields, &used);
            if let ServiceInput::Stream { name: stream } = input.as_ref()? {
                let stream = stream.clone();
                self.check_privacy_crossing(
                    ItemKind::Service,
                    &name,
                    placement.inferred_tier,
                    &stream,
                    input_tier,
                    fields,
                    &used,
                    span,
                    attributes.value("on").map(|on| on.span),
                );
            }
        }

        let output = match attributes.value("output") {
            Some(value) => match &value.kind {
                // Without the input's fields the output cannot be checked; the input's problem is already reported.
                ExprKind::Object { .. }
                    if input_fields.is_none() && matches!(input, Some(ServiceInput::Stream { .. }) | None) =>
                {
                    None
                }
                ExprKind::Object { kind, body } => {
                    let mut fields = input_fields.clone().unwrap_or_default();
                    if let Some((_, _, prediction)) = &model {
                        fields.push(Field::new(PREDICTION_FIELD, prediction.clone()));
                    }
                    let sink_kinds = super::data::SinkConnector::NAMES;
                    match super::data::SinkConnector::named(&kind.text) {
                        Some(sink_kind) => {
                            let output_attributes = self.attributes(
                                &body.statements,
                                &[sink_kind.spec()],
                                &format!("the output of `{name}`"),
                                kind.span,
                            );
                            let mut record = Scope::new(&fields, format!("the output of `{name}`"));
                            record.complete = input_complete;
                            self.sink_kind(sink_kind, &output_attributes, &record)
                        }
                        None => {
                            let help = suggest::did_you_mean(&kind.text, sink_kinds.iter().copied())
                                .unwrap_or_else(|| format!("outputs are: {}", sink_kinds.join(", ")));
                            self.report(
                                Diagnostic::new(
                                    Code::UnknownComponentKind,
                                    kind.span,
                                    format!("unknown output kind `{}`", kind.text),
                                )
                                .label("not a kind of sink")
                                .help(help),
                            );
                            None
                        }
                    }
                }
                _ => {
                    self.wrong_value(value, "an output such as `mqtt { topic = \"results/{camera}\" }`");
                    None
                }
            },
            None => None,
        };
        let slo = attributes.block("slo").map(|block| self.slo(block)).unwrap_or_default();
        let scale = attributes.block("scale").and_then(|block| self.scale(block)).unwrap_or_default();
        let (model, model_inputs, prediction) = model?;
        // What the service writes: its input's records (the model's inputs for HTTP requests) and the prediction.
        let mut fields = input_fields.unwrap_or(model_inputs);
        fields.push(Field::new(PREDICTION_FIELD, prediction));
        Some(Service { name, model, input: input?, output, fields, slo, scale, placement, resources })
    }

    fn slo(&mut self, block: &'a Section) -> Slo {
        let mut slo = Slo::default();
        for statement in block.statements() {
            let StatementKind::Bound { name, op, op_span, value } = &statement.kind else {
                self.report(
                    Diagnostic::new(
                        Code::SyntaxError,
                        statement.span,
                        "an objective is a bound such as `p99 <= 20 ms`",
                    )
                    .label("expected a bound")
                    .help("write `p99 <= 20 ms` or `throughput >= 100/s`"),
                );
                continue;
            };
            if name.text == "throughput" {
                if !matches!(op, BinaryOp::GreaterOrEqual | BinaryOp::Greater) {
                    self.report(
                        Diagnostic::new(Code::SyntaxError, *op_span, "a throughput objective is a lower bound")
                            .label("expected `>=`")
                            .help("write `throughput >= 100/s`"),
                    );
                    continue;
                }
                slo.throughput = self.quantity(value, Dimension::Rate).map(EventRate);
                continue;
            }
            let Some(percentile) = latency_percentile(&name.text) else {
                let help = suggest::did_you_mean(&name.text, ["p50", "p90", "p95", "p99", "p999", "throughput"])
                    .unwrap_or_else(|| "objectives are pNN (p50, p90, p95, p99, p999) and throughput".into());
                self.report(
                    Diagnostic::new(Code::UnknownAttribute, name.span, format!("unknown objective `{}`", name.text))
                        .label("not an objective")
                        .help(help),
                );
                continue;
            };
            if !matches!(op, BinaryOp::LessOrEqual | BinaryOp::Less) {
                self.report(
                    Diagnostic::new(Code::SyntaxError, *op_span, "a latency objective is an upper bound")
                        .label("expected `<=`")
                        .help(format!("write `{} <= 20 ms`", name.text)),
                );
                continue;
            }
            if let Some(at_most) = self.duration(value) {
                slo.latency.push(LatencyTarget { percentile, at_most });
            }
        }
        slo
    }

    fn scale(&mut self, block: &'a Section) -> Option<Scale> {
        let attributes = self.attributes(block.statements(), &[SCALE], "`scale`", block.keyword.span);
        let defaults = Scale::default();
        let min = attributes
            .value("min")
            .and_then(|value| self.whole(value, 0, "`min`"))
            .map(|value| value as u32)
            .unwrap_or(defaults.min);
        let max_expr = attributes.value("max");
        let max = max_expr
            .and_then(|value| self.whole(value, 1, "`max`"))
            .map(|value| value as u32)
            .unwrap_or(min.max(defaults.max));
        if let Some(max_expr) = max_expr
            && max < min
        {
            self.report(
                Diagnostic::new(Code::OutOfRange, max_expr.span, format!("`max` ({max}) is less than `min` ({min})"))
                    .label("smaller than min")
                    .help(format!("make `max` at least {min}")),
            );
        }
        let concurrency = attributes
            .value("concurrency")
            .and_then(|value| self.whole(value, 1, "`concurrency`"))
            .map(|value| value as u32)
            .unwrap_or(defaults.concurrency);
        let idle = attributes.value("idle").and_then(|value| self.duration(value));
        let predictive = attributes.value("predictive").and_then(|value| self.boolean(value)).unwrap_or(false);
        if min == 0
            && idle.is_none()
            && let Some(min_expr) = attributes.value("min")
        {
            self.report(
                Diagnostic::new(Code::MissingAttribute, min_expr.span, "scaling to zero needs an idle time")
                    .label("`min = 0` scales to zero when idle")
                    .help("add `idle = 5 min`: how long without requests before the last replica stops"),
            );
        }
        Some(Scale { min, max, concurrency, idle, predictive })
    }

    pub(super) fn lower_tool(&mut self, section: &'a Section, name: String) -> Lowered {
        let owner = format!("tool `{name}`");
        let attributes =
            self.attributes(section.statements(), &[TOOL, PLACEMENT, RESOURCES], &owner, section.keyword.span);
        let run = match (attributes.value("image"), attributes.value("command")) {
            (Some(image), None) => self.string(image).map(ToolRun::Image),
            (None, Some(command)) => {
                let words = match &command.kind {
                    ExprKind::String(text) => text.value.split_whitespace().map(str::to_string).collect(),
                    _ => self.strings(command),
                };
                if words.is_empty() {
                    self.wrong_value(
                        command,
                        "a command such as `[\"grafana-server\", \"--config\", \"grafana.ini\"]`",
                    );
                    None
                } else {
                    Some(ToolRun::Command(words))
                }
            }
            (Some(_), Some(command)) => {
                self.report(
                    Diagnostic::new(
                        Code::DuplicateAttribute,
                        command.span,
                        "a tool runs either an `image` or a `command`, not both",
                    )
                    .label("second way to run it")
                    .help("keep one of them"),
                );
                None
            }
            (None, None) => {
                self.report(
                    Diagnostic::new(
                        Code::MissingAttribute,
                        attributes.owner_span,
                        format!("{owner} says neither `image` nor `command`"),
                    )
                    .label("nothing to run")
                    .help("add `image = \"grafana/grafana:11\"` or `command = [\"my-tool\", \"--flag\"]`"),
                );
                None
            }
        };
        let ports = match attributes.value("ports") {
            Some(value) => self
                .items(value)
                .into_iter()
                .filter_map(|port| {
                    let number = self.whole(port, 1, "a port")?;
                    match u16::try_from(number) {
                        Ok(port) => Some(port),
                        Err(_) => {
                            self.report(
                                Diagnostic::new(Code::OutOfRange, port.span, format!("port {number} is above 65535"))
                                    .label("not a TCP port")
                                    .help("use a port from 1 to 65535"),
                            );
                            None
                        }
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        let env = attributes.value("env").map(|value| self.string_map(value)).unwrap_or_default();
        let placement = self.placement(&attributes, None);
        let resources = self.resources(&attributes);
        match run {
            Some(run) => Lowered::Tool(Tool { name, run, ports, env, placement, resources }),
            None => Lowered::Nothing,
        }
    }

    pub(super) fn lower_dashboard(&mut self, section: &'a Section, name: String) -> Lowered {
        let mut panels = Vec::new();
        for statement in section.statements() {
            let StatementKind::Section(panel) = &statement.kind else {
                self.report(
                    Diagnostic::new(Code::UnknownAttribute, statement.span, format!("dashboard `{name}` holds panels"))
                        .label("expected `panel \"Title\" { … }`")
                        .help("write `panel \"Vehicles per minute\" { line(counts.vehicles) by camera }`"),
                );
                continue;
            };
            if panel.keyword.text != "panel" {
                let help = suggest::did_you_mean(&panel.keyword.text, ["panel"])
                    .unwrap_or_else(|| "a dashboard holds `panel \"Title\" { … }` blocks".into());
                self.report(
                    Diagnostic::new(
                        Code::UnknownAttribute,
                        panel.keyword.span,
                        format!("unknown entry `{}` in dashboard `{name}`", panel.keyword.text),
                    )
                    .label("not a panel")
                    .help(help),
                );
                continue;
            }
            panels.extend(self.panel(panel));
        }
        Lowered::Dashboard(Dashboard { name, panels })
    }

    /// `panel "Title" { line(counts.vehicles) by camera over 1 h }`
    fn panel(&mut self, panel: &'a Section) -> Option<Panel> {
        let title = panel.text().map(|text| text.value.clone()).unwrap_or_default();
        let charts: Vec<&Expr> = panel
            .statements()
            .iter()
            .filter_map(|statement| match &statement.kind {
                StatementKind::Expr(expr) => Some(expr),
                _ => None,
            })
            .collect();
        let [chart] = charts.as_slice() else {
            self.report(
                Diagnostic::new(Code::SyntaxError, panel.keyword.span, "a panel shows exactly one chart")
                    .label(format!("found {} charts", charts.len()))
                    .help("write one chart such as `line(counts.vehicles) by camera`; charts are line, bar, table, stat and map"),
            );
            return None;
        };
        let (base, clauses) = chart.split_clauses();
        let ExprKind::Call { function, arguments } = &base.kind else {
            self.wrong_value(base, "a chart such as `line(counts.vehicles)`");
            return None;
        };
        let Some(kind) = Chart::from_name(&function.text) else {
            let help = suggest::did_you_mean(&function.text, Chart::NAMES.iter().copied())
                .unwrap_or_else(|| format!("charts are: {}", Chart::NAMES.join(", ")));
            self.report(
                Diagnostic::new(Code::UnknownFunction, function.span, format!("unknown chart `{}`", function.text))
                    .label("not a chart")
                    .help(help),
            );
            return None;
        };
        let [shown] = arguments.as_slice() else {
            self.report(
                Diagnostic::new(
                    Code::UnknownFunction,
                    base.span,
                    "a chart shows one thing: a component or one of its fields",
                )
                .label("expected one argument")
                .help("write `line(counts.vehicles)` or `table(signal_timing)`"),
            );
            return None;
        };
        let (component, field_name, component_span) = match &shown.kind {
            ExprKind::Name(name) => (name.clone(), None, shown.span),
            ExprKind::Member { base, member } if base.as_name().is_some() => {
                (base.as_name().unwrap_or_default().to_string(), Some(member.clone()), base.span)
            }
            _ => {
                self.wrong_value(shown, "a component or `component.field`");
                return None;
            }
        };
        let id = self.resolve(
            &component,
            component_span,
            &[ItemKind::Source, ItemKind::Stream, ItemKind::Service, ItemKind::Dataset, ItemKind::Sink],
            "a chart",
        )?;
        let fields = self.panel_fields(id, component_span)?;
        let check_field = |checker: &mut Checker<'a>, name: &str, span| {
            if find_field(&fields, name).is_none() {
                let names: Vec<&str> = fields.iter().map(|field| field.name.as_str()).collect();
                let help = suggest::did_you_mean(name, names.iter().copied())
                    .unwrap_or_else(|| format!("`{component}` has: {}", names.join(", ")));
                checker.report(
                    Diagnostic::new(Code::UnknownField, span, format!("`{component}` has no field `{name}`"))
                        .label("unknown field")
                        .help(help),
                );
                return false;
            }
            true
        };
        if let Some(field) = &field_name
            && !check_field(self, &field.text, field.span)
        {
            return None;
        }
        let mut result = Panel {
            title,
            chart: kind,
            source: component.clone(),
            field: field_name.map(|field| field.text),
            group_by: None,
            last: None,
            range: None,
        };
        for (keyword, keyword_span, argument) in clauses {
            match keyword {
                ClauseKeyword::By => {
                    let (key, span) = self.name(argument, "a field name")?;
                    if check_field(self, &key, span) {
                        result.group_by = Some(key);
                    }
                }
                ClauseKeyword::Last => result.last = self.whole(argument, 1, "`last`"),
                ClauseKeyword::Over => result.range = self.duration(argument),
                other => self.unexpected_clause(
                    other,
                    keyword_span,
                    "a chart",
                    "charts take `by FIELD`, `last N` and `over DURATION`",
                ),
            }
        }
        Some(result)
    }

    /// The fields a panel can show of a component; a service shows its input plus its prediction.
    fn panel_fields(&mut self, id: super::ItemId, span: crate::source::Span) -> Option<Vec<Field>> {
        if self.items[id].kind != ItemKind::Service {
            return self.output_of(id, span).filter(|output| output.complete).map(|output| output.fields);
        }
        self.lower_item(id);
        let Lowered::Service(service) = &self.lowered[id] else { return None };
        let (input, model) = (service.input.clone(), service.model.clone());
        let mut fields = match input {
            ServiceInput::Stream { name } => {
                let input = self.item_named(&name).and_then(|input| self.output_of(input, span));
                input.filter(|output| output.complete)?.fields
            }
            ServiceInput::Http { .. } => Vec::new(),
        };
        let prediction = self.item_named(&model).and_then(|model| match &self.lowered[model] {
            Lowered::Model(model) => Some(model.output.clone()),
            _ => None,
        });
        fields.push(Field::new(PREDICTION_FIELD, prediction.unwrap_or(DataType::Float)));
        Some(fields)
    }

    pub(super) fn lower_policy(&mut self, section: &'a Section, name: String) -> Lowered {
        let owner = format!("policy `{name}`");
        let attributes = self.attributes(section.statements(), &[POLICY], &owner, section.keyword.span);
        let mut targets = Vec::new();
        if let Some(value) = attributes.value("target") {
            for item in self.items(value) {
                if let Some((target, span)) = self.name(item, "the name of a component")
                    && self
                        .resolve(
                            &target,
                            span,
                            &[
                                ItemKind::Service,
                                ItemKind::Stream,
                                ItemKind::Source,
                                ItemKind::Sink,
                                ItemKind::Batch,
                                ItemKind::Tool,
                            ],
                            "`target`",
                        )
                        .is_some()
                {
                    targets.push(target);
                }
            }
        }
        let when = self
            .required(&attributes, "when", "when = p99 > 20 ms for 2 min")
            .and_then(|value| self.condition_of_policy(value));
        let action = self.required(&attributes, "then", "then = scale_out").and_then(|value| self.action(value));
        match (when, action) {
            (Some((condition, sustained)), Some(action)) => {
                Lowered::Policy(Policy { name, targets, condition, sustained, action })
            }
            _ => Lowered::Nothing,
        }
    }

    fn condition_of_policy(&mut self, value: &Expr) -> Option<(Condition, Option<stratum_core::units::Duration>)> {
        let (base, clauses) = value.split_clauses();
        let mut sustained = None;
        for (keyword, keyword_span, argument) in clauses {
            if keyword == ClauseKeyword::For {
                sustained = self.duration(argument);
            } else {
                self.unexpected_clause(keyword, keyword_span, "a condition", "write `when = cpu > 85% for 5 min`");
            }
        }
        let condition = match &base.kind {
            ExprKind::Name(word) if word == "slo_missed" => Condition::SloMissed,
            ExprKind::Name(word) if word == "node_lost" => Condition::NodeLost,
            ExprKind::Binary { op, left, right }
                if matches!(
                    op,
                    BinaryOp::Greater | BinaryOp::GreaterOrEqual | BinaryOp::Less | BinaryOp::LessOrEqual
                ) =>
            {
                let signals: Vec<&str> = Signal::ALL.iter().map(|signal| signal.as_str()).collect();
                let signal = Signal::parse(self.word(left, &signals, "a signal")?)?;
                let dimension = signal.dimension();
                let threshold = match dimension {
                    Some(Dimension::Fraction) => self.fraction(right, &format!("the `{signal}` threshold"))?,
                    Some(dimension) => self.quantity(right, dimension)?,
                    None => self.number(right)?,
                };
                Condition::Threshold { signal, op: *op, threshold }
            }
            _ => {
                self.wrong_value(
                    base,
                    "a condition: `slo_missed`, `node_lost`, or a signal compared with a threshold such as `cpu > 85%`",
                );
                return None;
            }
        };
        Some((condition, sustained))
    }

    fn action(&mut self, value: &Expr) -> Option<Action> {
        let (name, arguments): (&str, &[Expr]) = match &value.kind {
            ExprKind::Name(name) => (name, &[]),
            ExprKind::Call { function, arguments } => (&function.text, arguments),
            _ => {
                self.wrong_value(value, "an action: scale_out, migrate, migrate(TIER) or shed_load(FRACTION)");
                return None;
            }
        };
        match (name, arguments) {
            ("scale_out", []) => Some(Action::ScaleOut),
            ("migrate", []) => Some(Action::Migrate { to: None }),
            ("migrate", [tier]) => self.tier(tier).map(|tier| Action::Migrate { to: Some(tier) }),
            ("shed_load", [fraction]) => {
                self.fraction(fraction, "the share of load to shed").map(|fraction| Action::ShedLoad { fraction })
            }
            _ => {
                let help = suggest::did_you_mean(name, ["scale_out", "migrate", "shed_load"])
                    .unwrap_or_else(|| "actions: scale_out, migrate, migrate(TIER), shed_load(FRACTION)".into());
                self.report(
                    Diagnostic::new(
                        Code::InvalidChoice,
                        value.span,
                        format!("unknown action `{name}` or wrong arguments"),
                    )
                    .label("not an action")
                    .help(help),
                );
                None
            }
        }
    }
}

/// `p99` is 99, `p999` is 99.9, `p50` is 50.
fn latency_percentile(name: &str) -> Option<f64> {
    let digits = name.strip_prefix('p')?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let value: f64 = digits.parse().ok()?;
    let percentile = if digits.len() > 2 { value / 10f64.powi(digits.len() as i32 - 2) } else { value };
    (percentile > 0.0 && percentile < 100.0).then_some(percentile)
}
