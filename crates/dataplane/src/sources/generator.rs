//! `generator` sources: synthetic events from the schema, at the declared rate, with values shaped like real
//! data — what demos, tests and benchmarks run on, and what stands in for cameras and sensors when a pipeline
//! simulates its external sources.
//!
//! Values are drawn from what the application itself says about each field: strings compared with literals
//! (`class in ["car", "truck"]`) take those values (and a few others), numbers compared with thresholds
//! (`speed_kmh > 80`) spread around them, and fields used as grouping keys take a fixed set of values, one per
//! simulated device. The same seed gives the same events.
//!
//! In simulated time (`--fast`, or the application's clock running faster than the wall clock under `stratum up
//! --speed N`) the rate follows a day, as traffic and most sensor data do: quiet nights, peaks around 8:00 and
//! 17:30, lighter weekends, and some days busier than others (by up to a quarter, the same day always the same);
//! the declared rate is the average. Windows, hourly batches and the models trained on them then see daily
//! patterns, and a model that foresees the next hour has to read how busy the day is. At the wall clock's pace
//! the rate is steady, the declared one.

use crate::Error;
use crate::component::{BoxFuture, BuildContext, Context, Output, Source};
use crate::record::{Record, wall_clock_milliseconds};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use stratum_core::eval::Datum;
use stratum_core::ir::{Application, BinaryOp, Expr, Source as SourceItem, SourceKind, Value};
use stratum_core::types::{DataType, Field};
use stratum_ml::matrix::Random;

/// Event time of the first event when generating as fast as possible: 2026-01-01T00:00:00Z.
const SIMULATED_START_MILLISECONDS: i64 = 1_767_225_600_000;
/// How many distinct values a key field takes unless told otherwise.
pub(crate) const DEFAULT_KEY_COUNT: usize = 8;
/// Events per batch.
const BATCH: usize = 1024;

/// Builds a generator for a `generator` source.
pub(crate) fn build(source: &SourceItem, context: &BuildContext) -> Result<Box<dyn Source>, Error> {
    let (seed, count) = match source.kind {
        SourceKind::Generator { seed, count } => (seed, count),
        _ => (0, None),
    };
    let count = match (count, context.generator_limit) {
        (Some(count), Some(limit)) => Some(count.min(limit)),
        (count, limit) => count.or(limit),
    };
    let mut generator =
        Generator::new(source, context.application, seed, count, context.fast_generators, DEFAULT_KEY_COUNT);
    generator.simulated_seconds = context.simulated_seconds;
    generator.time_scale = context.time_scale;
    Ok(Box::new(generator))
}

/// A generator standing in for any source (`--simulate`): same schema and rate, no count.
pub(crate) fn simulating(source: &SourceItem, context: &BuildContext) -> Box<dyn Source> {
    let seed = crate::record::hash_key(&[Datum::Text(source.name.clone())], &[0]);
    let mut generator = Generator::new(
        source,
        context.application,
        seed,
        context.generator_limit,
        context.fast_generators,
        DEFAULT_KEY_COUNT,
    );
    generator.simulated_seconds = context.simulated_seconds;
    generator.time_scale = context.time_scale;
    Box::new(generator)
}

pub(crate) struct Generator {
    plans: Vec<FieldPlan>,
    random: Random,
    count: Option<u64>,
    /// Events per second for the whole source.
    rate: f64,
    fast: bool,
    /// When fast, stop once event time has covered this many seconds.
    pub simulated_seconds: Option<f64>,
    /// In real time, run this many times faster than the clock (events and event time).
    pub time_scale: f64,
}

#[derive(Debug)]
enum FieldPlan {
    Key(Vec<String>),
    /// Values with cumulative weights (a few common, a tail of rare ones, as real categories are).
    Category(Vec<String>, Vec<f64>),
    Number {
        mean: f64,
        spread: f64,
        integer: bool,
    },
    Time,
    Bool,
    Duration,
    /// Identifiers such as number plates: letters and digits, rarely repeating.
    Identifier,
    Missing,
}

