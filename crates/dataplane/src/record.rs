//! Records as they flow between components: positional values typed by the producer's schema, batched so that a
//! channel send carries many of them; decoding from JSON and CSV against a schema, encoding for sinks; hashing of
//! grouping keys.

use serde_json::{Map, Value};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use stratum_core::eval::{Datum, format_timestamp};
use stratum_core::types::{DataType, Field};

/// One event: the values of its schema's fields, in the schema's order.
pub type Record = Vec<Datum>;

/// Records sent together. Shared, because one output may feed several consumers; a consumer that is the only
/// owner takes the records without copying them ([`into_records`]).
pub type Batch = Arc<Vec<Record>>;

/// The records of a batch, copied only when another consumer still holds the batch.
pub fn into_records(batch: Batch) -> Vec<Record> {
    Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone())
}

/// The position of the field that gives a record's event time: `window_end` in the output of a window, otherwise
/// the first timestamp field. Records without one are timed by their arrival.
pub fn event_time_position(fields: &[Field]) -> Option<usize> {
    let is_timestamp = |field: &Field| *field.data_type.without_optional() == DataType::Timestamp;
    fields
        .iter()
        .position(|field| field.name == "window_end" && is_timestamp(field))
        .or_else(|| fields.iter().position(is_timestamp))
}

/// The approximate size of a record in bytes, for the byte counters.
pub fn encoded_size(record: &Record) -> usize {
    record
        .iter()
        .map(|value| match value {
            Datum::Text(text) => text.len() + 2,
            Datum::Null | Datum::Bool(_) => 4,
            _ => 8,
        })
        .sum()
}

/// Why a message, a row or a log entry is not a record of its schema: a sentence that names the field or the
/// byte, kept with the dead letter or answered to the caller.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BadRecord(pub String);

/// Decodes a JSON object against `fields`. A field the object lacks is missing (and must be optional); a value
/// that does not fit its type is an error that names the field.
pub fn from_json_object(object: &Map<String, Value>, fields: &[Field]) -> Result<Record, BadRecord> {
    fields
        .iter()
        .map(|field| {
            let value = object.get(&field.name);
            let datum = stratum_ml::data::json_cell(value, &field.data_type).ok_or_else(|| {
                BadRecord(format!(
                    "field `{}`: expected {}, found {}",
                    field.name,
                    field.data_type,
                    value.map(Value::to_string).unwrap_or_default()
                ))
            })?;
            if datum == Datum::Null && !matches!(field.data_type, DataType::Optional(_)) {
                return Err(BadRecord(format!("field `{}` is missing and not optional", field.name)));
            }
            Ok(datum)
        })
        .collect()
}

/// Decodes one line of JSON (an object) against `fields`.
pub fn from_json_line(line: &str, fields: &[Field]) -> Result<Record, BadRecord> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(object)) => from_json_object(&object, fields),
        Ok(other) => Err(BadRecord(format!("expected a JSON object, found {}", json_kind(&other)))),
        Err(error) => Err(BadRecord(format!("not JSON: {error}"))),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Decodes the cells of one CSV row; `positions[i]` is the column of `fields[i]`.
pub fn from_csv_cells(cells: &csv::StringRecord, positions: &[usize], fields: &[Field]) -> Result<Record, BadRecord> {
    fields
        .iter()
        .zip(positions)
        .map(|(field, position)| {
            let text = cells.get(*position).unwrap_or("");
            let datum = stratum_ml::data::parse_cell(text, &field.data_type).ok_or_else(|| {
                BadRecord(format!("field `{}`: expected {}, found `{text}`", field.name, field.data_type))
            })?;
            if datum == Datum::Null && !matches!(field.data_type, DataType::Optional(_)) {
                return Err(BadRecord(format!("field `{}` is missing and not optional", field.name)));
            }
            Ok(datum)
        })
        .collect()
}

