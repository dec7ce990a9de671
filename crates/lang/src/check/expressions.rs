//! Type checking of expressions over the fields of a record: filters, computed fields, aggregates, features.
//! Each checked expression is lowered to the IR with its type and whether it still carries a private field.

use super::{Checker, ItemKind, Lowered};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::suggest;
use crate::syntax::ast::{Expr, ExprKind};
use stratum_core::ir::{self, AGGREGATE_FUNCTIONS as AGGREGATES, BinaryOp, UnaryOp, Value};
use stratum_core::types::{DataType, Field, find_field};
use stratum_core::units::{self, Dimension};

/// What an expression may see and do.
pub(crate) struct Scope<'s> {
    pub fields: &'s [Field],
    /// Names the record for messages: "the input of stream `counts`".
    pub description: String,
    /// In a windowed `select`: aggregates are allowed, and raw fields only if they are among these keys.
    pub window_keys: Option<&'s [String]>,
    /// `predict(service)` is allowed (a non-windowed stream's `select`).
    pub allow_predict: bool,
    /// Filled with every field the expression reads.
    pub used: Vec<String>,
    /// Filled with every service the expression calls.
    pub calls: Vec<String>,
    /// False when the record's producer had errors: a missing field is then not reported again.
    pub complete: bool,
}

impl<'s> Scope<'s> {
    pub(crate) fn new(fields: &'s [Field], description: String) -> Scope<'s> {
        Scope {
            fields,
            description,
            window_keys: None,
            allow_predict: false,
            used: Vec::new(),
            calls: Vec::new(),
            complete: true,
        }
    }
}

/// A checked expression.
pub(crate) struct Typed {
    pub expr: ir::Expr,
    pub data_type: DataType,
    /// The value still reveals a private field (it was not aggregated away or hashed).
    pub private: bool,
}

/// `min` and `max` of two or more values are scalars (lowered to `least` and `greatest`); of one, aggregates.
const SCALARS: &[&str] = &[
    "min",
    "max",
    "clamp",
    "int",
    "float",
    "abs",
    "round",
    "floor",
    "ceil",
    "sqrt",
    "log",
    "exp",
    "lower",
    "upper",
    "len",
    "concat",
    "hour_of_day",
    "day_of_week",
    "month",
    "year",
    "hash",
    "coalesce",
];

/// Every function an expression may call, for suggestions and docs.
pub(crate) fn function_names() -> impl Iterator<Item = &'static str> {
    AGGREGATES.iter().chain(SCALARS.iter().filter(|name| !AGGREGATES.contains(name))).copied().chain(["predict"])
}

/// The type two values of one expression share (the branches of an `if`, the arguments of `min(a, b)`): ints
/// mixed with floats are floats; either being optional makes it optional.
fn common_type(a: &DataType, b: &DataType) -> Option<DataType> {
    let (plain_a, plain_b) = (a.without_optional(), b.without_optional());
    let plain = if plain_a.is_numeric() && plain_b.is_numeric() && plain_a != plain_b {
        DataType::Float
    } else if plain_a.fits(plain_b) || plain_b.fits(plain_a) {
        plain_a.clone()
    } else {
        return None;
    };
    let optional = matches!(a, DataType::Optional(_)) || matches!(b, DataType::Optional(_));
    Some(if optional { DataType::Optional(Box::new(plain)) } else { plain })
}

fn literal(value: Value, data_type: DataType) -> Typed {
    Typed { expr: ir::Expr::Literal { value }, data_type, private: false }
}

impl<'a> Checker<'a> {
    pub(crate) fn typed(&mut self, expr: &Expr, scope: &mut Scope) -> Option<Typed> {
        self.typed_in(expr, scope, false)
    }

    /// Checks that `expr` is a bool (a filter or a condition).
    pub(crate) fn condition(&mut self, expr: &Expr, scope: &mut Scope) -> Option<Typed> {
        let typed = self.typed(expr, scope)?;
        if typed.data_type.without_optional() != &DataType::Bool {
            self.report(
                Diagnostic::new(
                    Code::MismatchedTypes,
                    expr.span,
                    format!("a condition must be a bool, found {}", typed.data_type),
                )
                .label(format!("this is {}", typed.data_type))
                .help("compare it with something, as in `speed_kmh > 60`"),
            );
            return None;
        }
        Some(typed)
    }

