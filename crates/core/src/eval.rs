//! Evaluation of IR expressions over one record: used to filter and compute rows when training models, and by
//! the data plane for streams. Missing values (`Null`) propagate; a filter keeps a row only when it is `true`.

use crate::ir::{BinaryOp, Expr, UnaryOp, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

/// A value at run time. It serializes (externally tagged) for the data plane's checkpoints of window state.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Datum {
    /// Missing: it propagates through operators and functions.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Text(String),
    /// Milliseconds since 1970-01-01T00:00:00Z.
    Timestamp(i64),
    /// Seconds.
    Duration(f64),
}

impl Datum {
    /// The value as a number (booleans as 0 and 1, timestamps in milliseconds), if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Datum::Int(value) => Some(*value as f64),
            Datum::Float(value) | Datum::Duration(value) => Some(*value),
            Datum::Bool(value) => Some(f64::from(u8::from(*value))),
            Datum::Timestamp(value) => Some(*value as f64),
            _ => None,
        }
    }

    /// Whether it is `true` (missing is not).
    pub fn is_true(&self) -> bool {
        matches!(self, Datum::Bool(true))
    }
}

impl From<&Value> for Datum {
    fn from(value: &Value) -> Datum {
        match value {
            Value::Bool(value) => Datum::Bool(*value),
            Value::Int(value) => Datum::Int(*value),
            Value::Float(value) => Datum::Float(*value),
            Value::String(value) => Datum::Text(value.clone()),
        }
    }
}

/// Evaluates `expr`, reading fields through `field`. For many records of one schema, [`Compiled`] is faster: it
/// resolves field names once.
pub fn evaluate(expr: &Expr, field: &dyn Fn(&str) -> Datum) -> Datum {
    match expr {
        Expr::Literal { value } => Datum::from(value),
        Expr::Field { name } => field(name),
        Expr::Unary { op, operand } => unary(*op, &evaluate(operand, field)),
        Expr::Binary { op: BinaryOp::And, left, right } => match evaluate(left, field) {
            Datum::Bool(false) => Datum::Bool(false),
            Datum::Bool(true) => evaluate(right, field),
            _ => Datum::Null,
        },
        Expr::Binary { op: BinaryOp::Or, left, right } => match evaluate(left, field) {
            Datum::Bool(true) => Datum::Bool(true),
            Datum::Bool(false) => evaluate(right, field),
            _ => Datum::Null,
        },
        Expr::Binary { op: BinaryOp::In, left, right } => {
            let needle = evaluate(left, field);
            if needle == Datum::Null {
                return Datum::Null;
            }
            match right.as_ref() {
                Expr::List { items } => Datum::Bool(items.iter().any(|item| equal(&needle, &evaluate(item, field)))),
                _ => Datum::Null,
            }
        }
        Expr::Binary { op, left, right } => binary(*op, &evaluate(left, field), &evaluate(right, field)),
        Expr::Call { function, args } => {
            let values: Vec<Datum> = args.iter().map(|argument| evaluate(argument, field)).collect();
            call(function, &values)
        }
        Expr::List { .. } => Datum::Null,
        Expr::If { condition, then, otherwise } => {
            if evaluate(condition, field).is_true() {
                evaluate(then, field)
            } else {
                evaluate(otherwise, field)
            }
        }
    }
}

/// An expression whose field names are resolved to positions in a record, so that evaluating it over many
/// records of one schema looks nothing up and copies no text it only compares. The semantics are exactly those of
/// [`evaluate`]: both share the operators and functions below.
#[derive(Clone, Debug, PartialEq)]
pub enum Compiled {
    /// A constant.
    Literal(Datum),
    /// The field at this position of the record.
    Field(usize),
    /// An operator on one operand.
    Unary(UnaryOp, Box<Compiled>),
    /// An operator on two operands.
    Binary(BinaryOp, Box<Compiled>, Box<Compiled>),
    /// `x in [a, b]`.
    In(Box<Compiled>, Vec<Compiled>),
    /// A function by name, with its arguments.
    Call(String, Vec<Compiled>),
    /// The condition, the value when it holds, the value when it does not.
    If(Box<[Compiled; 3]>),
}

