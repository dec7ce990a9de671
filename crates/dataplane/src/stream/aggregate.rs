//! The aggregates of windowed streams: how each one is found in a `select` expression, the state it keeps per key
//! and window, and its value when the window closes.

use crate::record::Record;
use std::cmp::Ordering;
use std::collections::HashSet;
use stratum_core::eval::{Compiled, Datum, order};
use stratum_core::ir::{AGGREGATE_FUNCTIONS, Expr};

/// One aggregate of a window, with its argument compiled against the window's input record.
#[derive(Debug)]
pub enum Aggregate {
    /// `count()`
    Count,
    /// `count_if(condition)`
    CountIf(Compiled),
    /// `sum(x)`
    Sum(Compiled),
    /// `avg(x)`
    Avg(Compiled),
    /// `min(x)`
    Min(Compiled),
    /// `max(x)`
    Max(Compiled),
    /// The argument and the quantile (0.95 for the 95th percentile).
    Percentile(Compiled, f64),
    /// `distinct(x)`: how many different values.
    Distinct(Compiled),
    /// `sum_if(x, condition)` and its siblings: the aggregate over the records for which the condition holds.
    Where(Box<Aggregate>, Compiled),
}

/// The running state of one aggregate for one key in one window.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum State {
    /// How many so far.
    Count(u64),
    /// Integer and float sums are kept apart so that a sum of ints stays exact.
    Sum {
        /// The sum of the integers.
        integer: i64,
        /// The sum of the floats.
        float: f64,
        /// A float was summed: the result is a float.
        any_float: bool,
        /// Anything was summed (an empty sum is missing).
        seen: bool,
    },
    /// A running mean.
    Avg {
        /// The sum so far.
        total: f64,
        /// How many were summed.
        count: u64,
    },
    /// The least or greatest so far.
    Extreme(Datum),
    /// Every value so far (for a percentile).
    Values(Vec<f64>),
    /// The different values so far.
    Distinct(HashSet<DistinctValue>),
}

/// A value as a member of a set (floats by their bits).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DistinctValue {
    /// A boolean.
    Bool(bool),
    /// An integer (timestamps too).
    Int(i64),
    /// A float, by its bits.
    Bits(u64),
    /// A string.
    Text(String),
}

impl Aggregate {
    /// Reads an aggregate call from a `select` expression, compiling its argument with `compile`.
    pub fn from_call(
        expr: &Expr,
        compile: &dyn Fn(&Expr) -> Result<Compiled, String>,
    ) -> Option<Result<Aggregate, String>> {
        let Expr::Call { function, args } = expr else { return None };
        if !AGGREGATE_FUNCTIONS.contains(&function.as_str()) {
            return None;
        }
        let argument = || args.first().map(compile).unwrap_or_else(|| Err(format!("`{function}` needs an argument")));
        if let Some(base) = function.strip_suffix("_if").filter(|base| *base != "count") {
            let unfiltered = Expr::Call { function: base.to_string(), args: args.iter().take(1).cloned().collect() };
            let condition = args.get(1).map(compile).unwrap_or_else(|| Err(format!("`{function}` needs a condition")));
            return Some(match (Aggregate::from_call(&unfiltered, compile)?, condition) {
                (Ok(aggregate), Ok(condition)) => Ok(Aggregate::Where(Box::new(aggregate), condition)),
                (Err(error), _) | (_, Err(error)) => Err(error),
            });
        }
        Some((|| {
            Ok(match function.as_str() {
                "count" => Aggregate::Count,
                "count_if" => Aggregate::CountIf(argument()?),
                "sum" => Aggregate::Sum(argument()?),
                "avg" => Aggregate::Avg(argument()?),
                "min" => Aggregate::Min(argument()?),
                "max" => Aggregate::Max(argument()?),
                "percentile" => {
                    let quantile = match args.get(1) {
                        Some(Expr::Literal { value }) => Datum::from(value).as_f64(),
                        _ => None,
                    };
                    Aggregate::Percentile(argument()?, quantile.ok_or("`percentile` needs a fraction such as 0.95")?)
                }
                _ => Aggregate::Distinct(argument()?),
            })
        })())
    }