    fn typed_in(&mut self, expr: &Expr, scope: &mut Scope, in_aggregate: bool) -> Option<Typed> {
        match &expr.kind {
            ExprKind::Number { value, integer: true, .. } if value.abs() < 9.0e15 => {
                Some(literal(Value::Int(*value as i64), DataType::Int))
            }
            ExprKind::Number { value, .. } => Some(literal(Value::Float(*value), DataType::Float)),
            ExprKind::String(text) => Some(literal(Value::String(text.value.clone()), DataType::String)),
            ExprKind::Bool(value) => Some(literal(Value::Bool(*value), DataType::Bool)),
            ExprKind::Quantity { value, unit, .. } => match units::parse_unit(unit) {
                Ok(resolved) if resolved.dimension == Dimension::Duration => {
                    Some(literal(Value::Float(value * resolved.factor), DataType::Duration))
                }
                Ok(resolved) if resolved.dimension == Dimension::Fraction => {
                    Some(literal(Value::Float(value * resolved.factor), DataType::Float))
                }
                _ => {
                    self.report(
                        Diagnostic::new(
                            Code::MismatchedTypes,
                            expr.span,
                            format!("a quantity in `{unit}` cannot be used in an expression"),
                        )
                        .label("only durations and percentages can be compared with fields")
                        .help("compare with a plain number in the field's own unit"),
                    );
                    None
                }
            },
            ExprKind::Name(name) => self.field_reference(name, expr, scope, in_aggregate),
            ExprKind::Member { base, member } => {
                let base_name = base.as_name().unwrap_or("…");
                // A join adds the other side's fields under their own names, or prefixed with the other side's
                // name when the name was taken (`weather_ts`): point at the one that is the other side's.
                let prefixed = format!("{base_name}_{}", member.text);
                let help = if find_field(scope.fields, &prefixed).is_some() {
                    format!("a joined field whose name was taken is prefixed: write `{prefixed}`")
                } else if find_field(scope.fields, &member.text).is_some() {
                    format!("write the field name alone: `{}`", member.text)
                } else {
                    let names: Vec<&str> = scope.fields.iter().map(|field| field.name.as_str()).collect();
                    format!("{} has: {}", scope.description, names.join(", "))
                };
                self.report(
                    Diagnostic::new(
                        Code::UnknownField,
                        expr.span,
                        format!("`{base_name}.{}` reaches into another component", member.text),
                    )
                    .label(format!("expressions here see only {}", scope.description))
                    .help(help),
                );
                None
            }
            ExprKind::Unary { op, operand } => {
                let inner = self.typed_in(operand, scope, in_aggregate)?;
                let ok = match op {
                    UnaryOp::Not => inner.data_type.without_optional() == &DataType::Bool,
                    UnaryOp::Negate => {
                        inner.data_type.is_numeric() || inner.data_type.without_optional() == &DataType::Duration
                    }
                };
                if !ok {
                    let (word, wanted) = if *op == UnaryOp::Not { ("not", "a bool") } else { ("-", "a number") };
                    self.report(
                        Diagnostic::new(
                            Code::MismatchedTypes,
                            operand.span,
                            format!("`{word}` needs {wanted}, found {}", inner.data_type),
                        )
                        .label(format!("this is {}", inner.data_type)),
                    );
                    return None;
                }
                Some(Typed {
                    expr: ir::Expr::Unary { op: *op, operand: Box::new(inner.expr) },
                    data_type: inner.data_type.without_optional().clone(),
                    private: inner.private,
                })
            }
            ExprKind::Binary { op, left, right } => self.binary(*op, left, right, expr, scope, in_aggregate),
            ExprKind::List(items) => {
                let mut typed_items = Vec::new();
                let mut item_type: Option<DataType> = None;
                let mut private = false;
                for item in items {
                    let typed = self.typed_in(item, scope, in_aggregate)?;
                    match &item_type {
                        None => item_type = Some(typed.data_type.clone()),
                        Some(DataType::Int) if typed.data_type == DataType::Float => item_type = Some(DataType::Float),
                        Some(existing) if typed.data_type.fits(existing) => {}
                        Some(existing) => {
                            self.report(
                                Diagnostic::new(
                                    Code::MismatchedTypes,
                                    item.span,
                                    format!("a list of {existing} cannot hold {}", typed.data_type),
                                )
                                .label(format!("this is {}", typed.data_type))
                                .help("all items of a list have one type"),
                            );
                            return None;
                        }
                    }
                    private |= typed.private;
                    typed_items.push(typed.expr);
                }
                Some(Typed {
                    expr: ir::Expr::List { items: typed_items },
                    data_type: DataType::List(Box::new(item_type.unwrap_or(DataType::String))),
                    private,
                })
            }
            ExprKind::Call { function, arguments } => {
                self.call(&function.text, function.span, arguments, expr, scope, in_aggregate)
            }
            ExprKind::If { condition, then, otherwise } => {
                let condition_typed = self.typed_in(condition, scope, in_aggregate);
                let then_typed = self.typed_in(then, scope, in_aggregate);
                let otherwise_typed = self.typed_in(otherwise, scope, in_aggregate);
                let (condition_typed, then_typed, otherwise_typed) = (condition_typed?, then_typed?, otherwise_typed?);
                if condition_typed.data_type.without_optional() != &DataType::Bool {
                    self.report(
                        Diagnostic::new(
                            Code::MismatchedTypes,
                            condition.span,
                            format!("the condition of `if` must be a bool, found {}", condition_typed.data_type),
                        )
                        .label(format!("this is {}", condition_typed.data_type))
                        .help("compare it with something, as in `if queue > 10 then …`"),
                    );
                    return None;
                }
                let Some(data_type) = common_type(&then_typed.data_type, &otherwise_typed.data_type) else {
                    self.report(
                        Diagnostic::new(
                            Code::MismatchedTypes,
                            otherwise.span,
                            format!(
                                "the two values of `if` differ in type: {} and {}",
                                then_typed.data_type, otherwise_typed.data_type
                            ),
                        )
                        .label(format!(
                            "this is {}, the `then` value is {}",
                            otherwise_typed.data_type, then_typed.data_type
                        ))
                        .help("give both values one type, as in `if queue > 10 then 20 s else 0 s`"),
                    );
                    return None;
                };
                Some(Typed {
                    private: condition_typed.private || then_typed.private || otherwise_typed.private,
                    expr: ir::Expr::If {
                        condition: Box::new(condition_typed.expr),
                        then: Box::new(then_typed.expr),
                        otherwise: Box::new(otherwise_typed.expr),
                    },
                    data_type,
                })
            }
            ExprKind::Error => None,
            _ => {
                self.report(
                    Diagnostic::new(
                        Code::MismatchedTypes,
                        expr.span,
                        format!("{} cannot be used in an expression", super::attributes::describe(expr)),
                    )
                    .label("not a value over fields")
                    .help("expressions combine fields, numbers, strings and function calls"),
                );
                None
            }
        }
    }