/// A value as JSON: timestamps as RFC 3339 text, durations as seconds.
pub fn datum_to_json(value: &Datum) -> Value {
    match value {
        Datum::Null => Value::Null,
        Datum::Bool(value) => Value::Bool(*value),
        Datum::Int(value) => Value::from(*value),
        Datum::Float(value) | Datum::Duration(value) => {
            serde_json::Number::from_f64(*value).map(Value::Number).unwrap_or(Value::Null)
        }
        Datum::Text(text) => Value::String(text.clone()),
        Datum::Timestamp(milliseconds) => Value::String(format_timestamp(*milliseconds)),
    }
}

/// A record as a JSON object with its field names.
pub fn to_json_object(record: &Record, fields: &[Field]) -> Map<String, Value> {
    fields.iter().zip(record).map(|(field, value)| (field.name.clone(), datum_to_json(value))).collect()
}

/// A value as one CSV cell (missing values are empty).
pub fn datum_to_cell(value: &Datum) -> String {
    match value {
        Datum::Null => String::new(),
        other => stratum_core::eval::text_of(other),
    }
}

/// Encodes records compactly for a log entry or the wire: a record count, then per record its value count and
/// each value as a tag byte and its bytes (little endian).
pub fn encode_batch(records: &[Record]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(records.iter().map(encoded_size).sum::<usize>() + 4 + records.len() * 2);
    bytes.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for record in records {
        bytes.extend_from_slice(&(record.len() as u16).to_le_bytes());
        for value in record {
            match value {
                Datum::Null => bytes.push(0),
                Datum::Bool(value) => bytes.extend_from_slice(&[1, u8::from(*value)]),
                Datum::Int(value) => {
                    bytes.push(2);
                    bytes.extend_from_slice(&value.to_le_bytes());
                }
                Datum::Float(value) => {
                    bytes.push(3);
                    bytes.extend_from_slice(&value.to_le_bytes());
                }
                Datum::Text(text) => {
                    bytes.push(4);
                    bytes.extend_from_slice(&(text.len() as u32).to_le_bytes());
                    bytes.extend_from_slice(text.as_bytes());
                }
                Datum::Timestamp(value) => {
                    bytes.push(5);
                    bytes.extend_from_slice(&value.to_le_bytes());
                }
                Datum::Duration(value) => {
                    bytes.push(6);
                    bytes.extend_from_slice(&value.to_le_bytes());
                }
            }
        }
    }
    bytes
}

/// Decodes what [`encode_batch`] wrote; an error says what was wrong (bytes from the wire are not trusted).
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Record>, BadRecord> {
    let mut at = 0usize;
    let mut take = |count: usize| -> Result<&[u8], BadRecord> {
        let slice = bytes.get(at..at + count).ok_or_else(|| BadRecord(format!("a batch cut short at byte {at}")))?;
        at += count;
        Ok(slice)
    };
    let eight = |slice: &[u8]| <[u8; 8]>::try_from(slice).unwrap_or_default();
    let count = u32::from_le_bytes(take(4)?.try_into().unwrap_or_default()) as usize;
    let mut records = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let width = u16::from_le_bytes(take(2)?.try_into().unwrap_or_default()) as usize;
        let mut record = Vec::with_capacity(width);
        for _ in 0..width {
            let tag = take(1)?[0];
            record.push(match tag {
                0 => Datum::Null,
                1 => Datum::Bool(take(1)?[0] != 0),
                2 => Datum::Int(i64::from_le_bytes(eight(take(8)?))),
                3 => Datum::Float(f64::from_le_bytes(eight(take(8)?))),
                4 => {
                    let length = u32::from_le_bytes(take(4)?.try_into().unwrap_or_default()) as usize;
                    let text =
                        std::str::from_utf8(take(length)?).map_err(|_| BadRecord("text that is not UTF-8".into()))?;
                    Datum::Text(text.to_string())
                }
                5 => Datum::Timestamp(i64::from_le_bytes(eight(take(8)?))),
                6 => Datum::Duration(f64::from_le_bytes(eight(take(8)?))),
                other => return Err(BadRecord(format!("unknown value tag {other}"))),
            });
        }
        records.push(record);
    }
    Ok(records)
}