    /// The state before any record.
    pub fn start(&self) -> State {
        match self {
            Aggregate::Count | Aggregate::CountIf(_) => State::Count(0),
            Aggregate::Sum(_) => State::Sum { integer: 0, float: 0.0, any_float: false, seen: false },
            Aggregate::Avg(_) => State::Avg { total: 0.0, count: 0 },
            Aggregate::Min(_) | Aggregate::Max(_) => State::Extreme(Datum::Null),
            Aggregate::Percentile(..) => State::Values(Vec::new()),
            Aggregate::Distinct(_) => State::Distinct(HashSet::new()),
            Aggregate::Where(aggregate, _) => aggregate.start(),
        }
    }

    /// Adds one record. Missing values are skipped, as SQL aggregates skip NULL.
    pub fn add(&self, state: &mut State, record: &Record) {
        match (self, state) {
            // A record for which the condition does not hold falls through to the last arm: nothing is added.
            (Aggregate::Where(aggregate, condition), state) if condition.holds(record) => aggregate.add(state, record),
            (Aggregate::Count, State::Count(count)) => *count += 1,
            (Aggregate::CountIf(condition), State::Count(count)) => *count += u64::from(condition.holds(record)),
            (Aggregate::Sum(argument), State::Sum { integer, float, any_float, seen }) => {
                match *argument.evaluate(record) {
                    Datum::Int(value) => {
                        *integer = integer.wrapping_add(value);
                        *seen = true;
                    }
                    Datum::Float(value) | Datum::Duration(value) => {
                        *float += value;
                        *any_float = true;
                        *seen = true;
                    }
                    _ => {}
                }
            }
            (Aggregate::Avg(argument), State::Avg { total, count }) => {
                if let Some(value) = argument.evaluate(record).as_f64() {
                    *total += value;
                    *count += 1;
                }
            }
            (Aggregate::Min(argument), State::Extreme(current)) => {
                keep_extreme(current, &argument.evaluate(record), true)
            }
            (Aggregate::Max(argument), State::Extreme(current)) => {
                keep_extreme(current, &argument.evaluate(record), false)
            }
            (Aggregate::Percentile(argument, _), State::Values(values)) => {
                if let Some(value) = argument.evaluate(record).as_f64() {
                    values.push(value);
                }
            }
            (Aggregate::Distinct(argument), State::Distinct(set)) => {
                let value = match &*argument.evaluate(record) {
                    Datum::Null => return,
                    Datum::Bool(value) => DistinctValue::Bool(*value),
                    Datum::Int(value) | Datum::Timestamp(value) => DistinctValue::Int(*value),
                    Datum::Float(value) | Datum::Duration(value) => DistinctValue::Bits(value.to_bits()),
                    Datum::Text(text) => DistinctValue::Text(text.clone()),
                };
                set.insert(value);
            }
            _ => {}
        }
    }

    /// Merges `other` into `state` (session windows that grow into each other).
    pub fn merge(&self, state: &mut State, other: State) {
        if let Aggregate::Where(aggregate, _) = self {
            return aggregate.merge(state, other);
        }
        match (state, other) {
            (State::Count(count), State::Count(more)) => *count += more,
            (
                State::Sum { integer, float, any_float, seen },
                State::Sum { integer: i, float: f, any_float: a, seen: s },
            ) => {
                *integer = integer.wrapping_add(i);
                *float += f;
                *any_float |= a;
                *seen |= s;
            }
            (State::Avg { total, count }, State::Avg { total: t, count: c }) => {
                *total += t;
                *count += c;
            }
            (State::Extreme(current), State::Extreme(value)) => {
                keep_extreme(current, &value, matches!(self, Aggregate::Min(_)))
            }
            (State::Values(values), State::Values(more)) => values.extend(more),
            (State::Distinct(set), State::Distinct(more)) => set.extend(more),
            _ => {}
        }
    }