impl Generator {
    pub(crate) fn new(
        source: &SourceItem,
        application: &Application,
        seed: u64,
        count: Option<u64>,
        fast: bool,
        key_count: usize,
    ) -> Generator {
        let hints = Hints::of(application);
        let plans = source.fields.iter().map(|field| plan(field, &hints, key_count)).collect();
        Generator {
            plans,
            random: Random::new(seed),
            count,
            rate: rate_of(source, application),
            fast,
            simulated_seconds: None,
            time_scale: 1.0,
        }
    }

    fn record(&mut self, index: u64, now_milliseconds: i64) -> Record {
        let random = &mut self.random;
        self.plans
            .iter()
            .map(|plan| match plan {
                FieldPlan::Key(values) => Datum::Text(values[random.below(values.len())].clone()),
                FieldPlan::Category(values, cumulative) => {
                    let draw = random.next_f64() * cumulative.last().copied().unwrap_or(1.0);
                    let index = cumulative.iter().position(|bound| draw < *bound).unwrap_or(values.len() - 1);
                    Datum::Text(values[index].clone())
                }
                FieldPlan::Number { mean, spread, integer } => {
                    let value = mean + spread * normal(random);
                    if *integer {
                        Datum::Int(value.round() as i64)
                    } else {
                        Datum::Float((value * 100.0).round() / 100.0)
                    }
                }
                FieldPlan::Time => Datum::Timestamp(now_milliseconds),
                FieldPlan::Bool => Datum::Bool(random.next_f64() < 0.5),
                FieldPlan::Duration => Datum::Duration(-random.next_f64().max(1e-9).ln()),
                FieldPlan::Identifier => {
                    let letters: String = (0..3).map(|_| char::from(b'A' + random.below(26) as u8)).collect();
                    Datum::Text(format!(
                        "{letters}-{:04}",
                        (index.wrapping_mul(7919) + random.below(10_000) as u64) % 10_000
                    ))
                }
                FieldPlan::Missing => Datum::Null,
            })
            .collect()
    }
}

/// A standard normal draw (Box–Muller).
fn normal(random: &mut Random) -> f64 {
    let u = random.next_f64().max(1e-12);
    let v = random.next_f64();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

impl Source for Generator {
    fn run(mut self: Box<Self>, output: Output, mut context: Context) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async move {
            let interval_milliseconds = 1000.0 / self.rate;
            // Real time, scaled: events are due at `rate × scale` per second of the clock.
            let scale = if self.time_scale.is_finite() && self.time_scale > 0.0 { self.time_scale } else { 1.0 };
            let real_rate = self.rate * scale;
            let started = Instant::now();
            let wall_start = wall_clock_milliseconds();
            let mut simulated_milliseconds = SIMULATED_START_MILLISECONDS as f64;
            let simulated_end = self
                .simulated_seconds
                .filter(|_| self.fast)
                .map_or(f64::INFINITY, |seconds| SIMULATED_START_MILLISECONDS as f64 + seconds * 1000.0);
            let mut index = 0u64;
            // Faster than the wall clock, time is simulated: the rate follows the day.
            let follows_day = scale > 1.0;
            let (mut due, mut counted_until) = (0.0f64, 0.0f64);
            loop {
                if context.stopping()
                    || self.count.is_some_and(|count| index >= count)
                    || simulated_milliseconds >= simulated_end
                {
                    return Ok(());
                }
                let remaining = self.count.map_or(BATCH as u64, |count| (count - index).min(BATCH as u64));
                // In real time, a batch holds what is due now (at least one event); fast, a full batch.
                let size = if self.fast {
                    remaining
                } else {
                    // Events due so far: the rate, times how busy the moment is, summed over the time gone by.
                    let elapsed = started.elapsed().as_secs_f64();
                    let now = wall_start + (elapsed * 1000.0 * scale) as i64;
                    let rate_now = if follows_day { real_rate * activity(now) } else { real_rate };
                    due += (elapsed - counted_until) * rate_now;
                    counted_until = elapsed;
                    if (due as u64) <= index {
                        // The wait for the next event at the present pace.
                        let wait = Duration::from_secs_f64((((index + 1) as f64 - due) / rate_now).max(0.0));
                        tokio::select! {
                            _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
                            _ = context.stopped() => return Ok(()),
                        }
                        continue;
                    }
                    (due as u64 - index).min(remaining)
                };
                let mut records = Vec::with_capacity(size as usize);
                for _ in 0..size {
                    if simulated_milliseconds >= simulated_end {
                        break;
                    }
                    let time = if self.fast {
                        let time = simulated_milliseconds as i64;
                        simulated_milliseconds += interval_milliseconds / activity(time);
                        time
                    } else {
                        wall_start + (started.elapsed().as_secs_f64() * 1000.0 * scale) as i64
                    };
                    records.push(self.record(index, time));
                    index += 1;
                }
                let bytes = records.iter().map(crate::record::encoded_size).sum();
                context.metrics.count_in(records.len(), bytes);
                if output.send(records).await.is_err() {
                    return Ok(());
                }
            }
        })
    }
}

