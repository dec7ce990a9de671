//! Reading an item's block: which attributes it may have (one explicit list per kind), and typed readers for
//! values — quantities with units, numbers in range, words from a fixed set, names, strings, lists and maps.

use super::Checker;
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::suggest;
use crate::syntax::ast::{ClauseKeyword, Expr, ExprKind, Section, Statement, StatementKind};
use std::collections::BTreeMap;
use stratum_core::units::{self, Dimension, Unit};

/// Whether an attribute is written `name = value` or `name { … }`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Value,
    Block,
}

pub(crate) type Spec = &'static [(&'static str, Shape)];

/// The attributes of one block, validated against its spec.
pub(crate) struct Attributes<'a> {
    entries: Vec<(&'a str, &'a Statement)>,
    /// Known attributes that an unknown one was probably meant to be, so their absence is not reported again.
    misspelt: Vec<&'static str>,
    /// The span of what owns the block (its keyword or name), for "missing attribute" reports.
    pub owner_span: Span,
    pub owner: String,
}

impl<'a> Attributes<'a> {
    pub(crate) fn value(&self, name: &str) -> Option<&'a Expr> {
        self.entries.iter().find(|(key, _)| *key == name).and_then(|(_, statement)| match &statement.kind {
            StatementKind::Attribute { value, .. } => Some(value),
            _ => None,
        })
    }

    pub(crate) fn block(&self, name: &str) -> Option<&'a Section> {
        self.entries.iter().find(|(key, _)| *key == name).and_then(|(_, statement)| match &statement.kind {
            StatementKind::Section(section) => Some(section),
            _ => None,
        })
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|(key, _)| *key == name)
    }
}

/// How a value is described in "expected …, found …" messages.
pub(crate) fn describe(expr: &Expr) -> &'static str {
    match &expr.kind {
        ExprKind::Number { .. } => "a number",
        ExprKind::Quantity { .. } => "a quantity with a unit",
        ExprKind::Accelerator { .. } => "an accelerator (`1 x \"kind\"`)",
        ExprKind::String(_) => "a string",
        ExprKind::Bool(_) => "true or false",
        ExprKind::Name(_) => "a name",
        ExprKind::Member { .. } => "a field reference",
        ExprKind::Call { .. } => "a call",
        ExprKind::List(_) => "a list",
        ExprKind::Map(_) => "a map",
        ExprKind::Object { .. } => "a block",
        ExprKind::Unary { .. } | ExprKind::Binary { .. } => "an expression",
        ExprKind::Range { .. } => "a range",
        ExprKind::If { .. } => "a decision (`if … then … else …`)",
        ExprKind::Clause { .. } => "a value with a clause",
        ExprKind::Error => "an invalid value",
    }
}