    fn field_reference(&mut self, name: &str, expr: &Expr, scope: &mut Scope, in_aggregate: bool) -> Option<Typed> {
        let Some(field) = find_field(scope.fields, name) else {
            if !scope.complete {
                return None;
            }
            let names: Vec<&str> = scope.fields.iter().map(|field| field.name.as_str()).collect();
            let help = suggest::did_you_mean(name, names.iter().copied())
                .unwrap_or_else(|| format!("{} has: {}", scope.description, names.join(", ")));
            self.report(
                Diagnostic::new(Code::UnknownField, expr.span, format!("unknown field `{name}`"))
                    .label(format!("not a field of {}", scope.description))
                    .help(help),
            );
            return None;
        };
        if let Some(keys) = scope.window_keys
            && !in_aggregate
            && !keys.iter().any(|key| key == name)
        {
            self.report(
                Diagnostic::new(
                    Code::AggregateMisuse,
                    expr.span,
                    format!("`{name}` is used outside an aggregate in a windowed stream"),
                )
                .label("a window emits one record per key, so each field needs one value")
                .help(format!(
                    "aggregate it, as in `avg({name})` or `max({name})`, or add it to the window's `by` keys"
                )),
            );
            return None;
        }
        if !scope.used.iter().any(|used| used == name) {
            scope.used.push(name.to_string());
        }
        Some(Typed {
            expr: ir::Expr::Field { name: name.to_string() },
            data_type: field.data_type.clone(),
            private: field.private,
        })
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        left: &Expr,
        right: &Expr,
        whole: &Expr,
        scope: &mut Scope,
        in_aggregate: bool,
    ) -> Option<Typed> {
        let left_typed = self.typed_in(left, scope, in_aggregate);
        let right_typed = self.typed_in(right, scope, in_aggregate);
        let (left_typed, right_typed) = (left_typed?, right_typed?);
        let (left_type, right_type) =
            (left_typed.data_type.without_optional().clone(), right_typed.data_type.without_optional().clone());
        let symbol = op.symbol();
        let mismatch = |checker: &mut Checker, expected: &str| {
            checker.report(
                Diagnostic::new(
                    Code::MismatchedTypes,
                    whole.span,
                    format!("`{symbol}` needs {expected}, found {left_type} and {right_type}"),
                )
                .label(format!("{left_type} {symbol} {right_type}"))
                .help("check the field types with `stratum check FILE --explain-schema NAME`"),
            );
        };
        let data_type = match op {
            BinaryOp::Add | BinaryOp::Subtract | BinaryOp::Multiply | BinaryOp::Divide => {
                if left_type.is_numeric() && right_type.is_numeric() {
                    if left_type == DataType::Int && right_type == DataType::Int && op != BinaryOp::Divide {
                        DataType::Int
                    } else {
                        DataType::Float
                    }
                } else if (matches!(op, BinaryOp::Add | BinaryOp::Subtract)
                    && left_type == DataType::Duration
                    && right_type == DataType::Duration)
                    || (op == BinaryOp::Subtract
                        && left_type == DataType::Timestamp
                        && right_type == DataType::Timestamp)
                {
                    // Durations add up; the difference of two timestamps is a duration.
                    DataType::Duration
                } else {
                    mismatch(self, "numbers");
                    return None;
                }
            }
            BinaryOp::Equal | BinaryOp::NotEqual => {
                if !(left_type.fits(&right_type) || right_type.fits(&left_type)) {
                    mismatch(self, "two values of the same type");
                    return None;
                }
                DataType::Bool
            }
            BinaryOp::Less | BinaryOp::LessOrEqual | BinaryOp::Greater | BinaryOp::GreaterOrEqual => {
                let comparable = (left_type.is_numeric() && right_type.is_numeric())
                    || (left_type == right_type
                        && matches!(left_type, DataType::String | DataType::Timestamp | DataType::Duration));
                if !comparable {
                    mismatch(self, "two numbers, strings, timestamps or durations");
                    return None;
                }
                DataType::Bool
            }
            BinaryOp::And | BinaryOp::Or => {
                if left_type != DataType::Bool || right_type != DataType::Bool {
                    mismatch(self, "two bools");
                    return None;
                }
                DataType::Bool
            }
            BinaryOp::In => {
                let DataType::List(item) = &right_type else {
                    self.report(
                        Diagnostic::new(
                            Code::MismatchedTypes,
                            right.span,
                            format!("`in` needs a list on its right, found {right_type}"),
                        )
                        .label("not a list")
                        .help("write `class in [\"car\", \"truck\"]`"),
                    );
                    return None;
                };
                if !(left_type.fits(item) || item.fits(&left_type)) {
                    mismatch(self, &format!("a value of the list's item type ({item})"));
                    return None;
                }
                DataType::Bool
            }
        };
        Some(Typed {
            expr: ir::Expr::Binary { op, left: Box::new(left_typed.expr), right: Box::new(right_typed.expr) },
            data_type,
            private: left_typed.private || right_typed.private,
        })
    }

