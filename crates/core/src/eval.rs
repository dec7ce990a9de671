//! Evaluation of IR expressions over one record: used to filter and compute rows when training models, and by
//! the data plane for streams. Missing values (`Null`) propagate; a filter keeps a row only when it is `true`.

use crate::ir::{BinaryOp, Expr, UnaryOp, Value};

/// A value at run time.
#[derive(Clone, Debug, PartialEq)]
pub enum Datum {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// Milliseconds since 1970-01-01T00:00:00Z.
    Timestamp(i64),
    /// Seconds.
    Duration(f64),
}

impl Datum {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Datum::Int(value) => Some(*value as f64),
            Datum::Float(value) | Datum::Duration(value) => Some(*value),
            Datum::Bool(value) => Some(f64::from(u8::from(*value))),
            Datum::Timestamp(value) => Some(*value as f64),
            _ => None,
        }
    }

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

/// Evaluates `expr`, reading fields through `field`.
pub fn evaluate(expr: &Expr, field: &dyn Fn(&str) -> Datum) -> Datum {
    match expr {
        Expr::Literal { value } => Datum::from(value),
        Expr::Field { name } => field(name),
        Expr::Unary { op, operand } => match (op, evaluate(operand, field)) {
            (_, Datum::Null) => Datum::Null,
            (UnaryOp::Not, Datum::Bool(value)) => Datum::Bool(!value),
            (UnaryOp::Negate, Datum::Int(value)) => Datum::Int(-value),
            (UnaryOp::Negate, Datum::Float(value)) => Datum::Float(-value),
            (UnaryOp::Negate, Datum::Duration(value)) => Datum::Duration(-value),
            _ => Datum::Null,
        },
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
        Expr::Binary { op, left, right } => binary(*op, evaluate(left, field), evaluate(right, field)),
        Expr::Call { function, args } => {
            let values: Vec<Datum> = args.iter().map(|argument| evaluate(argument, field)).collect();
            call(function, &values)
        }
        Expr::List { .. } => Datum::Null,
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

fn binary(op: BinaryOp, left: Datum, right: Datum) -> Datum {
    if left == Datum::Null || right == Datum::Null {
        return Datum::Null;
    }
    match op {
        BinaryOp::Equal => Datum::Bool(equal(&left, &right)),
        BinaryOp::NotEqual => Datum::Bool(!equal(&left, &right)),
        BinaryOp::Less | BinaryOp::LessOrEqual | BinaryOp::Greater | BinaryOp::GreaterOrEqual => {
            let ordering = match (&left, &right) {
                (Datum::Text(a), Datum::Text(b)) => Some(a.cmp(b)),
                (a, b) => a.as_f64().zip(b.as_f64()).and_then(|(x, y)| x.partial_cmp(&y)),
            };
            let Some(ordering) = ordering else { return Datum::Null };
            Datum::Bool(match op {
                BinaryOp::Less => ordering.is_lt(),
                BinaryOp::LessOrEqual => ordering.is_le(),
                BinaryOp::Greater => ordering.is_gt(),
                _ => ordering.is_ge(),
            })
        }
        BinaryOp::Add | BinaryOp::Subtract | BinaryOp::Multiply | BinaryOp::Divide => match (left, right) {
            (Datum::Int(a), Datum::Int(b)) if op != BinaryOp::Divide => Datum::Int(match op {
                BinaryOp::Add => a.wrapping_add(b),
                BinaryOp::Subtract => a.wrapping_sub(b),
                _ => a.wrapping_mul(b),
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

fn text_of(value: &Datum) -> String {
    match value {
        Datum::Null => String::new(),
        Datum::Bool(value) => value.to_string(),
        Datum::Int(value) => value.to_string(),
        Datum::Float(value) => value.to_string(),
        Datum::Text(value) => value.clone(),
        Datum::Timestamp(value) => value.to_string(),
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
}
