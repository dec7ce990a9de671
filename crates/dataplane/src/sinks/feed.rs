//! Dashboard feeds: the latest records of a stream in a bounded in-memory series, which a dashboard panel reads
//! while the pipeline runs. Old records fall off the front; memory stays bounded whatever the rate.

use crate::Error;
use crate::ack::Acks;
use crate::component::{BoxFuture, Context, Sink};
use crate::record::{Batch, Record};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use stratum_core::sync::lock;
use stratum_core::types::Field;

/// Records kept per feed unless a panel asks for more.
pub const DEFAULT_FEED_LENGTH: usize = 1000;

/// A shared, bounded series of records.
#[derive(Clone)]
pub struct Feed {
    /// The fields of its records.
    pub fields: Arc<Vec<Field>>,
    capacity: usize,
    records: Arc<Mutex<VecDeque<Record>>>,
}

impl Feed {
    /// An empty feed of records with `fields`, keeping the latest `capacity`.
    pub fn new(fields: Vec<Field>, capacity: usize) -> Feed {
        Feed { fields: Arc::new(fields), capacity: capacity.max(1), records: Arc::new(Mutex::new(VecDeque::new())) }
    }

    /// The records held now, oldest first.
    pub fn latest(&self) -> Vec<Record> {
        lock(&self.records).iter().cloned().collect()
    }

    /// The newest `count` records held now, oldest first.
    pub fn newest(&self, count: usize) -> Vec<Record> {
        let held = lock(&self.records);
        held.iter().skip(held.len().saturating_sub(count)).cloned().collect()
    }

    fn push(&self, records: &[Record]) {
        let mut held = lock(&self.records);
        let skip = records.len().saturating_sub(self.capacity);
        for record in &records[skip..] {
            if held.len() == self.capacity {
                held.pop_front();
            }
            held.push_back(record.clone());
        }
    }
}

/// The sink that fills a [`Feed`].
pub struct FeedSink(pub Feed);

impl Sink for FeedSink {
    fn write<'a>(&'a mut self, batch: Batch, acks: Acks, context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            context.metrics.count_in(batch.len(), batch.iter().map(crate::record::encoded_size).sum());
            self.0.push(&batch);
            // A feed is a view, not a place records are kept: it never holds an acknowledgement back.
            acks.done();
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratum_core::eval::Datum;

    #[test]
    fn a_feed_keeps_its_newest_records_in_order() {
        let feed = Feed::new(Vec::new(), 3);
        let records: Vec<Record> = (0..5).map(|index| vec![Datum::Int(index)]).collect();
        feed.push(&records);
        let values = |records: Vec<Record>| records.into_iter().map(|record| record[0].clone()).collect::<Vec<_>>();
        assert_eq!(values(feed.latest()), [Datum::Int(2), Datum::Int(3), Datum::Int(4)]);
        assert_eq!(values(feed.newest(2)), [Datum::Int(3), Datum::Int(4)]);
        assert_eq!(feed.newest(10).len(), 3);
    }
}
