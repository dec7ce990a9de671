//! The windowed join of two streams: records of either side wait, per key, for records of the other side whose
//! event times are within the join's duration of theirs; each matching pair becomes one widened record. A join
//! of the latest match (`join = latest(weather) …`) lets each record of its own input through once, at once, with
//! the other side's latest record at or before it (or without one: its fields are then missing).

use super::{EventClock, event_time};
use crate::Error;
use crate::record::{Keyed, Record};
use std::collections::VecDeque;
use std::time::Instant;
use stratum_core::eval::Datum;
use stratum_core::ir::{Join, JoinMatch};
use stratum_core::types::Field;

/// The records of one key waiting on one side, with their event times, oldest first.
type Waiting = VecDeque<(i64, Record)>;

/// A join as a checkpoint writes it, borrowed; [`SavedJoin`] reads it back.
#[derive(serde::Serialize)]
pub struct JoinToSave<'a> {
    waiting: [&'a [(Record, Waiting)]; 2],
    latest: [Option<i64>; 2],
}

/// What a checkpoint keeps of a join: the records of each side still waiting, by key, and each side's latest event
/// time.
#[derive(serde::Deserialize)]
pub struct SavedJoin {
    waiting: [Vec<(Record, Waiting)>; 2],
    latest: [Option<i64>; 2],
}

/// The state of a stream's join: each side's records within the join's time bound, by key.
pub struct Joiner {
    /// Key positions in the records of each side.
    keys: [Vec<usize>; 2],
    times: [Option<usize>; 2],
    /// The positions of the other side's fields that the widened record adds (all but the keys).
    added: Vec<usize>,
    within: i64,
    matching: JoinMatch,
    waiting: [Keyed<Waiting>; 2],
    clocks: [EventClock; 2],
}

impl Joiner {
    /// A joiner of `join`, whose inputs have the fields `own` and `other`.
    pub fn new(join: &Join, own: &[Field], other: &[Field], lateness_seconds: f64) -> Result<Joiner, Error> {
        let positions = |fields: &[Field]| -> Result<Vec<usize>, Error> {
            join.keys
                .iter()
                .map(|key| {
                    fields.iter().position(|field| field.name == *key).ok_or_else(|| Error::Build {
                        component: join.with.clone(),
                        message: format!("no join key `{key}`"),
                    })
                })
                .collect()
        };
        let keys = [positions(own)?, positions(other)?];
        Ok(Joiner {
            waiting: [Keyed::new(keys[0].clone()), Keyed::new(keys[1].clone())],
            keys,
            times: [crate::record::event_time_position(own), crate::record::event_time_position(other)],
            added: (0..other.len()).filter(|index| !join.keys.contains(&other[*index].name)).collect(),
            within: (join.within.0 * 1000.0).round() as i64,
            matching: join.matching,
            clocks: [EventClock::new(lateness_seconds), EventClock::new(lateness_seconds)],
        })
    }

    /// Matches the records that arrived on `port` (0: the stream's own input, 1: the other side) with those
    /// waiting on the other side, then keeps them waiting for later records of the other side.
    pub fn add(&mut self, port: usize, records: Vec<Record>, now: Instant, joined: &mut Vec<Record>) {
        let side = port.min(1);
        let other = 1 - side;
        for record in records {
            let time = event_time(self.times[side], &record);
            self.clocks[side].observe(time, now);
            if self.matching == JoinMatch::Latest {
                self.add_latest(side, time, record, joined);
                continue;
            }
            if let Some(candidates) = self.waiting[other].find(&record, &self.keys[side]) {
                for (other_time, other_record) in candidates {
                    if (time - other_time).abs() <= self.within {
                        let (own, theirs) = if side == 0 { (&record, other_record) } else { (other_record, &record) };
                        joined.push(self.widen(own, theirs));
                    }
                }
            }
            self.waiting[side].entry(&record, VecDeque::new).push_back((time, record));
        }
    }

    /// A record of its own input with the other side's fields added.
    fn widen(&self, own: &Record, theirs: &Record) -> Record {
        let mut widened = own.clone();
        widened.extend(self.added.iter().map(|index| theirs[*index].clone()));
        widened
    }

    /// One record of a join of the latest match. A record of its own input comes out at once, joined with the
    /// other side's latest record of its key at or before it within the bound, or with the other side's fields
    /// missing when there is none; a record of the other side is kept for the records that come after it.
    fn add_latest(&mut self, side: usize, time: i64, record: Record, joined: &mut Vec<Record>) {
        if side == 1 {
            self.waiting[1].entry(&record, VecDeque::new).push_back((time, record));
            return;
        }
        let within = self.within;
        let latest = self.waiting[1].find(&record, &self.keys[0]).and_then(|candidates| {
            candidates
                .iter()
                .filter(|(other_time, _)| *other_time <= time && time - other_time <= within)
                .max_by_key(|(other_time, _)| *other_time)
        });
        joined.push(match latest {
            Some((_, theirs)) => self.widen(&record, theirs),
            None => {
                let mut alone = record;
                alone.extend(self.added.iter().map(|_| Datum::Null));
                alone
            }
        });
    }

    /// The records waiting on either side, for a checkpoint.
    pub fn to_save(&self) -> JoinToSave<'_> {
        JoinToSave {
            waiting: [self.waiting[0].entries(), self.waiting[1].entries()],
            latest: [0, 1].map(|side| self.clocks[side].latest()),
        }
    }

    /// Takes up the waiting records of a checkpoint.
    pub fn restore(&mut self, saved: SavedJoin, now: Instant) {
        for (side, entries) in saved.waiting.into_iter().enumerate() {
            for (key, waiting) in entries {
                self.waiting[side].insert_key(key, waiting);
            }
        }
        for (clock, latest) in self.clocks.iter_mut().zip(saved.latest) {
            if let Some(latest) = latest {
                clock.resume(latest, now);
            }
        }
    }

    /// Forgets records that no future record can match: older than the slower side's watermark by more than the
    /// join's duration.
    pub fn evict(&mut self) {
        let (Some(left), Some(right)) = (self.clocks[0].watermark(), self.clocks[1].watermark()) else { return };
        let horizon = left.min(right) - self.within;
        for side in &mut self.waiting {
            side.retain(|_, waiting| {
                waiting.retain(|(time, _)| *time >= horizon);
                !waiting.is_empty()
            });
        }
    }
}