/// How busy a moment of the week is, relative to the weekly average (which is 1): a night floor, a morning peak
/// around 8:00 and a longer evening peak around 17:30, weekends at three quarters of a weekday.
pub(crate) fn daily_profile(milliseconds: i64) -> f64 {
    /// Scales the shape so that its average over a week is 1; computed from the shape below (see the test).
    const NORMALISATION: f64 = 1.0 / 0.731_995;
    let hour = milliseconds.rem_euclid(86_400_000) as f64 / 3_600_000.0;
    // 1970-01-01 was a Thursday: day 0 of the week is Thursday, so days 2 and 3 are Saturday and Sunday.
    let weekday = milliseconds.div_euclid(86_400_000).rem_euclid(7);
    let bump = |centre: f64, width: f64| (-(hour - centre).powi(2) / (2.0 * width * width)).exp();
    let daytime = if (6.0..22.0).contains(&hour) { 0.5 } else { 0.0 };
    let shape = 0.15 + daytime + 1.1 * bump(8.0, 1.2) + 1.0 * bump(17.5, 1.6);
    let weekend = if matches!(weekday, 2 | 3) { 0.75 } else { 1.0 };
    shape * weekend * NORMALISATION
}

/// Events a second a generator standing for `source` makes on average: its declared rate (100 when it declares
/// none), times the nodes of its tier for a `per node` rate.
pub(crate) fn rate_of(source: &SourceItem, application: &Application) -> f64 {
    let mut rate = source.rate.map_or(100.0, |rate| rate.0);
    if source.rate_per_node {
        let tier = source.placement.inferred_tier.or(source.placement.tier);
        let nodes = application.nodes.iter().filter(|node| Some(node.machine.tier) == tier).count().max(1);
        rate *= nodes as f64;
    }
    rate.max(1e-3)
}

/// How busy a moment is, relative to the declared rate: the moment of the week ([`daily_profile`]) on a day
/// busier or quieter than usual by up to a quarter, each day's share drawn from its date (so the same day is
/// always as busy, and the average over many days is 1).
pub(crate) fn activity(milliseconds: i64) -> f64 {
    let day = milliseconds.div_euclid(86_400_000);
    let draw = crate::record::hash_key(&[Datum::Int(day)], &[0]) as f64 / u64::MAX as f64;
    daily_profile(milliseconds) * (0.75 + 0.5 * draw)
}

/// What the application says about fields, by name.
#[derive(Default)]
struct Hints {
    strings: BTreeMap<String, BTreeSet<String>>,
    numbers: BTreeMap<String, Vec<f64>>,
    keys: BTreeSet<String>,
}

impl Hints {
    fn of(application: &Application) -> Hints {
        let mut hints = Hints::default();
        for stream in &application.streams {
            hints.keys.extend(stream.keys.iter().cloned());
            if let Some(join) = &stream.join {
                hints.keys.extend(join.keys.iter().cloned());
            }
            if let Some(filter) = &stream.filter {
                hints.visit(filter);
            }
            for computed in &stream.select {
                hints.visit(&computed.expr);
            }
        }
        for sink in &application.sinks {
            if let stratum_core::ir::SinkKind::File { partition_by, .. } = &sink.kind {
                hints.keys.extend(partition_by.iter().cloned());
            }
        }
        hints
    }

    fn visit(&mut self, expr: &Expr) {
        if let Expr::Binary { op, left, right } = expr
            && let Expr::Field { name } = left.as_ref()
        {
            match (op, right.as_ref()) {
                (BinaryOp::In, Expr::List { items }) => {
                    for item in items {
                        self.literal(name, item);
                    }
                }
                (_, literal @ Expr::Literal { .. }) => self.literal(name, literal),
                _ => {}
            }
        }
        expr.children().into_iter().for_each(|child| self.visit(child));
    }

