//! The `stream` operator: a join, a filter, a keyed window with aggregates or a projection with computed fields
//! and model predictions, in the order the language defines. Expressions are compiled once against the record
//! layout (one shared evaluator, `stratum_core::eval`), so the per-record work looks nothing up by name.

pub mod aggregate;
pub mod join;
pub mod predict;
pub mod window;

use crate::Error;
use crate::component::{BuildContext, Context, Operator};
use crate::record::{Batch, Record, event_time_position, into_records, to_json_object};
use aggregate::Aggregate;
use join::Joiner;
use predict::Predictor;
use std::time::{Duration, Instant};
use stratum_core::Cause;
use stratum_core::eval::{Compiled, Datum};
use stratum_core::ir::{Expr, Idle, Stream};
use stratum_core::types::Field;
use window::{Closed, Windows};

/// Allowed lateness when a stream does not declare `lateness`.
pub const DEFAULT_LATENESS_SECONDS: f64 = 1.0;

/// Builds a stream's operator.
pub fn build(stream: &Stream, context: &BuildContext) -> Result<Box<dyn Operator>, Error> {
    Ok(Box::new(StreamOperator::new(stream, context)?))
}

/// How a record's output columns are made when there is no window.
enum Column {
    Copy(usize),
    Compute(Compiled),
}

enum Stage {
    Window { windows: Windows, select: Vec<Compiled> },
    Project { columns: Vec<Column>, predictors: Vec<Predictor> },
}

/// A stream: filter, join, window and projection of its records, with its watermark.
pub struct StreamOperator {
    join: Option<Joiner>,
    filter: Option<Compiled>,
    stage: Stage,
    /// Where the event time of a (joined) record is; `None`: records are timed by their arrival.
    time: Option<usize>,
    clock: EventClock,
    /// The (joined) input's fields: a late record goes to the dead letters as JSON with them.
    fields: Vec<Field>,
    /// When late records were last warned about (at most one warning a minute).
    late_warned: Option<Instant>,
}

/// How often a stream warns of late records in the log (each one goes to the dead letters).
const LATE_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Tracks event time: the latest event time seen, and when it was seen, so that an idle stream's watermark moves
/// on with the wall clock and its last windows close.
pub struct EventClock {
    lateness: i64,
    latest: Option<(i64, Instant)>,
    /// How long the stream must be quiet before the wall clock counts; `None`: never.
    idle: Option<Duration>,
    /// Taken up from a checkpoint and no record since: the time the stream did not run, or ran elsewhere before
    /// its producers reached it here, is no evidence that they went quiet, so the wall clock does not count yet.
    resumed: bool,
    /// When the runtime last ticked it (see [`EventClock::ticked`]).
    last_tick: Option<Instant>,
}

/// A gap between ticks (which come every second) longer than this means the process did not run meanwhile.
const PAUSED: Duration = Duration::from_secs(5);

impl EventClock {
    /// A clock whose idle advance starts at once (the default when a stream does not say `idle`).
    pub fn new(lateness_seconds: f64) -> EventClock {
        EventClock::with_idle(lateness_seconds, Some(Duration::ZERO))
    }

    /// A clock whose watermark moves with the wall clock only after `idle` without records, or never.
    pub fn with_idle(lateness_seconds: f64, idle: Option<Duration>) -> EventClock {
        EventClock {
            lateness: (lateness_seconds * 1000.0).round() as i64,
            latest: None,
            idle,
            resumed: false,
            last_tick: None,
        }
    }

    /// Notes a tick of the runtime. A gap far longer than ticks come means the process was not running (stopped
    /// with SIGSTOP, a machine suspended): that time is not its producers' silence, and does not move the
    /// watermark on.
    pub fn ticked(&mut self, now: Instant) {
        if let (Some(last), Some((latest, seen))) = (self.last_tick, self.latest) {
            let gap = now.saturating_duration_since(last);
            if gap > PAUSED {
                self.latest = Some((latest, seen + gap));
            }
        }
        self.last_tick = Some(now);
    }

