//! The control plane's durable state: an embedded SQLite database with numbered migrations. It keeps the versions
//! of each application (its IR and plan), the events of its life (started, trained, stopped, failed …) and the
//! models it serves, so that a restarted control plane knows what it was running. SQLite is the embedded default;
//! PostgreSQL is the store that outlives its machine (`shared`), shared by replicas of which one leads.

mod shared;
mod sql;
mod tls;

use crate::Error;
use rusqlite::Connection;
use serde::Serialize;
use sql::{Row, Sql, Sqlite, Value, sqlite_error, values};
use std::path::Path;
use std::sync::{Arc, Mutex};
use stratum_core::events::EventKind;
use stratum_core::sync::lock;

/// The schema, one migration per entry, applied in order; `PRAGMA user_version` remembers how many ran. Never edit
/// an entry that has shipped: add one.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE app_versions (
        app TEXT NOT NULL,
        version INTEGER NOT NULL,
        created INTEGER NOT NULL,
        ir TEXT NOT NULL,
        plan TEXT NOT NULL,
        PRIMARY KEY (app, version)
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL,
        at_milliseconds INTEGER NOT NULL,
        kind TEXT NOT NULL,
        component TEXT,
        message TEXT NOT NULL
    );
    CREATE INDEX events_by_app ON events (app, id);
    CREATE TABLE served_models (
        app TEXT NOT NULL,
        service TEXT NOT NULL,
        model TEXT NOT NULL,
        version INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        data_sha256 TEXT NOT NULL,
        PRIMARY KEY (app, service)
    );",
    "CREATE TABLE agents (
        name TEXT PRIMARY KEY,
        description TEXT NOT NULL,
        updated INTEGER NOT NULL
    );",
    "CREATE TABLE migrations (
        app TEXT NOT NULL,
        version INTEGER NOT NULL,
        component TEXT NOT NULL,
        tier TEXT NOT NULL,
        PRIMARY KEY (app, version, component)
    );",
    "CREATE TABLE added_instances (
        app TEXT NOT NULL,
        version INTEGER NOT NULL,
        component TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (app, version, component)
    );",
    "CREATE TABLE agent_keys (
        name TEXT PRIMARY KEY,
        key_sha256 TEXT NOT NULL
    );",
    "CREATE TABLE checkpoints (
        component TEXT NOT NULL,
        handed INTEGER NOT NULL,
        holder TEXT NOT NULL,
        file TEXT NOT NULL,
        PRIMARY KEY (component, handed)
    );",
];

/// A stream's state as the control plane keeps it: the newest checkpoint an agent sent of it, or a state handed
/// over that waits for the stream's next agent.
#[derive(Clone, Debug, PartialEq)]
pub struct KeptCheckpoint {
    /// The stream.
    pub component: String,
    /// The agent that holds that state; `None` for a state handed over (no agent holds it until the next takes it).
    pub holder: Option<String>,
    /// The checkpoint file's text.
    pub file: String,
}

/// A change to the kept states: what a heartbeat or a move made.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckpointChange {
    /// Keep this state (in place of the one kept for its component).
    Keep(KeptCheckpoint),
    /// That state (the checkpoint held by an agent, or the state handed over) is no longer kept.
    Forget {
        /// The stream.
        component: String,
        /// The state handed over, not the checkpoint an agent holds.
        handed: bool,
    },
}

/// One thing that happened to an application.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Its id, increasing.
    pub id: i64,
    /// When, in milliseconds since 1970.
    pub at_milliseconds: i64,
    /// What happened.
    pub kind: EventKind,
    /// The component (or agent) it concerns, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// What happened, for people.
    pub message: String,
}

/// The model a service serves.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServedModel {
    /// The service.
    pub service: String,
    /// Its model.
    pub model: String,
    /// The model's version.
    pub version: u32,
    /// The sha256 of the artifact file it served.
    pub sha256: String,
    /// The sha256 of the model's training data.
    pub data_sha256: String,
}

/// The application name of a control plane's own events while it runs none (agents joining a new server, say);
/// they show among every application's events.
pub const NO_APP: &str = "-";

/// The control plane's state store: applications, versions, events, agents, served models and kept checkpoints —
/// in an embedded SQLite file, or in PostgreSQL shared by several replicas of the control plane ([`Shared`]).
/// Cloning it shares the same store.
#[derive(Clone)]
pub struct StateStore {
    backend: Arc<Backend>,
}

enum Backend {
    Sqlite(Mutex<Connection>),
    // Boxed: the connection settings are large, and there is one store per process.
    Postgres(Box<Shared>),
}