    fn call(
        &mut self,
        name: &str,
        name_span: crate::source::Span,
        arguments: &[Expr],
        whole: &Expr,
        scope: &mut Scope,
        in_aggregate: bool,
    ) -> Option<Typed> {
        if name == "predict" {
            return self.predict(arguments, whole, scope);
        }
        let is_scalar_extreme = matches!(name, "min" | "max") && arguments.len() >= 2;
        let is_aggregate = AGGREGATES.contains(&name) && !is_scalar_extreme;
        if !is_aggregate && !SCALARS.contains(&name) {
            let help = suggest::did_you_mean(name, function_names())
                .unwrap_or_else(|| format!("functions are: {}", function_names().collect::<Vec<_>>().join(", ")));
            self.report(
                Diagnostic::new(Code::UnknownFunction, name_span, format!("unknown function `{name}`"))
                    .label("not a function")
                    .help(help),
            );
            return None;
        }
        if is_aggregate {
            if scope.window_keys.is_none() {
                self.report(
                    Diagnostic::new(Code::AggregateMisuse, whole.span, format!("aggregate `{name}` needs a window"))
                        .label("there is no window to aggregate over")
                        .help("add `window = tumbling(1 min)` to the stream, with `by KEY` to aggregate per key"),
                );
                return None;
            }
            if in_aggregate {
                self.report(
                    Diagnostic::new(
                        Code::AggregateMisuse,
                        whole.span,
                        format!("aggregate `{name}` inside another aggregate"),
                    )
                    .label("aggregates do not nest")
                    .help("compute the inner aggregate in a first stream, then aggregate that stream"),
                );
                return None;
            }
        }
        if is_scalar_extreme {
            return self.extreme(name, arguments, scope, in_aggregate);
        }
        let (minimum, maximum) = match name {
            "count" => (0, 0),
            "percentile" | "coalesce" | "sum_if" | "avg_if" | "min_if" | "max_if" => (2, 2),
            "clamp" => (3, 3),
            "concat" => (1, usize::MAX),
            _ => (1, 1),
        };
        if arguments.len() < minimum || arguments.len() > maximum {
            let expected = if minimum == maximum { format!("{minimum}") } else { format!("at least {minimum}") };
            self.report(
                Diagnostic::new(
                    Code::UnknownFunction,
                    whole.span,
                    format!("`{name}` takes {expected} argument(s), found {}", arguments.len()),
                )
                .label("wrong number of arguments")
                .help(function_usage(name).to_string()),
            );
            return None;
        }
        let mut typed_arguments = Vec::with_capacity(arguments.len());
        for argument in arguments {
            typed_arguments.push(self.typed_in(argument, scope, in_aggregate || is_aggregate)?);
        }
        let first_type = typed_arguments.first().map(|typed| typed.data_type.without_optional().clone());
        let argument_private = typed_arguments.iter().any(|typed| typed.private);
        let wrong = |checker: &mut Checker, wanted: &str| {
            let found = first_type.clone().map(|data_type| data_type.to_string()).unwrap_or_default();
            checker.report(
                Diagnostic::new(
                    Code::MismatchedTypes,
                    arguments[0].span,
                    format!("`{name}` needs {wanted}, found {found}"),
                )
                .label(format!("this is {found}"))
                .help(function_usage(name).to_string()),
            );
        };
        let numeric = first_type.as_ref().is_some_and(DataType::is_numeric);
        if name.ends_with("_if") && name != "count_if" {
            let condition = typed_arguments[1].data_type.without_optional();
            if condition != &DataType::Bool {
                self.report(
                    Diagnostic::new(
                        Code::MismatchedTypes,
                        arguments[1].span,
                        format!("the second argument of `{name}` is a condition, found {condition}"),
                    )
                    .label(format!("this is {condition}"))
                    .help(function_usage(name).to_string()),
                );
                return None;
            }
        }
        let data_type = match name {
            "count" | "distinct" => DataType::Int,
            "count_if" => {
                if first_type != Some(DataType::Bool) {
                    wrong(self, "a condition");
                    return None;
                }
                DataType::Int
            }
            "int" | "float" => {
                if !(numeric || first_type == Some(DataType::Bool)) {
                    wrong(self, "a number or a bool");
                    return None;
                }
                if name == "int" { DataType::Int } else { DataType::Float }
            }
            "clamp" => {
                let mut data_type = first_type.clone().unwrap_or(DataType::Float);
                for (bound, argument) in typed_arguments[1..].iter().zip(&arguments[1..]) {
                    let bound_type = bound.data_type.without_optional();
                    match common_type(&data_type, bound_type) {
                        Some(common) if common.is_numeric() || common == DataType::Duration => data_type = common,
                        _ => {
                            self.report(
                                Diagnostic::new(
                                    Code::MismatchedTypes,
                                    argument.span,
                                    format!("`clamp` bounds a number or a duration by two of its kind, found {} and {bound_type}", first_type.clone().map(|data_type| data_type.to_string()).unwrap_or_default()),
                                )
                                .label(format!("this is {bound_type}"))
                                .help(function_usage(name).to_string()),
                            );
                            return None;
                        }
                    }
                }
                data_type
            }
            "sum" | "sum_if" | "abs" => {
                if !numeric {
                    wrong(self, "a number");
                    return None;
                }
                first_type.clone().unwrap_or(DataType::Float)
            }
            "avg" | "avg_if" | "sqrt" | "log" | "exp" => {
                if !numeric {
                    wrong(self, "a number");
                    return None;
                }
                DataType::Float
            }
            "round" | "floor" | "ceil" => {
                if !numeric {
                    wrong(self, "a number");
                    return None;
                }
                DataType::Int
            }
            "percentile" => {
                if !numeric {
                    wrong(self, "a number");
                    return None;
                }
                let valid_fraction = matches!(&typed_arguments[1].expr, ir::Expr::Literal { value: Value::Float(fraction) } if *fraction > 0.0 && *fraction < 1.0);
                if !valid_fraction {
                    self.report(
                        Diagnostic::new(
                            Code::OutOfRange,
                            arguments[1].span,
                            "the percentile must be a number between 0 and 1",
                        )
                        .label("expected a fraction such as 0.99")
                        .help("write `percentile(latency_ms, 0.99)` for the 99th percentile"),
                    );
                    return None;
                }
                DataType::Float
            }
            "min" | "max" | "min_if" | "max_if" => {
                let orderable =
                    numeric || matches!(first_type, Some(DataType::String | DataType::Timestamp | DataType::Duration));
                if !orderable {
                    wrong(self, "a number, string, timestamp or duration");
                    return None;
                }
                first_type.clone().unwrap_or(DataType::Float)
            }
            "lower" | "upper" => {
                if first_type != Some(DataType::String) {
                    wrong(self, "a string");
                    return None;
                }
                DataType::String
            }
            "len" => {
                if !matches!(first_type, Some(DataType::String | DataType::List(_))) {
                    wrong(self, "a string or a list");
                    return None;
                }
                DataType::Int
            }
            "concat" => DataType::String,
            "hour_of_day" | "day_of_week" | "month" | "year" => {
                if first_type != Some(DataType::Timestamp) {
                    wrong(self, "a timestamp");
                    return None;
                }
                DataType::Int
            }
            "hash" => DataType::String,
            "coalesce" => {
                let second = typed_arguments[1].data_type.clone();
                if !second.fits(first_type.as_ref().unwrap_or(&second)) {
                    wrong(self, &format!("two values of one type (the second is {second})"));
                    return None;
                }
                first_type.clone().unwrap_or(second)
            }
            _ => DataType::Float,
        };
        // Aggregates that summarise many values, and hashing, no longer reveal the private values they read.
        let private = match name {
            "count" | "count_if" | "sum" | "sum_if" | "avg" | "avg_if" | "percentile" | "distinct" | "hash" | "len" => {
                false
            }
            _ => argument_private,
        };
        Some(Typed {
            expr: ir::Expr::Call {
                function: name.to_string(),
                args: typed_arguments.into_iter().map(|typed| typed.expr).collect(),
            },
            data_type,
            private,
        })
    }