    /// The aggregate's value when its window closes.
    pub fn value(&self, state: &State) -> Datum {
        match state {
            State::Count(count) => Datum::Int(*count as i64),
            State::Sum { seen: false, .. } => Datum::Null,
            State::Sum { integer, float, any_float, .. } => {
                if *any_float {
                    Datum::Float(*float + *integer as f64)
                } else {
                    Datum::Int(*integer)
                }
            }
            State::Avg { count: 0, .. } => Datum::Null,
            State::Avg { total, count } => Datum::Float(total / *count as f64),
            State::Extreme(value) => value.clone(),
            State::Values(values) => match self {
                Aggregate::Percentile(_, quantile) => percentile(values, *quantile),
                Aggregate::Where(aggregate, _) => aggregate.value(state),
                _ => Datum::Null,
            },
            State::Distinct(set) => Datum::Int(set.len() as i64),
        }
    }
}

fn keep_extreme(current: &mut Datum, candidate: &Datum, minimum: bool) {
    if *candidate == Datum::Null {
        return;
    }
    let replace = *current == Datum::Null
        || matches!(
            (order(candidate, current), minimum),
            (Some(Ordering::Less), true) | (Some(Ordering::Greater), false)
        );
    if replace {
        *current = candidate.clone();
    }
}

/// The quantile by linear interpolation between the closest ranks (NumPy's and pandas' default).
fn percentile(values: &[f64], quantile: f64) -> Datum {
    if values.is_empty() {
        return Datum::Null;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let position = quantile.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (below, above) = (position.floor() as usize, position.ceil() as usize);
    let fraction = position - below as f64;
    Datum::Float(sorted[below] + (sorted[above] - sorted[below]) * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        // numpy.percentile([1, 2, 3, 4], 95) == 3.85
        let Datum::Float(value) = percentile(&[4.0, 1.0, 3.0, 2.0], 0.95) else { panic!("not a float") };
        assert!((value - 3.85).abs() < 1e-12, "{value}");
        assert_eq!(percentile(&[7.0], 0.5), Datum::Float(7.0));
    }

    #[test]
    fn conditional_aggregates_pivot_one_key_into_columns() {
        // Queues of one junction's two axes, one record per lane: (axis, queue).
        let lanes = [("ns", 4), ("ew", 9), ("ns", 6), ("ew", 1), ("ns", 2)];
        let position = |name: &str| ["axis", "queue"].iter().position(|known| *known == name);
        let compile = |expr: &Expr| Compiled::new(expr, &position).map_err(|error| error.to_string());
        let field = |name: &str| Expr::Field { name: name.into() };
        let on_axis = |axis: &str| Expr::Binary {
            op: stratum_core::ir::BinaryOp::Equal,
            left: Box::new(field("axis")),
            right: Box::new(Expr::Literal { value: stratum_core::ir::Value::String(axis.into()) }),
        };
        let of = |function: &str, axis: &str| {
            let call = Expr::Call { function: function.into(), args: vec![field("queue"), on_axis(axis)] };
            let aggregate = Aggregate::from_call(&call, &compile).unwrap().unwrap();
            let (mut first, mut second) = (aggregate.start(), aggregate.start());
            // Two halves merged, as session windows merge, give what one state gives.
            for (index, (axis, queue)) in lanes.iter().enumerate() {
                let record: Record = vec![Datum::Text(axis.to_string()), Datum::Int(*queue)];
                aggregate.add(if index < 2 { &mut first } else { &mut second }, &record);
            }
            aggregate.merge(&mut first, second);
            aggregate.value(&first)
        };
        assert_eq!(of("sum_if", "ns"), Datum::Int(12));
        assert_eq!(of("sum_if", "ew"), Datum::Int(10));
        assert_eq!(of("avg_if", "ns"), Datum::Float(4.0));
        assert_eq!(of("max_if", "ew"), Datum::Int(9));
        assert_eq!(of("min_if", "ns"), Datum::Int(2));
        assert_eq!(of("sum_if", "none"), Datum::Null, "an empty sum is missing, as SQL's SUM");
    }
}