/// The state store on PostgreSQL, with the lead among replicas and the files they share.
pub use shared::{Leader, Postgres as Shared};

/// The wall clock in milliseconds since 1970: when events happen, and what they are compared with.
pub fn now_milliseconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64)
}

impl StateStore {
    /// Opens (or creates) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<StateStore, Error> {
        if let Some(directory) = path.parent() {
            std::fs::create_dir_all(directory)
                .map_err(|error| Error::State(format!("cannot create {}: {error}", directory.display()).into()))?;
        }
        let connection =
            Connection::open(path).map_err(|error| Error::State(format!("{}: {error}", path.display()).into()))?;
        // Write-ahead logging: readers (the API) do not wait for writers (the loops). Every commit is synced
        // (`FULL`): the store holds what agents acknowledged their sources for (checkpoint copies), so not even a
        // power cut of this machine may lose a commit.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| connection.pragma_update(None, "synchronous", "FULL"))
            .map_err(sqlite_error)?;
        StateStore::migrated(connection)
    }

    /// Connects to a store on PostgreSQL at `url` and brings its schema up to date: the store several replicas of
    /// the control plane share (see [`Shared`]). With `authority` (PEM), over TLS that trusts it alone.
    pub fn connect(url: &str, authority: Option<&str>) -> Result<StateStore, Error> {
        Ok(StateStore { backend: Arc::new(Backend::Postgres(Box::new(Shared::connect(url, authority)?))) })
    }

    /// A store that lives in memory only (tests).
    pub fn in_memory() -> Result<StateStore, Error> {
        StateStore::migrated(Connection::open_in_memory().map_err(sqlite_error)?)
    }

    fn migrated(mut connection: Connection) -> Result<StateStore, Error> {
        let applied: i64 =
            connection.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(sqlite_error)?;
        let applied = usize::try_from(applied).unwrap_or(usize::MAX);
        if applied > MIGRATIONS.len() {
            return Err(Error::State(
                format!(
                    "the state store has schema version {applied}, newer than this Stratum knows ({}); upgrade Stratum",
                    MIGRATIONS.len()
                )
                .into(),
            ));
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            let transaction = connection.transaction().map_err(sqlite_error)?;
            transaction.execute_batch(migration).map_err(sqlite_error)?;
            transaction.pragma_update(None, "user_version", (index + 1) as i64).map_err(sqlite_error)?;
            transaction.commit().map_err(sqlite_error)?;
            tracing::info!(migration = index + 1, "state store migrated");
        }
        Ok(StateStore { backend: Arc::new(Backend::Sqlite(Mutex::new(connection))) })
    }

    /// The store on PostgreSQL that replicas share, when it is one.
    pub fn shared(&self) -> Option<&Shared> {
        match self.backend.as_ref() {
            Backend::Postgres(shared) => Some(shared),
            Backend::Sqlite(_) => None,
        }
    }

    /// Runs `body` in one transaction. A write on a shared store is fenced: it fails, writing nothing, once this
    /// replica no longer leads.
    fn transaction<R: Send>(
        &self,
        write: bool,
        body: impl FnOnce(&mut dyn Sql) -> Result<R, Error> + Send,
    ) -> Result<R, Error> {
        match self.backend.as_ref() {
            Backend::Sqlite(connection) => {
                let mut connection = lock(connection);
                let transaction = connection.transaction().map_err(sqlite_error)?;
                let answer = body(&mut Sqlite(&transaction))?;
                transaction.commit().map_err(sqlite_error)?;
                Ok(answer)
            }
            Backend::Postgres(shared) => shared.transaction(write, body),
        }
    }

    fn write<R: Send>(&self, body: impl FnOnce(&mut dyn Sql) -> Result<R, Error> + Send) -> Result<R, Error> {
        self.transaction(true, body)
    }

    fn read(&self, sql: &str, values: &[Value]) -> Result<Vec<Row>, Error> {
        self.transaction(false, |transaction| transaction.query(sql, values))
    }

    /// Records a version of an application unless the latest one has the same IR and plan; returns its number.
    pub fn record_version(&self, app: &str, ir: &str, plan: &str) -> Result<u32, Error> {
        self.write(|sql| {
            let latest = sql.query(
                "SELECT version, ir, plan FROM app_versions WHERE app = ?1 ORDER BY version DESC LIMIT 1",
                values![app],
            )?;
            let latest = match latest.first() {
                Some(row) => Some((row.u32(0)?, row.text(1)?, row.text(2)?)),
                None => None,
            };
            if let Some((version, latest_ir, latest_plan)) = &latest
                && latest_ir == ir
                && latest_plan == plan
            {
                return Ok(*version);
            }
            let version = latest.map_or(1, |(version, _, _)| version + 1);
            sql.execute(
                "INSERT INTO app_versions (app, version, created, ir, plan) VALUES (?1, ?2, ?3, ?4, ?5)",
                values![app, version, now_milliseconds() / 1000, ir, plan],
            )?;
            Ok(version)
        })
    }

    /// The latest version of the most recently changed application: (app, version, IR, plan).
    pub fn latest_deployment(&self) -> Result<Option<(String, u32, String, String)>, Error> {
        let rows = self
            .read("SELECT app, version, ir, plan FROM app_versions ORDER BY created DESC, version DESC LIMIT 1", &[])?;
        rows.first().map(|row| Ok((row.text(0)?, row.u32(1)?, row.text(2)?, row.text(3)?))).transpose()
    }

    /// Remembers an agent that joined (its description as JSON), so that a restarted control plane knows it.
    pub fn record_agent(&self, name: &str, description: &str) -> Result<(), Error> {
        self.write(|sql| {
            sql.execute(
                "INSERT INTO agents (name, description, updated) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET description = excluded.description, updated = excluded.updated",
                values![name, description, now_milliseconds()],
            )
        })?;
        Ok(())
    }

    /// The sha256 of the key issued to the agent of that name, if one was.
    pub fn agent_key(&self, name: &str) -> Result<Option<String>, Error> {
        let rows = self.read("SELECT key_sha256 FROM agent_keys WHERE name = ?1", values![name])?;
        rows.first().map(|row| row.text(0)).transpose()
    }

    /// Remembers the sha256 of the key issued to an agent (the key itself is never stored).
    pub fn record_agent_key(&self, name: &str, key_sha256: &str) -> Result<(), Error> {
        self.write(|sql| {
            sql.execute(
                "INSERT INTO agent_keys (name, key_sha256) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET key_sha256 = excluded.key_sha256",
                values![name, key_sha256],
            )
        })?;
        Ok(())
    }

    /// Forgets an agent — its description and its key, so that the next join under its name is a new machine
    /// with a new key; whether there was anything to forget.
    pub fn forget_agent(&self, name: &str) -> Result<bool, Error> {
        self.write(|sql| {
            let keys = sql.execute("DELETE FROM agent_keys WHERE name = ?1", values![name])?;
            let agents = sql.execute("DELETE FROM agents WHERE name = ?1", values![name])?;
            Ok(keys + agents > 0)
        })
    }

    /// Every agent that ever joined: (name, description as JSON).
    pub fn agents(&self) -> Result<Vec<(String, String)>, Error> {
        let rows = self.read("SELECT name, description FROM agents ORDER BY name", &[])?;
        rows.iter().map(|row| Ok((row.text(0)?, row.text(1)?))).collect()
    }

    /// Makes changes to the kept states of streams, all or none: they are what a stream goes on from when its
    /// agent is lost, and agents acknowledge what a kept checkpoint holds once this returns.
    pub fn change_checkpoints(&self, changes: &[CheckpointChange]) -> Result<(), Error> {
        if changes.is_empty() {
            return Ok(());
        }
        self.write(|sql| {
            for change in changes {
                match change {
                    CheckpointChange::Keep(kept) => sql.execute(
                        "INSERT INTO checkpoints (component, handed, holder, file) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (component, handed) DO UPDATE SET holder = excluded.holder, file = excluded.file",
                        values![
                            &kept.component,
                            kept.holder.is_none(),
                            kept.holder.as_deref().unwrap_or_default(),
                            &kept.file
                        ],
                    ),
                    CheckpointChange::Forget { component, handed } => sql.execute(
                        "DELETE FROM checkpoints WHERE component = ?1 AND handed = ?2",
                        values![component, *handed],
                    ),
                }?;
            }
            Ok(())
        })
    }

    /// Every kept state of a stream.
    pub fn kept_checkpoints(&self) -> Result<Vec<KeptCheckpoint>, Error> {
        let rows =
            self.read("SELECT component, handed, holder, file FROM checkpoints ORDER BY component, handed", &[])?;
        rows.iter()
            .map(|row| {
                let holder = row.text(2)?;
                Ok(KeptCheckpoint {
                    component: row.text(0)?,
                    holder: (!row.flag(1)?).then_some(holder),
                    file: row.text(3)?,
                })
            })
            .collect()
    }

    /// Remembers that a policy moved a component of a version to another tier, so that a restarted control plane
    /// keeps it there.
    pub fn record_migration(&self, app: &str, version: u32, component: &str, tier: &str) -> Result<(), Error> {
        self.write(|sql| {
            sql.execute(
                "INSERT INTO migrations (app, version, component, tier) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (app, version, component) DO UPDATE SET tier = excluded.tier",
                values![app, version, component, tier],
            )
        })?;
        Ok(())
    }

    /// The components policies moved in a version: (component, tier).
    pub fn migrations(&self, app: &str, version: u32) -> Result<Vec<(String, String)>, Error> {
        let rows = self.read(
            "SELECT component, tier FROM migrations WHERE app = ?1 AND version = ?2 ORDER BY component",
            values![app, version],
        )?;
        rows.iter().map(|row| Ok((row.text(0)?, row.text(1)?))).collect()
    }

    /// Remembers how many instances a policy added for a component of a version on machines beyond the plan's.
    pub fn record_added_instances(&self, app: &str, version: u32, component: &str, count: u32) -> Result<(), Error> {
        self.write(|sql| {
            sql.execute(
                "INSERT INTO added_instances (app, version, component, count) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (app, version, component) DO UPDATE SET count = excluded.count",
                values![app, version, component, count],
            )
        })?;
        Ok(())
    }

    /// The instances policies added in a version: (component, count).
    pub fn added_instances(&self, app: &str, version: u32) -> Result<Vec<(String, u32)>, Error> {
        let rows = self.read(
            "SELECT component, count FROM added_instances WHERE app = ?1 AND version = ?2 ORDER BY component",
            values![app, version],
        )?;
        rows.iter().map(|row| Ok((row.text(0)?, row.u32(1)?))).collect()
    }

    /// Records an event (and logs it).
    pub fn record_event(
        &self,
        app: &str,
        kind: EventKind,
        component: Option<&str>,
        message: &str,
    ) -> Result<(), Error> {
        tracing::info!(app, kind = kind.as_str(), component, message, "event");
        self.write(|sql| {
            sql.execute(
                "INSERT INTO events (app, at_milliseconds, kind, component, message) VALUES (?1, ?2, ?3, ?4, ?5)",
                values![app, now_milliseconds(), kind.as_str(), component, message],
            )
        })?;
        Ok(())
    }

    /// The latest `limit` events of an application (with the control plane's own, see [`NO_APP`]), oldest first.
    pub fn events(&self, app: &str, limit: usize) -> Result<Vec<Event>, Error> {
        let rows = self.read(
            "SELECT id, at_milliseconds, kind, component, message FROM events WHERE app = ?1 OR app = ?2
             ORDER BY id DESC LIMIT ?3",
            values![app, NO_APP, limit as i64],
        )?;
        let mut events = rows.iter().map(|row| event_at(row, 0)).collect::<Result<Vec<Event>, Error>>()?;
        events.reverse();
        Ok(events)
    }

    /// The latest `limit` events of one component, of any application, oldest first.
    pub fn component_events(&self, component: &str, limit: usize) -> Result<Vec<(String, Event)>, Error> {
        let rows = self.read(
            "SELECT app, id, at_milliseconds, kind, component, message FROM events WHERE component = ?1
             ORDER BY id DESC LIMIT ?2",
            values![component, limit as i64],
        )?;
        let mut events =
            rows.iter().map(|row| Ok((row.text(0)?, event_at(row, 1)?))).collect::<Result<Vec<_>, Error>>()?;
        events.reverse();
        Ok(events)
    }

    /// Records the model a service serves.
    pub fn record_served_model(&self, app: &str, served: &ServedModel) -> Result<(), Error> {
        self.write(|sql| {
            sql.execute(
                "INSERT INTO served_models (app, service, model, version, sha256, data_sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (app, service) DO UPDATE SET model = excluded.model, version = excluded.version,
                   sha256 = excluded.sha256, data_sha256 = excluded.data_sha256",
                values![app, &served.service, &served.model, served.version, &served.sha256, &served.data_sha256],
            )
        })?;
        Ok(())
    }

    /// The model each service of `app` serves.
    pub fn served_models(&self, app: &str) -> Result<Vec<ServedModel>, Error> {
        let rows = self.read(
            "SELECT service, model, version, sha256, data_sha256 FROM served_models WHERE app = ?1 ORDER BY service",
            values![app],
        )?;
        rows.iter()
            .map(|row| {
                Ok(ServedModel {
                    service: row.text(0)?,
                    model: row.text(1)?,
                    version: row.u32(2)?,
                    sha256: row.text(3)?,
                    data_sha256: row.text(4)?,
                })
            })
            .collect()
    }
}

