//! Keyed windows on event time: tumbling, sliding and session windows, closed by a watermark that trails the
//! latest event time by the stream's allowed lateness. A record that arrives after its windows have closed is
//! never silently merged into the wrong window: the stream sends it to the dead letters and counts it as dropped.

use super::aggregate::{Aggregate, State};
use crate::record::{Keyed, Record};
use std::collections::BTreeMap;
use stratum_core::Cause;
use stratum_core::ir::Window;

/// One key's values and its aggregates' states.
type KeyStates = (Record, Vec<State>);
/// A session as a checkpoint keeps it: its start, its last event's time and its states.
type SavedSession = (i64, i64, Vec<State>);
/// A [`SavedSession`], borrowed.
type SessionToSave<'a> = (i64, i64, &'a [State]);

/// The open windows as a checkpoint writes them, borrowed (a checkpoint copies nothing before it is encoded);
/// [`SavedWindows`] reads them back.
#[derive(serde::Serialize)]
pub struct WindowsToSave<'a> {
    open: Vec<(i64, &'a [KeyStates])>,
    sessions: Vec<(&'a Record, Vec<SessionToSave<'a>>)>,
    applied: i64,
}

/// What a checkpoint keeps of the open windows: each key's aggregate states, and how far they were closed.
#[derive(serde::Deserialize)]
pub struct SavedWindows {
    /// Tumbling and sliding windows: by start, each key's values and states.
    open: Vec<(i64, Vec<KeyStates>)>,
    /// Session windows: each key's values and its sessions as (start, last event, states).
    sessions: Vec<(Record, Vec<SavedSession>)>,
    applied: i64,
}

/// One closed window of one key, ready to be projected.
pub struct Closed {
    /// The key's values.
    pub key: Record,
    /// Where the window starts (milliseconds since 1970).
    pub start: i64,
    /// Where it ends.
    pub end: i64,
    /// The aggregates' states.
    pub states: Vec<State>,
}

enum Shape {
    Tumbling { size: i64 },
    Sliding { size: i64, slide: i64 },
    Session { gap: i64 },
}

struct Session {
    start: i64,
    last: i64,
    states: Vec<State>,
}

/// A stream's windows: those open, by start and key, and how they close.
pub struct Windows {
    shape: Shape,
    keys: Vec<usize>,
    /// The aggregates each window computes.
    pub aggregates: Vec<Aggregate>,
    /// Tumbling and sliding windows still open, by start.
    open: BTreeMap<i64, Keyed<Vec<State>>>,
    /// Session windows still open, per key, ordered by start.
    sessions: Keyed<Vec<Session>>,
    /// The watermark the windows were last closed at: nothing ending at or before it can change any more.
    applied: i64,
    /// No session ends before this (it may be earlier than the true earliest end, never later).
    earliest_session_end: i64,
}

fn milliseconds(seconds: f64) -> i64 {
    (seconds * 1000.0).round().max(1.0) as i64
}

impl Windows {
    /// Windows of `window`'s shape, keyed by the record positions `keys`, computing `aggregates`.
    pub fn new(window: &Window, keys: Vec<usize>, aggregates: Vec<Aggregate>) -> Windows {
        let shape = match window {
            Window::Tumbling { size } => Shape::Tumbling { size: milliseconds(size.0) },
            Window::Sliding { size, slide } => {
                Shape::Sliding { size: milliseconds(size.0), slide: milliseconds(slide.0) }
            }
            Window::Session { gap } => Shape::Session { gap: milliseconds(gap.0) },
        };
        Windows {
            shape,
            sessions: Keyed::new(keys.clone()),
            keys,
            aggregates,
            open: BTreeMap::new(),
            applied: i64::MIN,
            earliest_session_end: i64::MAX,
        }
    }

    /// The watermark the windows were last closed at, once they have been.
    pub fn closed_at(&self) -> Option<i64> {
        (self.applied != i64::MIN).then_some(self.applied)
    }