    /// Goes on from the latest event time a checkpoint holds; the wall clock counts again once a record comes.
    pub fn resume(&mut self, latest: i64, now: Instant) {
        self.observe(latest, now);
        self.resumed = true;
    }

    /// Takes note of a record's event time, moving the watermark on.
    pub fn observe(&mut self, time: i64, now: Instant) {
        self.resumed = false;
        match self.latest {
            Some((latest, _)) if latest >= time => {}
            _ => self.latest = Some((time, now)),
        }
    }

    /// The latest event time seen.
    pub fn latest(&self) -> Option<i64> {
        self.latest.map(|(latest, _)| latest)
    }

    /// The latest event time seen minus the lateness.
    pub fn watermark(&self) -> Option<i64> {
        self.latest.map(|(latest, _)| latest - self.lateness)
    }

    /// The watermark of an idle stream: the wall-clock time since the latest event counts as event time passing.
    /// Only for when no records wait (the runtime ticks an operator only when its input is empty): a stream that
    /// is merely busy must not move its watermark past records it has yet to read.
    /// With an `idle` time, the wall clock counts only once the stream has been quiet that long; with `never`, it
    /// does not count and the watermark is the event-time one.
    pub fn idle_watermark(&self, now: Instant) -> Option<i64> {
        let (latest, seen) = self.latest?;
        if self.resumed {
            return self.watermark();
        }
        let quiet = now.saturating_duration_since(seen);
        match self.idle {
            Some(idle) if quiet >= idle => Some(latest + quiet.as_millis() as i64 - self.lateness),
            _ => self.watermark(),
        }
    }
}