/// An event from the columns `id, at_milliseconds, kind, component, message`, starting at column `first`.
fn event_at(row: &Row, first: usize) -> Result<Event, Error> {
    let kind = row.text(first + 2)?;
    Ok(Event {
        id: row.int(first)?,
        at_milliseconds: row.int(first + 1)?,
        // Every kind this release writes parses; another release's is named in the error.
        kind: EventKind::parse(&kind).ok_or_else(|| Error::State(format!("unknown event kind `{kind}`").into()))?,
        component: row.optional_text(first + 3)?,
        message: row.text(first + 4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_reopen_and_versions_change_only_with_the_application() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state.db");
        {
            let store = StateStore::open(&path).unwrap();
            assert_eq!(store.record_version("traffic", "{ir 1}", "{plan 1}").unwrap(), 1);
            assert_eq!(store.record_version("traffic", "{ir 1}", "{plan 1}").unwrap(), 1, "unchanged: same version");
            assert_eq!(store.record_version("traffic", "{ir 2}", "{plan 1}").unwrap(), 2);
            store.record_event("traffic", EventKind::Started, None, "2 agents").unwrap();
            store.record_event("traffic", EventKind::Model, Some("congestion"), "v1, f1 0.93").unwrap();
            store.record_event("other", EventKind::Started, None, "elsewhere").unwrap();
            let served = ServedModel {
                service: "signal_timing".into(),
                model: "congestion".into(),
                version: 1,
                sha256: "abc".into(),
                data_sha256: "def".into(),
            };
            store.record_served_model("traffic", &served).unwrap();
            store.record_served_model("traffic", &ServedModel { version: 2, ..served }).unwrap();
        }
        let store = StateStore::open(&path).unwrap();
        assert_eq!(store.record_version("traffic", "{ir 2}", "{plan 1}").unwrap(), 2);
        let events = store.events("traffic", 10).unwrap();
        assert_eq!(events.iter().map(|event| event.kind.as_str()).collect::<Vec<_>>(), ["started", "model"]);
        assert_eq!(events[1].component.as_deref(), Some("congestion"));
        assert_eq!(store.events("traffic", 1).unwrap()[0].kind, EventKind::Model, "the latest, when limited");
        let of_model = store.component_events("congestion", 10).unwrap();
        assert_eq!((of_model.len(), of_model[0].0.as_str(), of_model[0].1.kind.as_str()), (1, "traffic", "model"));
        let served = store.served_models("traffic").unwrap();
        assert_eq!((served.len(), served[0].version), (1, 2));
        let (app, version, ir, _) = store.latest_deployment().unwrap().unwrap();
        assert_eq!((app.as_str(), version, ir.as_str()), ("traffic", 2, "{ir 2}"));
        store.record_agent("fog1", "{\"tier\": \"fog\"}").unwrap();
        store.record_agent("fog1", "{\"tier\": \"cloud\"}").unwrap();
        assert_eq!(store.agents().unwrap(), [("fog1".to_string(), "{\"tier\": \"cloud\"}".to_string())]);
    }

    #[test]
    fn kept_checkpoints_outlive_a_reopen_and_change_all_or_none() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state.db");
        let kept = |component: &str, holder: Option<&str>, file: &str| KeptCheckpoint {
            component: component.into(),
            holder: holder.map(str::to_string),
            file: file.into(),
        };
        {
            let store = StateStore::open(&path).unwrap();
            store
                .change_checkpoints(&[
                    CheckpointChange::Keep(kept("counts", Some("fog1"), "{1}")),
                    CheckpointChange::Keep(kept("counts", Some("fog1"), "{2}")),
                    CheckpointChange::Keep(kept("counts", None, "{handed}")),
                    CheckpointChange::Keep(kept("joined", Some("edge1"), "{3}")),
                ])
                .unwrap();
            store
                .change_checkpoints(&[CheckpointChange::Forget { component: "joined".into(), handed: false }])
                .unwrap();
        }
        let store = StateStore::open(&path).unwrap();
        assert_eq!(
            store.kept_checkpoints().unwrap(),
            [kept("counts", Some("fog1"), "{2}"), kept("counts", None, "{handed}")]
        );
    }

    #[test]
    fn a_store_from_a_newer_stratum_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state.db");
        let connection = Connection::open(&path).unwrap();
        connection.pragma_update(None, "user_version", 99).unwrap();
        drop(connection);
        let error = StateStore::open(&path).err().unwrap();
        assert!(error.to_string().contains("upgrade Stratum"), "{error}");
    }
}