/// A fast, deterministic hash of the values at `positions` (FxHash's mixing step). Grouping keys are hashed for
/// every event, so this is on the hot path of every window and join.
pub fn hash_key(record: &[Datum], positions: &[usize]) -> u64 {
    hash_values(positions.iter().map(|position| record.get(*position).unwrap_or(&Datum::Null)))
}

/// The hash of [`hash_key`] over values given in key order.
fn hash_values<'a>(values: impl Iterator<Item = &'a Datum>) -> u64 {
    let mut hash = 0u64;
    let mut mix = |word: u64| hash = (hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    for value in values {
        match value {
            Datum::Null => mix(0),
            Datum::Bool(value) => mix(1 + u64::from(*value)),
            Datum::Int(value) | Datum::Timestamp(value) => mix(*value as u64),
            Datum::Float(value) | Datum::Duration(value) => mix(value.to_bits()),
            Datum::Text(text) => {
                let bytes = text.as_bytes();
                let mut chunks = bytes.chunks_exact(8);
                for chunk in &mut chunks {
                    mix(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
                }
                let mut last = [0u8; 8];
                last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
                mix(u64::from_le_bytes(last) ^ (bytes.len() as u64) << 56);
            }
        }
    }
    hash
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Maps keyed by a value that is already a hash.
pub type PrehashedMap<V> = std::collections::HashMap<u64, V, BuildHasherDefault<PrehashedHasher>>;

/// State per grouping key: the key's values (taken from the first record with that key) and a value. Lookups
/// hash the key fields of a record and compare them in place, so finding the state of an existing key copies
/// nothing.
pub struct Keyed<V> {
    positions: Vec<usize>,
    first: PrehashedMap<u32>,
    /// For each slot, the next slot whose key has the same hash (a chain for the rare collisions).
    next: Vec<u32>,
    slots: Vec<(Record, V)>,
}

const END: u32 = u32::MAX;

impl<V> Keyed<V> {
    /// State keyed by the values at `positions` of the records given to [`Keyed::entry`].
    pub fn new(positions: Vec<usize>) -> Keyed<V> {
        Keyed { positions, first: PrehashedMap::default(), next: Vec::new(), slots: Vec::new() }
    }

    /// The state for the key of `record`, made by `create` if the key is new.
    pub fn entry(&mut self, record: &[Datum], create: impl FnOnce() -> V) -> &mut V {
        let hash = hash_key(record, &self.positions);
        let mut slot = self.first.get(&hash).copied().unwrap_or(END);
        let mut last = END;
        while slot != END {
            let key = &self.slots[slot as usize].0;
            if self.positions.iter().enumerate().all(|(index, position)| record.get(*position) == key.get(index)) {
                return &mut self.slots[slot as usize].1;
            }
            last = slot;
            slot = self.next[slot as usize];
        }
        let new = self.slots.len() as u32;
        let key = self.positions.iter().map(|position| record.get(*position).cloned().unwrap_or(Datum::Null)).collect();
        self.slots.push((key, create()));
        self.next.push(END);
        if last == END {
            self.first.insert(hash, new);
        } else {
            self.next[last as usize] = new;
        }
        &mut self.slots[new as usize].1
    }

    /// The state for the key that `record` has at `positions` (which may differ from this map's own positions:
    /// the other side of a join looks up by its own layout).
    pub fn find(&self, record: &[Datum], positions: &[usize]) -> Option<&V> {
        let mut slot = self.first.get(&hash_key(record, positions)).copied().unwrap_or(END);
        while slot != END {
            let (key, value) = &self.slots[slot as usize];
            if positions.iter().enumerate().all(|(index, position)| record.get(*position) == key.get(index)) {
                return Some(value);
            }
            slot = self.next[slot as usize];
        }
        None
    }

    /// Keeps the keys whose state `keep` says to keep (it sees the key's values and may change the state), in
    /// their order.
    pub fn retain(&mut self, mut keep: impl FnMut(&Record, &mut V) -> bool) {
        let slots = std::mem::take(&mut self.slots);
        self.first.clear();
        self.next.clear();
        for (key, mut value) in slots {
            if keep(&key, &mut value) {
                let hash = hash_values(key.iter());
                let new = self.slots.len() as u32;
                self.slots.push((key, value));
                self.next.push(self.first.insert(hash, new).unwrap_or(END));
            }
        }
    }

    /// Adds a key, given by its values in this map's key order, with its state: how a checkpoint's state is
    /// restored. A key that is there already keeps its state.
    pub fn insert_key(&mut self, key: Record, value: V) {
        if self.find(&key, &(0..key.len()).collect::<Vec<_>>()).is_some() {
            return;
        }
        let hash = hash_values(key.iter());
        let new = self.slots.len() as u32;
        self.slots.push((key, value));
        self.next.push(self.first.insert(hash, new).unwrap_or(END));
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every key's values and state, in the order the keys first appeared.
    pub fn into_entries(self) -> impl Iterator<Item = (Record, V)> {
        self.slots.into_iter()
    }

    /// Every key with its value, in the order the keys first appeared.
    pub fn iter(&self) -> impl Iterator<Item = &(Record, V)> {
        self.slots.iter()
    }

    /// Every key's values and state, in the order the keys first appeared.
    pub fn entries(&self) -> &[(Record, V)] {
        &self.slots
    }
}

/// Milliseconds since the Unix epoch by the wall clock: the event time of a record that carries none.
pub(crate) fn wall_clock_milliseconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_state_finds_equal_keys_and_keeps_first_appearance_order() {
        let mut keyed: Keyed<u32> = Keyed::new(vec![1]);
        for name in ["b", "a", "b", "c", "a", "b"] {
            *keyed.entry(&[Datum::Int(0), Datum::Text(name.into())], || 0) += 1;
        }
        let counts: Vec<(String, u32)> =
            keyed.into_entries().map(|(key, count)| (stratum_core::eval::text_of(&key[0]), count)).collect();
        assert_eq!(counts, [("b".into(), 3), ("a".into(), 2), ("c".into(), 1)]);
    }

    #[test]
    fn many_keys_each_keep_their_own_state() {
        let mut keyed: Keyed<u32> = Keyed::new(vec![0]);
        for round in 0..3 {
            for value in 0..10_000 {
                *keyed.entry(&[Datum::Int(value)], || 0) += 1;
            }
            assert_eq!(keyed.len(), 10_000, "round {round}");
        }
        assert!(keyed.iter().all(|(_, count)| *count == 3));
    }

    #[test]
    fn batches_round_trip_through_the_binary_encoding() {
        let records = vec![
            vec![Datum::Null, Datum::Bool(true), Datum::Int(-3), Datum::Float(2.5)],
            vec![Datum::Text("ünïcode".into()), Datum::Timestamp(1_767_225_600_000), Datum::Duration(0.25)],
            vec![],
        ];
        let bytes = encode_batch(&records);
        assert_eq!(decode_batch(&bytes).unwrap(), records);
        for cut in 0..bytes.len() {
            assert!(decode_batch(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn json_decoding_names_the_field_that_does_not_fit() {
        let fields = vec![Field::new("camera", DataType::String), Field::new("speed", DataType::Float)];
        assert_eq!(
            from_json_line(r#"{"camera": "a", "speed": 1}"#, &fields).unwrap(),
            vec![Datum::Text("a".into()), Datum::Float(1.0)]
        );
        assert!(from_json_line(r#"{"camera": "a", "speed": "fast"}"#, &fields).unwrap_err().0.contains("`speed`"));
        assert!(from_json_line(r#"{"camera": "a"}"#, &fields).unwrap_err().0.contains("not optional"));
        assert!(from_json_line("[1]", &fields).unwrap_err().0.contains("an array"));
    }
}