    /// Adds a record with event time `time`; returns false when it is too late for every window it belongs to.
    pub fn add(&mut self, record: &Record, time: i64) -> bool {
        match self.shape {
            Shape::Tumbling { size } => {
                let start = time.div_euclid(size) * size;
                if start + size <= self.applied {
                    return false;
                }
                self.add_to(start, record);
                true
            }
            Shape::Sliding { size, slide } => {
                let mut start = time.div_euclid(slide) * slide;
                let mut added = false;
                while start + size > time {
                    if start + size > self.applied {
                        self.add_to(start, record);
                        added = true;
                    }
                    start -= slide;
                }
                added
            }
            Shape::Session { gap } => {
                if time + gap <= self.applied {
                    return false;
                }
                let aggregates = &self.aggregates;
                let sessions = self.sessions.entry(record, Vec::new);
                // The sessions this event touches merge into one.
                let touching: Vec<usize> = (0..sessions.len())
                    .filter(|index| sessions[*index].start - gap <= time && time <= sessions[*index].last + gap)
                    .collect();
                let mut session =
                    Session { start: time, last: time, states: aggregates.iter().map(Aggregate::start).collect() };
                for index in touching.into_iter().rev() {
                    let merged = sessions.remove(index);
                    session.start = session.start.min(merged.start);
                    session.last = session.last.max(merged.last);
                    for ((aggregate, state), other) in aggregates.iter().zip(&mut session.states).zip(merged.states) {
                        aggregate.merge(state, other);
                    }
                }
                for (aggregate, state) in aggregates.iter().zip(&mut session.states) {
                    aggregate.add(state, record);
                }
                self.earliest_session_end = self.earliest_session_end.min(session.last.saturating_add(gap));
                let position = sessions.partition_point(|existing| existing.start < session.start);
                sessions.insert(position, session);
                true
            }
        }
    }

    /// The open windows' state, for a checkpoint.
    pub fn to_save(&self) -> WindowsToSave<'_> {
        WindowsToSave {
            open: self.open.iter().map(|(start, keyed)| (*start, keyed.entries())).collect(),
            sessions: self
                .sessions
                .iter()
                .map(|(key, list)| {
                    (key, list.iter().map(|session| (session.start, session.last, session.states.as_slice())).collect())
                })
                .collect(),
            applied: self.applied,
        }
    }

    /// Takes up the open windows of a checkpoint (of a stream with this very definition).
    pub fn restore(&mut self, saved: SavedWindows) -> Result<(), Cause> {
        let width = self.aggregates.len();
        let check = |states: &Vec<State>| {
            if states.len() == width {
                Ok(())
            } else {
                Err(Cause::from(format!("{} aggregates, not {width}", states.len())))
            }
        };
        for (start, entries) in saved.open {
            let keyed = self.open.entry(start).or_insert_with(|| Keyed::new(self.keys.clone()));
            for (key, states) in entries {
                check(&states)?;
                keyed.insert_key(key, states);
            }
        }
        if let Shape::Session { gap } = self.shape {
            for (key, list) in saved.sessions {
                let mut sessions = Vec::new();
                for (start, last, states) in list {
                    check(&states)?;
                    self.earliest_session_end = self.earliest_session_end.min(last.saturating_add(gap));
                    sessions.push(Session { start, last, states });
                }
                self.sessions.insert_key(key, sessions);
            }
        }
        self.applied = self.applied.max(saved.applied);
        Ok(())
    }

    fn add_to(&mut self, start: i64, record: &Record) {
        let aggregates = &self.aggregates;
        let keyed = self.open.entry(start).or_insert_with(|| Keyed::new(self.keys.clone()));
        let states = keyed.entry(record, || aggregates.iter().map(Aggregate::start).collect());
        for (aggregate, state) in aggregates.iter().zip(states.iter_mut()) {
            aggregate.add(state, record);
        }
    }

    /// Closes every window that ends at or before `watermark` (all of them when it is `i64::MAX`), in order of end.
    pub fn close(&mut self, watermark: i64, closed: &mut Vec<Closed>) {
        if watermark <= self.applied {
            return;
        }
        self.applied = watermark;
        match self.shape {
            Shape::Tumbling { size } | Shape::Sliding { size, .. } => {
                while let Some(entry) = self.open.first_entry() {
                    let start = *entry.key();
                    if start.saturating_add(size) > watermark {
                        break;
                    }
                    for (key, states) in entry.remove().into_entries() {
                        closed.push(Closed { key, start, end: start + size, states });
                    }
                }
            }
            Shape::Session { gap } => {
                // Most batches close no session: skip the scan until the earliest one can end.
                if watermark < self.earliest_session_end {
                    return;
                }
                let first = closed.len();
                let mut earliest = i64::MAX;
                self.sessions.retain(|key, list| {
                    list.retain_mut(|session| {
                        let end = session.last.saturating_add(gap);
                        if end > watermark {
                            earliest = earliest.min(end);
                            return true;
                        }
                        let states = std::mem::take(&mut session.states);
                        closed.push(Closed { key: key.clone(), start: session.start, end, states });
                        false
                    });
                    !list.is_empty()
                });
                self.earliest_session_end = earliest;
                closed[first..].sort_by_key(|window| window.end);
            }
        }
    }
}