impl<'a> Checker<'a> {
    /// Validates a block against `spec`: unknown attributes (with a suggestion), repeated ones, and the wrong shape.
    pub(crate) fn attributes(
        &mut self,
        statements: &'a [Statement],
        specs: &[Spec],
        owner: &str,
        owner_span: Span,
    ) -> Attributes<'a> {
        let mut entries: Vec<(&'a str, &'a Statement)> = Vec::new();
        let mut misspelt = Vec::new();
        for statement in statements {
            let (name, name_span, shape) = match &statement.kind {
                StatementKind::Attribute { name, .. } => (name.text.as_str(), name.span, Shape::Value),
                StatementKind::Section(section) => (section.keyword.text.as_str(), section.keyword.span, Shape::Block),
                StatementKind::Field { name, .. } => {
                    self.report(
                        Diagnostic::new(
                            Code::UnknownAttribute,
                            statement.span,
                            format!("a field declaration is not allowed in {owner}"),
                        )
                        .label("`name: type` declares a schema field")
                        .help(format!("to set an attribute write `{} = value`", name.text)),
                    );
                    continue;
                }
                StatementKind::Bound { name, .. } => {
                    self.report(
                        Diagnostic::new(
                            Code::UnknownAttribute,
                            statement.span,
                            format!("a bound is not allowed in {owner}"),
                        )
                        .label("bounds such as `p99 <= 20 ms` belong in an `slo { … }` block")
                        .help(format!("to set an attribute write `{} = value`", name.text)),
                    );
                    continue;
                }
                StatementKind::Expr(_) => {
                    self.report(
                        Diagnostic::new(
                            Code::UnknownAttribute,
                            statement.span,
                            format!("a bare expression is not allowed in {owner}"),
                        )
                        .label("expected `name = value`")
                        .help("bare expressions are only for dashboard panels, such as `line(counts.vehicles)`"),
                    );
                    continue;
                }
            };
            let Some((_, expected_shape)) = specs.iter().flat_map(|spec| spec.iter()).find(|(known, _)| *known == name)
            else {
                let known: Vec<&'static str> =
                    specs.iter().flat_map(|spec| spec.iter()).map(|(known, _)| *known).collect();
                let nearest = suggest::nearest(name, known.iter().copied());
                misspelt.extend(nearest);
                let help = nearest
                    .map(|nearest| format!("did you mean `{nearest}`?"))
                    .unwrap_or_else(|| format!("{owner} takes: {}", known.join(", ")));
                self.report(
                    Diagnostic::new(
                        Code::UnknownAttribute,
                        name_span,
                        format!("unknown attribute `{name}` in {owner}"),
                    )
                    .label("not an attribute here")
                    .help(help),
                );
                continue;
            };
            if *expected_shape != shape {
                let help = match expected_shape {
                    Shape::Value => format!("write `{name} = value`"),
                    Shape::Block => format!("write `{name} {{ … }}`"),
                };
                self.report(
                    Diagnostic::new(
                        Code::WrongValue,
                        name_span,
                        format!("`{name}` is written the wrong way in {owner}"),
                    )
                    .label(match expected_shape {
                        Shape::Value => "expected `=` and a value",
                        Shape::Block => "expected a `{ … }` block",
                    })
                    .help(help),
                );
                continue;
            }
            if let Some((_, first)) = entries.iter().find(|(known, _)| *known == name) {
                let first_span = first.span;
                self.report(
                    Diagnostic::new(Code::DuplicateAttribute, name_span, format!("`{name}` is set twice in {owner}"))
                        .label("set again here")
                        .secondary(first_span, "first set here")
                        .help("remove one of them"),
                );
                continue;
            }
            entries.push((name, statement));
        }
        Attributes { entries, misspelt, owner_span, owner: owner.to_string() }
    }

    /// The value of a required attribute, reporting it when missing.
    pub(crate) fn required(&mut self, attributes: &Attributes<'a>, name: &str, example: &str) -> Option<&'a Expr> {
        let value = attributes.value(name);
        if value.is_none() && !attributes.has(name) && !attributes.misspelt.contains(&name) {
            self.report(
                Diagnostic::new(
                    Code::MissingAttribute,
                    attributes.owner_span,
                    format!("{} has no `{name}`", attributes.owner),
                )
                .label(format!("`{name}` is required"))
                .help(format!("add `{example}`")),
            );
        }
        value
    }

    /// Reports a clause (`by`, `per`, `within` …) that the value it follows does not take.
    pub(crate) fn unexpected_clause(&mut self, keyword: ClauseKeyword, span: Span, what: &str, example: &str) {
        self.report(
            Diagnostic::new(Code::SyntaxError, span, format!("`{}` does not apply to {what}", keyword.word()))
                .label("unexpected clause")
                .help(example.to_string()),
        );
    }

    pub(crate) fn wrong_value(&mut self, expr: &Expr, expected: &str) {
        if matches!(expr.kind, ExprKind::Error) {
            return;
        }
        let found = describe(expr);
        self.report(
            Diagnostic::new(Code::WrongValue, expr.span, format!("expected {expected}, found {found}"))
                .label(format!("expected {expected}")),
        );
    }

    /// A number with a unit of the given dimension, converted to that dimension's base unit.
    pub(crate) fn quantity(&mut self, expr: &Expr, dimension: Dimension) -> Option<f64> {
        self.quantity_with_unit(expr, dimension).map(|(value, _)| value)
    }

    pub(crate) fn quantity_with_unit(&mut self, expr: &Expr, dimension: Dimension) -> Option<(f64, Unit)> {
        match &expr.kind {
            ExprKind::Quantity { value, unit, unit_span, .. } => {
                let unit_text = unit.clone();
                let resolved = match units::parse_unit(unit) {
                    Ok(resolved) => resolved,
                    Err(_) => {
                        let known = units::known_unit_spellings();
                        let help =
                            suggest::did_you_mean(&unit_text, known.iter().map(String::as_str)).unwrap_or_else(|| {
                                format!("{} is written like `{}`", dimension.describe(), dimension.example())
                            });
                        self.report(
                            Diagnostic::new(Code::UnknownUnit, *unit_span, format!("unknown unit `{unit_text}`"))
                                .label("not a unit")
                                .help(help),
                        );
                        return None;
                    }
                };
                if resolved.dimension != dimension {
                    self.report(
                        Diagnostic::new(
                            Code::WrongUnit,
                            expr.span,
                            format!("expected {}, found {}", dimension.describe(), resolved.dimension.describe()),
                        )
                        .label(format!("`{unit_text}` measures the wrong thing"))
                        .help(format!("write it like `{}`", dimension.example())),
                    );
                    return None;
                }
                if *value < 0.0 {
                    self.report(
                        Diagnostic::new(Code::OutOfRange, expr.span, "a quantity cannot be negative")
                            .label("negative")
                            .help(format!("write it like `{}`", dimension.example())),
                    );
                    return None;
                }
                Some((value * resolved.factor, resolved))
            }
            ExprKind::Number { value, text, .. } => {
                let example = dimension.example();
                let unit = example
                    .split_once(' ')
                    .map(|(_, unit)| unit.to_string())
                    .unwrap_or_else(|| example.trim_start_matches(char::is_numeric).to_string());
                let separator = if unit.starts_with(['/', '%']) { "" } else { " " };
                self.report(
                    Diagnostic::new(
                        Code::MissingUnit,
                        expr.span,
                        format!("`{text}` has no unit; expected {}", dimension.describe()),
                    )
                    .label("add a unit")
                    .help(format!("for example `{text}{separator}{unit}`")),
                );
                let _ = value;
                None
            }
            ExprKind::Unary { op: stratum_core::ir::UnaryOp::Negate, .. } => {
                self.report(
                    Diagnostic::new(Code::OutOfRange, expr.span, "a quantity cannot be negative")
                        .label("negative")
                        .help(format!("write it like `{}`", dimension.example())),
                );
                None
            }
            _ => {
                self.wrong_value(expr, dimension.describe());
                None
            }
        }
    }

    /// A plain number (no unit).
    pub(crate) fn number(&mut self, expr: &Expr) -> Option<f64> {
        match &expr.kind {
            ExprKind::Number { value, .. } => Some(*value),
            ExprKind::Unary { op: stratum_core::ir::UnaryOp::Negate, operand } => match &operand.kind {
                ExprKind::Number { value, .. } => Some(-value),
                _ => {
                    self.wrong_value(expr, "a number");
                    None
                }
            },
            ExprKind::Quantity { unit, .. } => {
                let unit = unit.clone();
                self.report(
                    Diagnostic::new(
                        Code::WrongUnit,
                        expr.span,
                        format!("expected a plain number, found a quantity in `{unit}`"),
                    )
                    .label("this takes no unit")
                    .help("remove the unit"),
                );
                None
            }
            _ => {
                self.wrong_value(expr, "a number");
                None
            }
        }
    }

    /// A whole number of at least `min`.
    pub(crate) fn whole(&mut self, expr: &Expr, min: u64, what: &str) -> Option<u64> {
        let value = self.number(expr)?;
        if value.fract() != 0.0 {
            self.report(
                Diagnostic::new(Code::WrongValue, expr.span, format!("{what} must be a whole number, found {value}"))
                    .label("not a whole number")
                    .help(format!("use {}", value.round())),
            );
            return None;
        }
        if value < min as f64 || value > u32::MAX as f64 * 4.0 {
            self.report(
                Diagnostic::new(Code::OutOfRange, expr.span, format!("{what} must be at least {min}, found {value}"))
                    .label("out of range")
                    .help(format!("use a whole number of at least {min}")),
            );
            return None;
        }
        Some(value as u64)
    }

    /// A fraction strictly between 0 and 1, written as a number (`0.2`) or a percentage (`20%`).
    pub(crate) fn fraction(&mut self, expr: &Expr, what: &str) -> Option<f64> {
        let value = match &expr.kind {
            ExprKind::Quantity { .. } => self.quantity(expr, Dimension::Fraction)?,
            _ => self.number(expr)?,
        };
        if value <= 0.0 || value >= 1.0 {
            self.report(
                Diagnostic::new(
                    Code::OutOfRange,
                    expr.span,
                    format!("{what} must lie strictly between 0 and 1, found {value}"),
                )
                .label("out of range")
                .help("write a fraction such as `0.2` or a percentage such as `20%`"),
            );
            return None;
        }
        Some(value)
    }

    pub(crate) fn string(&mut self, expr: &Expr) -> Option<String> {
        match &expr.kind {
            ExprKind::String(literal) => Some(literal.value.clone()),
            _ => {
                self.wrong_value(expr, "a string in double quotes");
                None
            }
        }
    }

    pub(crate) fn boolean(&mut self, expr: &Expr) -> Option<bool> {
        match &expr.kind {
            ExprKind::Bool(value) => Some(*value),
            _ => {
                self.wrong_value(expr, "true or false");
                None
            }
        }
    }

    /// A plain name and its span.
    pub(crate) fn name(&mut self, expr: &Expr, expected: &str) -> Option<(String, Span)> {
        match &expr.kind {
            ExprKind::Name(name) => Some((name.clone(), expr.span)),
            _ => {
                self.wrong_value(expr, expected);
                None
            }
        }
    }

    /// One word out of a fixed set, with a suggestion for a near miss.
    pub(crate) fn word<'c>(&mut self, expr: &Expr, choices: &[&'c str], what: &str) -> Option<&'c str> {
        let ExprKind::Name(name) = &expr.kind else {
            self.wrong_value(expr, &format!("{what} ({})", choices.join(", ")));
            return None;
        };
        if let Some(choice) = choices.iter().find(|choice| **choice == name) {
            return Some(choice);
        }
        let help = suggest::did_you_mean(name, choices.iter().copied())
            .unwrap_or_else(|| format!("choose one of: {}", choices.join(", ")));
        self.report(
            Diagnostic::new(Code::InvalidChoice, expr.span, format!("`{name}` is not {what}"))
                .label(format!("expected one of: {}", choices.join(", ")))
                .help(help),
        );
        None
    }

    /// The items of a list; a single value is taken as a list of one.
    pub(crate) fn items<'e>(&mut self, expr: &'e Expr) -> Vec<&'e Expr> {
        match &expr.kind {
            ExprKind::List(items) => items.iter().collect(),
            _ => vec![expr],
        }
    }

    pub(crate) fn strings(&mut self, expr: &Expr) -> Vec<String> {
        self.items(expr).into_iter().filter_map(|item| self.string(item)).collect()
    }

    /// `{ key: "value", … }` with string values.
    pub(crate) fn string_map(&mut self, expr: &Expr) -> BTreeMap<String, String> {
        let ExprKind::Map(entries) = &expr.kind else {
            self.wrong_value(expr, "a map such as `{ zone: \"north\" }`");
            return BTreeMap::new();
        };
        let mut map = BTreeMap::new();
        for entry in entries {
            let value = match &entry.value.kind {
                ExprKind::String(literal) => literal.value.clone(),
                ExprKind::Name(name) => name.clone(),
                ExprKind::Number { text, .. } => text.clone(),
                _ => {
                    self.wrong_value(&entry.value, "a string");
                    continue;
                }
            };
            if map.insert(entry.key.clone(), value).is_some() {
                self.report(
                    Diagnostic::new(
                        Code::DuplicateAttribute,
                        entry.key_span,
                        format!("key `{}` appears twice", entry.key),
                    )
                    .label("repeated key")
                    .help("remove one of them"),
                );
            }
        }
        map
    }
}