    /// `min(a, b, …)` and `max(a, b, …)`: the least or greatest of two or more values of one orderable type,
    /// lowered to `least` and `greatest` so that nothing downstream mistakes them for the aggregates.
    fn extreme(&mut self, name: &str, arguments: &[Expr], scope: &mut Scope, in_aggregate: bool) -> Option<Typed> {
        let mut typed_arguments = Vec::with_capacity(arguments.len());
        for argument in arguments {
            typed_arguments.push(self.typed_in(argument, scope, in_aggregate)?);
        }
        let mut data_type = typed_arguments[0].data_type.without_optional().clone();
        for (typed, argument) in typed_arguments.iter().zip(arguments).skip(1) {
            let this = typed.data_type.without_optional();
            let common = common_type(&data_type, this).filter(|common| {
                common.is_numeric() || matches!(common, DataType::String | DataType::Timestamp | DataType::Duration)
            });
            let Some(common) = common else {
                self.report(
                    Diagnostic::new(
                        Code::MismatchedTypes,
                        argument.span,
                        format!("`{name}` compares values of one type: numbers, strings, timestamps or durations, found {data_type} and {this}"),
                    )
                    .label(format!("this is {this}"))
                    .help(function_usage(name).to_string()),
                );
                return None;
            };
            data_type = common;
        }
        Some(Typed {
            private: typed_arguments.iter().any(|typed| typed.private),
            expr: ir::Expr::Call {
                function: if name == "min" { "least" } else { "greatest" }.to_string(),
                args: typed_arguments.into_iter().map(|typed| typed.expr).collect(),
            },
            data_type,
        })
    }

