//! Sinks that take each window once. A window can reach a sink twice: a stream that moved off a lost machine goes
//! on from the last copy of its checkpoint there and emits again a window the lost machine had emitted since; a
//! data plane that crashed between writing a window and its checkpoint emits it again when it takes the
//! checkpoint up. A file sink that reads a windowed stream keeps, per group key, the end of the latest window it
//! wrote ([`WindowLedger`]), and drops a window that does not end later: the window the sink holds is the first
//! one, whole.
//!
//! The ledger counts a window as written only once its file is synced, and is itself written (synced, in
//! `DATA_DIR/sinks/SINK.windows.json`) right after: a crash in between can still let one window through twice. A
//! sink whose write failed starts again from the ledger as written, so a window it took but did not write comes
//! again and is taken then.

use crate::Error;
use crate::record::Record;
use std::collections::BTreeMap;
use std::path::PathBuf;
use stratum_core::eval::Datum;
use stratum_core::ir::Application;
use stratum_core::types::Field;

/// The end of the latest window written per group key, and those taken since the last sync.
pub struct WindowLedger {
    keys: Vec<usize>,
    window_end: usize,
    written: BTreeMap<String, i64>,
    taken: BTreeMap<String, i64>,
    /// Where it is kept (none without a data directory: then it lasts as long as the process).
    file: Option<PathBuf>,
}

impl WindowLedger {
    /// The ledger of the sink `sink` reading `from` with `fields`, when `from` is a windowed stream; read back
    /// from `data_dir` when it was kept there.
    pub fn of(
        sink: &str,
        from: &str,
        fields: &[Field],
        application: &Application,
        data_dir: Option<&std::path::Path>,
    ) -> Result<Option<WindowLedger>, Error> {
        let Some(stream) = application.streams.iter().find(|stream| stream.name == from && stream.window.is_some())
        else {
            return Ok(None);
        };
        let position = |name: &str| fields.iter().position(|field| field.name == name);
        let (Some(window_end), Some(keys)) =
            (position("window_end"), stream.keys.iter().map(|key| position(key)).collect::<Option<Vec<_>>>())
        else {
            return Ok(None);
        };
        let file = data_dir.map(|directory| {
            directory.join("sinks").join(format!("{}.windows.json", crate::checkpoint::file_name(sink)))
        });
        let written = match &file {
            Some(file) => match std::fs::read(file) {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| Error::Checkpoint {
                    path: file.clone(),
                    source: format!("not a window ledger: {error}").into(),
                })?,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
                Err(error) => return Err(Error::io(format!("reading {}", file.display()))(error)),
            },
            None => BTreeMap::new(),
        };
        Ok(Some(WindowLedger { keys, window_end, written, taken: BTreeMap::new(), file }))
    }

    /// Whether `record` is a window the sink has not taken yet (it takes it, if so).
    pub fn take(&mut self, record: &Record) -> bool {
        let Some(Datum::Timestamp(end)) = record.get(self.window_end) else { return true };
        let key: String = self
            .keys
            .iter()
            .map(|position| record.get(*position).map_or_else(String::new, |datum| format!("{datum:?}")))
            .collect::<Vec<_>>()
            .join("\u{1f}");
        let latest = self.taken.get(&key).or_else(|| self.written.get(&key)).copied();
        if latest.is_some_and(|latest| *end <= latest) {
            return false;
        }
        self.taken.insert(key, *end);
        true
    }

    /// The windows taken are in synced files now: they count as written, and the ledger is kept.
    pub fn written(&mut self) -> Result<(), Error> {
        if self.taken.is_empty() {
            return Ok(());
        }
        self.written.append(&mut self.taken);
        let Some(file) = &self.file else { return Ok(()) };
        let bytes = serde_json::to_vec(&self.written)
            .map_err(|error| Error::Checkpoint { path: file.clone(), source: error.into() })?;
        crate::checkpoint::write_replacing(file, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratum_core::types::DataType;

    const APP: &str = r#"app ledger
schema Detection { camera: string  ts: timestamp }
source detections: generator { schema = Detection  rate = 1/s }
stream counts {
  from = detections
  window = tumbling(1 min) by camera
  select { vehicles = count() }
}
sink windows: jsonl { from = counts  path = "out/windows.jsonl" }
"#;

    fn ledger(data_dir: &std::path::Path) -> WindowLedger {
        let application = stratum_lang::check_text("ledger.stratum", APP).application;
        let fields = vec![
            Field::new("camera", DataType::String),
            Field::new("window_start", DataType::Timestamp),
            Field::new("window_end", DataType::Timestamp),
            Field::new("vehicles", DataType::Int),
        ];
        WindowLedger::of("windows", "counts", &fields, &application, Some(data_dir)).unwrap().unwrap()
    }

    fn window(camera: &str, end: i64) -> Record {
        vec![Datum::Text(camera.into()), Datum::Timestamp(end - 60_000), Datum::Timestamp(end), Datum::Int(3)]
    }

    #[test]
    fn a_window_is_taken_once_per_key_and_the_ledger_outlives_the_process() {
        let directory = tempfile::tempdir().unwrap();
        let mut first = ledger(directory.path());
        assert!(first.take(&window("cam-1", 60_000)));
        assert!(first.take(&window("cam-2", 60_000)), "another key's window of the same time");
        assert!(!first.take(&window("cam-1", 60_000)), "the same window again");
        assert!(first.take(&window("cam-1", 120_000)));
        assert!(!first.take(&window("cam-1", 60_000)), "an earlier window, after a later one");
        first.written().unwrap();
        // Written and kept: the next instance (a restart, a rollout) knows them.
        let mut next = ledger(directory.path());
        assert!(!next.take(&window("cam-1", 120_000)));
        assert!(next.take(&window("cam-1", 180_000)));
        // Taken but never written (the file write failed, the sink starts again): it may come again.
        let mut after_a_failure = ledger(directory.path());
        assert!(after_a_failure.take(&window("cam-1", 180_000)));
    }
}