/// A field an expression reads that the record layout it is compiled against does not have.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("no field `{name}`")]
pub struct UnknownField {
    /// The field.
    pub name: String,
}

impl Compiled {
    /// Compiles `expr`, asking `position` where each field is; returns the first field it does not know.
    pub fn new(expr: &Expr, position: &dyn Fn(&str) -> Option<usize>) -> Result<Compiled, UnknownField> {
        Ok(match expr {
            Expr::Literal { value } => Compiled::Literal(Datum::from(value)),
            Expr::Field { name } => Compiled::Field(position(name).ok_or_else(|| UnknownField { name: name.clone() })?),
            Expr::Unary { op, operand } => Compiled::Unary(*op, Box::new(Compiled::new(operand, position)?)),
            Expr::Binary { op: BinaryOp::In, left, right } => {
                let items = match right.as_ref() {
                    Expr::List { items } => {
                        items.iter().map(|item| Compiled::new(item, position)).collect::<Result<Vec<_>, _>>()?
                    }
                    // The checker only lets lists follow `in`; anything else never matches, as in `evaluate`.
                    _ => return Ok(Compiled::Literal(Datum::Null)),
                };
                Compiled::In(Box::new(Compiled::new(left, position)?), items)
            }
            Expr::Binary { op, left, right } => Compiled::Binary(
                *op,
                Box::new(Compiled::new(left, position)?),
                Box::new(Compiled::new(right, position)?),
            ),
            Expr::Call { function, args } => Compiled::Call(
                function.clone(),
                args.iter().map(|argument| Compiled::new(argument, position)).collect::<Result<Vec<_>, _>>()?,
            ),
            Expr::List { .. } => Compiled::Literal(Datum::Null),
            Expr::If { condition, then, otherwise } => Compiled::If(Box::new([
                Compiled::new(condition, position)?,
                Compiled::new(then, position)?,
                Compiled::new(otherwise, position)?,
            ])),
        })
    }

    /// The value over one record whose fields are at the positions given to [`Compiled::new`]. A position past
    /// the end of the record reads as a missing value.
    pub fn evaluate<'a>(&'a self, record: &'a [Datum]) -> Cow<'a, Datum> {
        const NULL: &Datum = &Datum::Null;
        match self {
            Compiled::Literal(value) => Cow::Borrowed(value),
            Compiled::Field(index) => Cow::Borrowed(record.get(*index).unwrap_or(NULL)),
            Compiled::Unary(op, operand) => Cow::Owned(unary(*op, &operand.evaluate(record))),
            Compiled::Binary(BinaryOp::And, left, right) => match *left.evaluate(record) {
                Datum::Bool(false) => Cow::Borrowed(&Datum::Bool(false)),
                Datum::Bool(true) => right.evaluate(record),
                _ => Cow::Borrowed(NULL),
            },
            Compiled::Binary(BinaryOp::Or, left, right) => match *left.evaluate(record) {
                Datum::Bool(true) => Cow::Borrowed(&Datum::Bool(true)),
                Datum::Bool(false) => right.evaluate(record),
                _ => Cow::Borrowed(NULL),
            },
            Compiled::Binary(op, left, right) => {
                Cow::Owned(binary(*op, &left.evaluate(record), &right.evaluate(record)))
            }
            Compiled::In(needle, items) => {
                let needle = needle.evaluate(record);
                if *needle == Datum::Null {
                    return Cow::Borrowed(NULL);
                }
                Cow::Owned(Datum::Bool(items.iter().any(|item| equal(&needle, &item.evaluate(record)))))
            }
            Compiled::Call(function, args) => {
                let values: Vec<Datum> = args.iter().map(|argument| argument.evaluate(record).into_owned()).collect();
                Cow::Owned(call(function, &values))
            }
            Compiled::If(parts) => {
                let [condition, then, otherwise] = parts.as_ref();
                if condition.holds(record) { then.evaluate(record) } else { otherwise.evaluate(record) }
            }
        }
    }