    /// `predict(service)`: calls an inference service with the current record and yields its prediction.
    fn predict(&mut self, arguments: &[Expr], whole: &Expr, scope: &mut Scope) -> Option<Typed> {
        if !scope.allow_predict {
            self.report(
                Diagnostic::new(
                    Code::AggregateMisuse,
                    whole.span,
                    "`predict` is only allowed in the `select` of a stream without a window",
                )
                .label("not allowed here")
                .help("call the service from a stream that reads this one record by record"),
            );
            return None;
        }
        let [argument] = arguments else {
            self.report(
                Diagnostic::new(Code::UnknownFunction, whole.span, "`predict` takes one argument: a service")
                    .label("wrong number of arguments")
                    .help("write `predict(signal_timing)`"),
            );
            return None;
        };
        let (service_name, span) = self.name(argument, "the name of a service")?;
        let service_id = self.resolve(&service_name, span, &[ItemKind::Service], "`predict`")?;
        let model_name =
            match &self.items[service_id].section.statements().iter().find_map(|statement| match &statement.kind {
                crate::syntax::ast::StatementKind::Attribute { name, value } if name.text == "model" => {
                    value.as_name().map(str::to_string)
                }
                _ => None,
            }) {
                Some(model) => model.clone(),
                None => return None,
            };
        let model_id = self.item_named(&model_name)?;
        if !self.lower_item(model_id) {
            return None;
        }
        let Lowered::Model(model) = &self.lowered[model_id] else { return None };
        let inputs = model.inputs.clone();
        let output = model.output.clone();
        let mut missing = Vec::new();
        for input in &inputs {
            match find_field(scope.fields, &input.name) {
                Some(field) if field.data_type.fits(&input.data_type) => {
                    if !scope.used.contains(&input.name) {
                        scope.used.push(input.name.clone());
                    }
                }
                _ => missing.push(format!("{}: {}", input.name, input.data_type)),
            }
        }
        if !missing.is_empty() && !scope.complete {
            return None;
        }
        if !missing.is_empty() {
            self.report(
                Diagnostic::new(
                    Code::ServiceInputMismatch,
                    whole.span,
                    format!("model `{model_name}` needs fields that {} lacks", scope.description),
                )
                .label(format!("missing {}", missing.join(", ")))
                .help("compute the missing fields in this stream's `select`, or read from a stream that has them"),
            );
            return None;
        }
        scope.calls.push(service_name.clone());
        let private =
            inputs.iter().any(|input| find_field(scope.fields, &input.name).is_some_and(|field| field.private));
        Some(Typed {
            expr: ir::Expr::Call {
                function: "predict".into(),
                args: vec![ir::Expr::Literal { value: Value::String(service_name) }],
            },
            data_type: output,
            private,
        })
    }
}