impl StreamOperator {
    /// The operator of `stream`.
    pub fn new(stream: &Stream, context: &BuildContext) -> Result<StreamOperator, Error> {
        let build_error = |message: String| Error::Build { component: stream.name.clone(), message };
        let lateness = stream.lateness.map_or(DEFAULT_LATENESS_SECONDS, |lateness| lateness.0);
        let idle = match stream.idle {
            None => Some(Duration::ZERO),
            Some(Idle::After(after)) => Some(Duration::from_secs_f64(after.0.max(0.0))),
            Some(Idle::Never) => None,
        };
        let application = context.application;
        let input =
            application.fields_of(&stream.from).ok_or_else(|| build_error(format!("no input `{}`", stream.from)))?;
        let (join, fields) = match &stream.join {
            Some(join) => {
                let other = application
                    .fields_of(&join.with)
                    .ok_or_else(|| build_error(format!("no input `{}`", join.with)))?;
                (Some(Joiner::new(join, input, other, lateness)?), join.widen(input, other))
            }
            None => (None, input.to_vec()),
        };
        let position = |name: &str| fields.iter().position(|field| field.name == name);
        let compile = |expr: &Expr| {
            Compiled::new(expr, &position).map_err(|unknown| build_error(format!("{unknown} in its input")))
        };
        let filter = stream.filter.as_ref().map(compile).transpose()?;
        let stage = match &stream.window {
            Some(window) => {
                let keys = stream
                    .keys
                    .iter()
                    .map(|key| position(key).ok_or_else(|| build_error(format!("no key field `{key}` in its input"))))
                    .collect::<Result<Vec<_>, _>>()?;
                // Aggregates become fields of the closed window's record: keys, window_start, window_end, then
                // one per aggregate call.
                let mut aggregates = Vec::new();
                let mut rewritten = Vec::new();
                for computed in &stream.select {
                    rewritten.push(
                        replace_calls(&computed.expr, &mut |call| {
                            let aggregate = Aggregate::from_call(call, &|argument| {
                                Compiled::new(argument, &position).map_err(|unknown| format!("{unknown} in its input"))
                            })?;
                            Some(aggregate.map(|aggregate| {
                                aggregates.push(aggregate);
                                format!("#aggregate{}", aggregates.len() - 1)
                            }))
                        })
                        .map_err(build_error)?,
                    );
                }
                let mut layout: Vec<String> = stream.keys.clone();
                layout.extend(["window_start".to_string(), "window_end".to_string()]);
                layout.extend((0..aggregates.len()).map(|index| format!("#aggregate{index}")));
                let select = rewritten
                    .iter()
                    .map(|expr| {
                        Compiled::new(expr, &|name| layout.iter().position(|known| known == name)).map_err(|unknown| {
                            build_error(format!("`{}` is neither a key nor an aggregate of the window", unknown.name))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Stage::Window { windows: Windows::new(window, keys, aggregates), select }
            }
            None => {
                let mut predictors = Vec::new();
                // The service of each predictor, in order.
                let mut services: Vec<String> = Vec::new();
                let mut columns: Vec<Column> = if !stream.keep.is_empty() {
                    stream.keep.iter().filter_map(|name| position(name)).map(Column::Copy).collect()
                } else if stream.select.is_empty() {
                    (0..fields.len()).map(Column::Copy).collect()
                } else {
                    Vec::new()
                };
                for computed in &stream.select {
                    let expr = replace_calls(&computed.expr, &mut |call| match call {
                        Expr::Call { function, .. } if function == "predict" => {
                            let Some(service) = call.predicted_service().map(str::to_string) else {
                                return Some(Err(build_error("`predict` takes a service".into())));
                            };
                            // A service called twice in one select (a prediction and a decision on it) is asked
                            // once per record.
                            if let Some(index) = services.iter().position(|known| *known == service) {
                                return Some(Ok(format!("#predict{index}")));
                            }
                            Some(
                                Predictor::load(&service, &stream.name, &fields, context)
                                    .map_err(|source| Error::Model {
                                        component: stream.name.clone(),
                                        source: Box::new(source),
                                    })
                                    .map(|predictor| {
                                        predictors.push(predictor);
                                        services.push(service);
                                        format!("#predict{}", predictors.len() - 1)
                                    }),
                            )
                        }
                        _ => None,
                    })?;
                    let compiled = Compiled::new(&expr, &|name| {
                        position(name).or_else(|| {
                            name.strip_prefix("#predict")
                                .and_then(|index| index.parse::<usize>().ok())
                                .map(|index| fields.len() + index)
                        })
                    })
                    .map_err(|unknown| build_error(format!("{unknown} in its input")))?;
                    columns.push(Column::Compute(compiled));
                }
                Stage::Project { columns, predictors }
            }
        };
        Ok(StreamOperator {
            join,
            filter,
            stage,
            time: event_time_position(&fields),
            clock: EventClock::with_idle(lateness, idle),
            fields: fields.clone(),
            late_warned: None,
        })
    }

    /// Filters, windows or projects joined records.
    fn handle(&mut self, records: Vec<Record>, now: Instant, out: &mut Vec<Record>, context: &Context) {
        let filter = self.filter.as_ref();
        match &mut self.stage {
            Stage::Window { windows, .. } => {
                let mut late = Vec::new();
                for record in records {
                    if filter.is_some_and(|filter| !filter.holds(&record)) {
                        continue;
                    }
                    let time = event_time(self.time, &record);
                    self.clock.observe(time, now);
                    if !windows.add(&record, time) {
                        // Never silently: the record goes to the dead letters with why.
                        let reason = format!(
                            "too late for its window: event time {}, its windows closed at {}",
                            stratum_core::eval::format_timestamp(time),
                            windows.closed_at().map_or_else(String::new, stratum_core::eval::format_timestamp),
                        );
                        let raw = serde_json::Value::Object(to_json_object(&record, &self.fields)).to_string();
                        late.push((reason, raw));
                    }
                }
                if !late.is_empty() {
                    let late_count = late.len() as u64;
                    context.dead_letter_all(late);
                    context.metrics.count_dropped(late_count);
                    if self.late_warned.is_none_or(|warned| now.duration_since(warned) >= LATE_WARNING_INTERVAL) {
                        self.late_warned = Some(now);
                        tracing::warn!(
                            component = context.component,
                            late = late_count,
                            "records arrived after their windows closed and went to the dead letters; if the \
                             producer runs slower than real time, give the stream `idle = never` or a longer \
                             `idle`, or a larger `lateness`"
                        );
                    }
                }
                let watermark = self.clock.watermark();
                self.close_at(watermark, out);
            }
            Stage::Project { columns, predictors } => {
                let mut kept: Vec<Record> = match filter {
                    Some(filter) => records.into_iter().filter(|record| filter.holds(record)).collect(),
                    None => records,
                };
                for predictor in predictors.iter() {
                    let predictions = predictor.predict(&kept, context);
                    for (record, prediction) in kept.iter_mut().zip(predictions) {
                        record.push(prediction);
                    }
                }
                out.extend(kept.into_iter().map(|record| {
                    columns
                        .iter()
                        .map(|column| match column {
                            Column::Copy(index) => record.get(*index).cloned().unwrap_or(Datum::Null),
                            Column::Compute(expr) => expr.evaluate(&record).into_owned(),
                        })
                        .collect()
                }));
            }
        }
    }

    fn close_at(&mut self, watermark: Option<i64>, out: &mut Vec<Record>) {
        let (Stage::Window { windows, select }, Some(watermark)) = (&mut self.stage, watermark) else { return };
        let mut closed = Vec::new();
        windows.close(watermark, &mut closed);
        for Closed { key, start, end, states } in closed {
            let mut row = key;
            let keys = row.len();
            row.push(Datum::Timestamp(start));
            row.push(Datum::Timestamp(end));
            row.extend(windows.aggregates.iter().zip(&states).map(|(aggregate, state)| aggregate.value(state)));
            let computed: Vec<Datum> = select.iter().map(|expr| expr.evaluate(&row).into_owned()).collect();
            row.truncate(keys + 2);
            row.extend(computed);
            out.push(row);
        }
    }
}

/// What a checkpoint keeps of a stream: its open windows, the records waiting to be joined, and the latest event
/// time it had seen (an idle stream's watermark moves on from it with the wall clock once records come again).
#[derive(serde::Deserialize)]
struct SavedStream {
    latest: Option<i64>,
    windows: Option<window::SavedWindows>,
    join: Option<join::SavedJoin>,
}

/// A stream as a checkpoint writes it, borrowed: the same fields as [`SavedStream`].
#[derive(serde::Serialize)]
struct StreamToSave<'a> {
    latest: Option<i64>,
    windows: Option<window::WindowsToSave<'a>>,
    join: Option<join::JoinToSave<'a>>,
}

/// The event time of a record: its time field, or the wall clock when it has none.
pub fn event_time(position: Option<usize>, record: &Record) -> i64 {
    match position.and_then(|position| record.get(position)) {
        Some(Datum::Timestamp(time)) => *time,
        _ => crate::record::wall_clock_milliseconds(),
    }
}

impl Operator for StreamOperator {
    fn process(&mut self, port: usize, batch: Batch, out: &mut Vec<Record>, context: &Context) {
        let now = Instant::now();
        let records = match &mut self.join {
            Some(joiner) => {
                let mut joined = Vec::new();
                joiner.add(port, into_records(batch), now, &mut joined);
                joined
            }
            None => into_records(batch),
        };
        if !records.is_empty() {
            self.handle(records, now, out, context);
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Record>, _context: &Context) {
        if let Some(joiner) = &mut self.join {
            joiner.evict();
        }
        self.clock.ticked(now);
        let watermark = self.clock.idle_watermark(now);
        self.close_at(watermark, out);
    }

    fn finish(&mut self, out: &mut Vec<Record>, _context: &Context) {
        self.close_at(Some(i64::MAX), out);
    }

    fn keeps_state(&self) -> bool {
        matches!(self.stage, Stage::Window { .. }) || self.join.is_some()
    }

    fn save(&self) -> Option<Vec<u8>> {
        let windows = match &self.stage {
            Stage::Window { windows, .. } => Some(windows.to_save()),
            Stage::Project { .. } => None,
        };
        let join = self.join.as_ref().map(Joiner::to_save);
        // A projection without a join holds nothing between batches.
        if windows.is_none() && join.is_none() {
            return None;
        }
        serde_json::to_vec(&StreamToSave { latest: self.clock.latest(), windows, join }).ok()
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), Cause> {
        let saved: SavedStream = serde_json::from_slice(state)?;
        let now = Instant::now();
        if let Some(latest) = saved.latest {
            self.clock.resume(latest, now);
        }
        match (&mut self.stage, saved.windows) {
            (Stage::Window { windows, .. }, Some(saved)) => windows.restore(saved)?,
            (Stage::Project { .. }, None) | (Stage::Window { .. }, None) => {}
            (Stage::Project { .. }, Some(_)) => return Err("it has windows, this stream has none".into()),
        }
        if let (Some(joiner), Some(saved)) = (&mut self.join, saved.join) {
            joiner.restore(saved, now);
        }
        Ok(())
    }
}

/// Rewrites `expr`, replacing the calls that `replace` names with a field of that name; stops at the first error.
fn replace_calls<E>(expr: &Expr, replace: &mut dyn FnMut(&Expr) -> Option<Result<String, E>>) -> Result<Expr, E> {
    if let Some(result) = replace(expr) {
        return result.map(|name| Expr::Field { name });
    }
    Ok(match expr {
        Expr::Unary { op, operand } => Expr::Unary { op: *op, operand: Box::new(replace_calls(operand, replace)?) },
        Expr::Binary { op, left, right } => Expr::Binary {
            op: *op,
            left: Box::new(replace_calls(left, replace)?),
            right: Box::new(replace_calls(right, replace)?),
        },
        Expr::Call { function, args } => Expr::Call {
            function: function.clone(),
            args: args.iter().map(|argument| replace_calls(argument, replace)).collect::<Result<_, _>>()?,
        },
        Expr::List { items } => {
            Expr::List { items: items.iter().map(|item| replace_calls(item, replace)).collect::<Result<_, _>>()? }
        }
        Expr::If { condition, then, otherwise } => Expr::If {
            condition: Box::new(replace_calls(condition, replace)?),
            then: Box::new(replace_calls(then, replace)?),
            otherwise: Box::new(replace_calls(otherwise, replace)?),
        },
        Expr::Literal { .. } | Expr::Field { .. } => expr.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_counts_as_time_passing_only_once_records_come_after_a_restore() {
        let start = Instant::now();
        let later = start + Duration::from_secs(30);
        // Quiet for 30 s after its last record: the wall clock moves the watermark on (lateness 1 s).
        let mut running = EventClock::new(1.0);
        running.observe(10_000, start);
        assert_eq!(running.idle_watermark(later), Some(39_000));
        // Taken up from a checkpoint: the 30 s it waited for its producers to reach it are not their silence.
        let mut resumed = EventClock::new(1.0);
        resumed.resume(10_000, start);
        assert_eq!(resumed.idle_watermark(later), Some(9_000));
        // Once a record comes, quiet counts again, from that record.
        resumed.observe(10_500, later);
        assert_eq!(resumed.idle_watermark(later + Duration::from_secs(2)), Some(11_500));
    }

    #[test]
    fn the_time_a_stopped_process_did_not_run_is_not_silence() {
        let start = Instant::now();
        let mut clock = EventClock::new(0.0);
        clock.observe(10_000, start);
        clock.ticked(start + Duration::from_secs(1));
        assert_eq!(clock.idle_watermark(start + Duration::from_secs(1)), Some(11_000));
        // Stopped for 20 s (no tick): the next tick does not count those 20 s.
        let woken = start + Duration::from_secs(21);
        clock.ticked(woken);
        assert_eq!(clock.idle_watermark(woken), Some(11_000));
        clock.ticked(woken + Duration::from_secs(1));
        assert_eq!(clock.idle_watermark(woken + Duration::from_secs(1)), Some(12_000));
    }
}