    /// Whether the expression holds for the record (a missing value does not).
    pub fn holds(&self, record: &[Datum]) -> bool {
        self.evaluate(record).is_true()
    }
}

fn unary(op: UnaryOp, operand: &Datum) -> Datum {
    match (op, operand) {
        (UnaryOp::Not, Datum::Bool(value)) => Datum::Bool(!value),
        (UnaryOp::Negate, Datum::Int(value)) => Datum::Int(-value),
        (UnaryOp::Negate, Datum::Float(value)) => Datum::Float(-value),
        (UnaryOp::Negate, Datum::Duration(value)) => Datum::Duration(-value),
        _ => Datum::Null,
    }
}

fn equal(left: &Datum, right: &Datum) -> bool {
    match (left, right) {
        (Datum::Text(a), Datum::Text(b)) => a == b,
        (Datum::Bool(a), Datum::Bool(b)) => a == b,
        (Datum::Timestamp(a), Datum::Timestamp(b)) => a == b,
        (a, b) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

fn binary(op: BinaryOp, left: &Datum, right: &Datum) -> Datum {
    if *left == Datum::Null || *right == Datum::Null {
        return Datum::Null;
    }
    match op {
        BinaryOp::Equal => Datum::Bool(equal(left, right)),
        BinaryOp::NotEqual => Datum::Bool(!equal(left, right)),
        BinaryOp::Less | BinaryOp::LessOrEqual | BinaryOp::Greater | BinaryOp::GreaterOrEqual => {
            let Some(ordering) = order(left, right) else { return Datum::Null };
            Datum::Bool(match op {
                BinaryOp::Less => ordering.is_lt(),
                BinaryOp::LessOrEqual => ordering.is_le(),
                BinaryOp::Greater => ordering.is_gt(),
                _ => ordering.is_ge(),
            })
        }
        BinaryOp::Add | BinaryOp::Subtract | BinaryOp::Multiply | BinaryOp::Divide => match (left, right) {
            (Datum::Int(a), Datum::Int(b)) if op != BinaryOp::Divide => Datum::Int(match op {
                BinaryOp::Add => a.wrapping_add(*b),
                BinaryOp::Subtract => a.wrapping_sub(*b),
                _ => a.wrapping_mul(*b),
            }),
            (Datum::Timestamp(a), Datum::Timestamp(b)) if op == BinaryOp::Subtract => {
                Datum::Duration((a - b) as f64 / 1000.0)
            }
            (Datum::Duration(a), Datum::Duration(b)) => {
                Datum::Duration(if op == BinaryOp::Add { a + b } else { a - b })
            }
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => Datum::Float(match op {
                    BinaryOp::Add => x + y,
                    BinaryOp::Subtract => x - y,
                    BinaryOp::Multiply => x * y,
                    _ if y == 0.0 => return Datum::Null,
                    _ => x / y,
                }),
                _ => Datum::Null,
            },
        },
        BinaryOp::And | BinaryOp::Or | BinaryOp::In => Datum::Null,
    }
}

/// How two values compare (comparisons, `least`, `greatest`, `clamp`, window minima and maxima): strings by their
/// text, everything else as numbers; `None` when they do not compare.
pub fn order(left: &Datum, right: &Datum) -> Option<Ordering> {
    match (left, right) {
        (Datum::Text(a), Datum::Text(b)) => Some(a.cmp(b)),
        (a, b) => a.as_f64().zip(b.as_f64()).and_then(|(x, y)| x.partial_cmp(&y)),
    }
}

fn call(function: &str, values: &[Datum]) -> Datum {
    let first = values.first().cloned().unwrap_or(Datum::Null);
    if function == "coalesce" {
        return values.iter().find(|value| **value != Datum::Null).cloned().unwrap_or(Datum::Null);
    }
    if function == "concat" {
        return Datum::Text(values.iter().map(text_of).collect());
    }
    if first == Datum::Null {
        return Datum::Null;
    }
    let number = first.as_f64();
    match function {
        "least" | "greatest" | "clamp" => {
            if values.contains(&Datum::Null) {
                return Datum::Null;
            }
            // The first of the two unless the second is strictly lower (or higher): ties keep the first.
            let pick = |a: &Datum, b: &Datum, lower: bool| match (order(b, a), lower) {
                (Some(Ordering::Less), true) | (Some(Ordering::Greater), false) => b.clone(),
                _ => a.clone(),
            };
            let picked = match (function, values) {
                ("clamp", [value, low, high]) => pick(&pick(value, low, false), high, true),
                ("least", _) => values[1..].iter().fold(first.clone(), |kept, value| pick(&kept, value, true)),
                ("greatest", _) => values[1..].iter().fold(first.clone(), |kept, value| pick(&kept, value, false)),
                _ => return Datum::Null,
            };
            // Ints mixed with floats give a float, as the checker types them.
            match picked {
                Datum::Int(value) if values.iter().any(|value| matches!(value, Datum::Float(_))) => {
                    Datum::Float(value as f64)
                }
                other => other,
            }
        }
        "int" => match first {
            Datum::Int(_) => first,
            // Towards zero, as Python's `int()` and SQL's `CAST … AS BIGINT` of a float's integral part.
            _ => number
                .filter(|value| value.is_finite())
                .map(|value| Datum::Int(value.trunc() as i64))
                .unwrap_or(Datum::Null),
        },
        "float" => number.map(Datum::Float).unwrap_or(Datum::Null),
        "abs" => match first {
            Datum::Int(value) => Datum::Int(value.abs()),
            _ => number.map(|value| Datum::Float(value.abs())).unwrap_or(Datum::Null),
        },
        "round" => number.map(|value| Datum::Int(value.round() as i64)).unwrap_or(Datum::Null),
        "floor" => number.map(|value| Datum::Int(value.floor() as i64)).unwrap_or(Datum::Null),
        "ceil" => number.map(|value| Datum::Int(value.ceil() as i64)).unwrap_or(Datum::Null),
        "sqrt" => number.filter(|value| *value >= 0.0).map(|value| Datum::Float(value.sqrt())).unwrap_or(Datum::Null),
        "log" => number.filter(|value| *value > 0.0).map(|value| Datum::Float(value.ln())).unwrap_or(Datum::Null),
        "exp" => number.map(|value| Datum::Float(value.exp())).unwrap_or(Datum::Null),
        "lower" => Datum::Text(text_of(&first).to_lowercase()),
        "upper" => Datum::Text(text_of(&first).to_uppercase()),
        "len" => Datum::Int(text_of(&first).chars().count() as i64),
        "hash" => Datum::Text(format!("{:016x}", fnv1a(text_of(&first).as_bytes()))),
        "hour_of_day" | "day_of_week" | "month" | "year" => match first {
            Datum::Timestamp(milliseconds) => {
                let days = milliseconds.div_euclid(86_400_000);
                let (year, month, _) = civil_from_days(days);
                Datum::Int(match function {
                    "hour_of_day" => milliseconds.rem_euclid(86_400_000) / 3_600_000,
                    // Monday is 0, as in pandas; 1970-01-01 was a Thursday.
                    "day_of_week" => (days + 3).rem_euclid(7),
                    "month" => i64::from(month),
                    _ => year,
                })
            }
            _ => Datum::Null,
        },
        _ => Datum::Null,
    }
}

/// The value as text, the way `concat` and file sinks write it.
pub fn text_of(value: &Datum) -> String {
    match value {
        Datum::Null => String::new(),
        Datum::Bool(value) => value.to_string(),
        Datum::Int(value) => value.to_string(),
        Datum::Float(value) => value.to_string(),
        Datum::Text(value) => value.clone(),
        Datum::Timestamp(value) => format_timestamp(*value),
        Datum::Duration(value) => value.to_string(),
    }
}

/// A stable hash for pseudonymisation (the same value gives the same pseudonym everywhere).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x100000001b3))
}