/// One-line usage of each function, shown in help lines.
pub(crate) fn function_usage(name: &str) -> &'static str {
    match name {
        "count" => "count() counts the records in the window",
        "count_if" => "count_if(condition) counts the records for which the condition holds",
        "sum" => "sum(number)",
        "avg" => "avg(number) is the mean",
        "min" | "max" => {
            "min(value) / max(value) over a window, or min(a, b, …) / max(a, b, …) of numbers, strings, timestamps or durations"
        }
        "sum_if" => "sum_if(number, condition) sums the values of the records for which the condition holds",
        "avg_if" => "avg_if(number, condition) is the mean over the records for which the condition holds",
        "min_if" | "max_if" => {
            "min_if(value, condition) / max_if(value, condition) over the records for which it holds"
        }
        "clamp" => "clamp(value, low, high) bounds a number or duration, as in clamp(extension, 0 s, 30 s)",
        "int" => "int(value) of a bool is 1 or 0; of a number, its integral part",
        "float" => "float(value) of a bool is 1.0 or 0.0; of a number, the number as a float",
        "percentile" => "percentile(number, 0.99) is the 99th percentile",
        "distinct" => "distinct(value) counts distinct values",
        "abs" | "round" | "floor" | "ceil" | "sqrt" | "log" | "exp" => "takes one number",
        "lower" | "upper" => "takes one string",
        "len" => "len(string or list)",
        "concat" => "concat(a, b, …) joins values as text",
        "hour_of_day" | "day_of_week" | "month" | "year" => "takes one timestamp, as in hour_of_day(ts)",
        "hash" => "hash(value) pseudonymises a value (it is no longer private)",
        "coalesce" => "coalesce(value, fallback) is the fallback when the value is missing",
        _ => "see docs/language.md for the functions",
    }
}