    fn literal(&mut self, field: &str, expr: &Expr) {
        match expr {
            Expr::Literal { value: Value::String(text) } => {
                self.strings.entry(field.into()).or_default().insert(text.clone());
            }
            Expr::Literal { value: Value::Int(number) } => {
                self.numbers.entry(field.into()).or_default().push(*number as f64)
            }
            Expr::Literal { value: Value::Float(number) } => {
                self.numbers.entry(field.into()).or_default().push(*number)
            }
            _ => {}
        }
    }
}

fn plan(field: &Field, hints: &Hints, key_count: usize) -> FieldPlan {
    let name = &field.name;
    match field.data_type.without_optional() {
        DataType::String if hints.keys.contains(name) => {
            FieldPlan::Key((1..=key_count).map(|index| format!("{name}-{index}")).collect())
        }
        DataType::String => match hints.strings.get(name) {
            Some(values) => {
                let mut values: Vec<String> = values.iter().cloned().collect();
                values.push("other".into());
                let mut total = 0.0;
                let cumulative = (0..values.len())
                    .map(|rank| {
                        total += 1.0 / (rank as f64 + 1.0);
                        total
                    })
                    .collect();
                FieldPlan::Category(values, cumulative)
            }
            None if field.private => FieldPlan::Identifier,
            None => FieldPlan::Category(
                (1..=5).map(|index| format!("{name}-{index}")).collect(),
                vec![1.0, 1.5, 1.8, 2.0, 2.1],
            ),
        },
        data_type @ (DataType::Int | DataType::Float) => {
            let integer = *data_type == DataType::Int;
            match hints.numbers.get(name) {
                Some(thresholds) if !thresholds.is_empty() => {
                    let low = thresholds.iter().copied().fold(f64::INFINITY, f64::min);
                    let high = thresholds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let spread = if high > low { (high - low) / 2.0 } else { low.abs().max(1.0) / 2.0 };
                    FieldPlan::Number { mean: (low + high) / 2.0, spread, integer }
                }
                _ => FieldPlan::Number { mean: 50.0, spread: 15.0, integer },
            }
        }
        DataType::Timestamp => FieldPlan::Time,
        DataType::Bool => FieldPlan::Bool,
        DataType::Duration => FieldPlan::Duration,
        DataType::Bytes => FieldPlan::Identifier,
        DataType::List(_) | DataType::Optional(_) => FieldPlan::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_profile_averages_one_over_a_week_and_peaks_at_rush_hours() {
        let week: Vec<f64> = (0..7 * 24 * 60).map(|minute| daily_profile(minute * 60_000)).collect();
        let mean = week.iter().sum::<f64>() / week.len() as f64;
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
        let at = |hour: i64| daily_profile(SIMULATED_START_MILLISECONDS + hour * 3_600_000);
        // 2026-01-01 is a Thursday.
        assert!(at(8) > 3.0 * at(3), "morning peak {} against night {}", at(8), at(3));
        assert!(at(17) > at(12));
        assert!(at(2 * 24 + 8) < at(8), "Saturday is lighter than Thursday");
    }

    #[test]
    fn days_differ_in_how_busy_they_are_and_average_the_declared_rate() {
        let noon = |day: i64| SIMULATED_START_MILLISECONDS + day * 86_400_000 + 12 * 3_600_000;
        let shares: Vec<f64> = (0..2000).map(|day| activity(noon(day)) / daily_profile(noon(day))).collect();
        let mean = shares.iter().sum::<f64>() / shares.len() as f64;
        assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
        assert!(shares.iter().all(|share| (0.75..=1.25).contains(share)));
        let (low, high) =
            shares.iter().fold((f64::MAX, f64::MIN), |(low, high), share| (low.min(*share), high.max(*share)));
        assert!(low < 0.8 && high > 1.2, "{low} {high}");
        let share = |at: i64| activity(at) / daily_profile(at);
        assert!((share(noon(3)) - share(noon(3) + 3_600_000)).abs() < 1e-12, "a day's share is the same all day");
    }
}