/// (year, month 1–12, day 1–31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Writes milliseconds since the epoch as RFC 3339 in UTC (`2026-11-28T12:30:00Z`, `…00.250Z` with milliseconds),
/// which [`parse_timestamp`] reads back.
pub fn format_timestamp(milliseconds: i64) -> String {
    let days = milliseconds.div_euclid(86_400_000);
    let of_day = milliseconds.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second, millisecond) =
        (of_day / 3_600_000, of_day / 60_000 % 60, of_day / 1000 % 60, of_day % 1000);
    if millisecond == 0 {
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millisecond:03}Z")
    }
}

/// Parses `2026-11-28`, `2026-11-28T13:05:00Z`, `2026-11-28 13:05:00.250+01:00` into milliseconds since the epoch.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    let bytes = text.as_bytes();
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year: i64 = text.get(0..4)?.parse().ok()?;
    let month: u32 = text.get(5..7)?.parse().ok()?;
    let day: u32 = text.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut milliseconds = days_from_civil(year, month, day) * 86_400_000;
    let rest = &text[10..];
    if rest.is_empty() {
        return Some(milliseconds);
    }
    let rest = rest.strip_prefix(['T', ' '])?;
    let hour: i64 = rest.get(0..2)?.parse().ok()?;
    let minute: i64 = rest.get(3..5)?.parse().ok()?;
    let mut tail = rest.get(5..)?;
    let mut second: f64 = 0.0;
    if let Some(after) = tail.strip_prefix(':') {
        let end = after.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(after.len());
        second = after[..end].parse().ok()?;
        tail = &after[end..];
    }
    milliseconds += hour * 3_600_000 + minute * 60_000 + (second * 1000.0).round() as i64;
    match tail {
        "" | "Z" | "z" => Some(milliseconds),
        offset => {
            let sign = match offset.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours: i64 = offset.get(1..3)?.parse().ok()?;
            let minutes: i64 = offset.get(offset.len() - 2..)?.parse().ok()?;
            Some(milliseconds - sign * (hours * 3_600_000 + minutes * 60_000))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_and_split_into_calendar_parts() {
        let noon = parse_timestamp("2026-11-28T12:30:00Z").unwrap();
        let field = |_: &str| Datum::Timestamp(noon);
        let of = |function: &str| {
            evaluate(&Expr::Call { function: function.into(), args: vec![Expr::Field { name: "t".into() }] }, &field)
        };
        assert_eq!(of("hour_of_day"), Datum::Int(12));
        assert_eq!(of("day_of_week"), Datum::Int(5), "2026-11-28 is a Saturday");
        assert_eq!(of("month"), Datum::Int(11));
        assert_eq!(of("year"), Datum::Int(2026));
        assert_eq!(parse_timestamp("2026-11-28T13:30:00+01:00"), Some(noon));
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(parse_timestamp("nonsense"), None);
        for milliseconds in [0, noon, noon + 250, -86_400_001] {
            assert_eq!(parse_timestamp(&format_timestamp(milliseconds)), Some(milliseconds));
        }
    }

    #[test]
    fn nulls_propagate_and_filters_need_true() {
        let field = |name: &str| if name == "x" { Datum::Null } else { Datum::Int(2) };
        let compare = Expr::Binary {
            op: BinaryOp::Greater,
            left: Box::new(Expr::Field { name: "x".into() }),
            right: Box::new(Expr::Literal { value: Value::Int(1) }),
        };
        assert_eq!(evaluate(&compare, &field), Datum::Null);
        assert!(!evaluate(&compare, &field).is_true());
        let sum = Expr::Binary {
            op: BinaryOp::Add,
            left: Box::new(Expr::Field { name: "y".into() }),
            right: Box::new(Expr::Literal { value: Value::Float(0.5) }),
        };
        assert_eq!(evaluate(&sum, &field), Datum::Float(2.5));
    }

    #[test]
    fn decisions_choose_bound_and_count() {
        let field = |name: &str| match name {
            "queue" => Datum::Int(14),
            "wait" => Datum::Float(2.5),
            "busy" => Datum::Bool(true),
            _ => Datum::Null,
        };
        let name = |name: &str| Box::new(Expr::Field { name: name.into() });
        let int = |value: i64| Box::new(Expr::Literal { value: Value::Int(value) });
        let call = |function: &str, args: Vec<Expr>| Expr::Call { function: function.into(), args };
        let choose = |condition: Box<Expr>| Expr::If { condition, then: int(1), otherwise: int(2) };
        assert_eq!(evaluate(&choose(name("busy")), &field), Datum::Int(1));
        // A missing condition does not hold, as in SQL's CASE.
        assert_eq!(evaluate(&choose(name("missing")), &field), Datum::Int(2));
        let of = |function: &str, args: Vec<Expr>| evaluate(&call(function, args), &field);
        assert_eq!(of("least", vec![*name("queue"), *int(10), *int(12)]), Datum::Int(10));
        assert_eq!(of("greatest", vec![*name("queue"), *name("wait")]), Datum::Float(14.0));
        assert_eq!(of("least", vec![*name("queue"), *name("missing")]), Datum::Null);
        assert_eq!(of("clamp", vec![*name("queue"), *int(0), *int(10)]), Datum::Int(10));
        assert_eq!(of("clamp", vec![*name("queue"), *int(20), *int(30)]), Datum::Int(20));
        assert_eq!(of("clamp", vec![*name("wait"), *int(0), *int(10)]), Datum::Float(2.5));
        assert_eq!(of("int", vec![*name("busy")]), Datum::Int(1));
        assert_eq!(of("int", vec![*name("wait")]), Datum::Int(2));
        assert_eq!(of("float", vec![*name("queue")]), Datum::Float(14.0));
        assert_eq!(of("int", vec![*name("missing")]), Datum::Null);
    }

    #[test]
    fn compiled_expressions_agree_with_evaluation_by_name() {
        let names = ["class", "speed", "missing"];
        let record = [Datum::Text("car".into()), Datum::Float(72.5), Datum::Null];
        let by_name =
            |name: &str| names.iter().position(|known| *known == name).map_or(Datum::Null, |i| record[i].clone());
        let field = |name: &str| Box::new(Expr::Field { name: name.into() });
        let literal = |value: Value| Box::new(Expr::Literal { value });
        let list = Box::new(Expr::List {
            items: vec![
                Expr::Literal { value: Value::String("car".into()) },
                Expr::Literal { value: Value::String("bus".into()) },
            ],
        });
        let expressions = [
            Expr::Binary { op: BinaryOp::In, left: field("class"), right: list },
            Expr::Binary {
                op: BinaryOp::And,
                left: Box::new(Expr::Binary {
                    op: BinaryOp::Greater,
                    left: field("speed"),
                    right: literal(Value::Int(60)),
                }),
                right: Box::new(Expr::Binary {
                    op: BinaryOp::Equal,
                    left: field("missing"),
                    right: literal(Value::Int(1)),
                }),
            },
            Expr::Binary { op: BinaryOp::Divide, left: field("speed"), right: literal(Value::Int(0)) },
            Expr::Unary { op: UnaryOp::Negate, operand: field("speed") },
            Expr::Call { function: "upper".into(), args: vec![*field("class")] },
            Expr::Call { function: "coalesce".into(), args: vec![*field("missing"), *literal(Value::Float(1.5))] },
            Expr::If {
                condition: Box::new(Expr::Binary {
                    op: BinaryOp::Greater,
                    left: field("speed"),
                    right: literal(Value::Int(60)),
                }),
                then: field("class"),
                otherwise: literal(Value::String("slow".into())),
            },
            Expr::Call {
                function: "clamp".into(),
                args: vec![*field("speed"), *literal(Value::Int(0)), *literal(Value::Int(50))],
            },
        ];
        for expr in &expressions {
            let compiled = Compiled::new(expr, &|name| names.iter().position(|known| *known == name)).unwrap();
            assert_eq!(*compiled.evaluate(&record), evaluate(expr, &by_name), "{expr:?}");
        }
        assert_eq!(Compiled::new(&field("nope"), &|_| None), Err(UnknownField { name: "nope".to_string() }));
    }
}
