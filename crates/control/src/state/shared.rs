//! The state store on PostgreSQL: the store for production, which outlives the machine a control plane runs on.
//! Several `stratum server` replicas share it; one leads (a lease row, renewed while it runs, taken over when it
//! lapses) and only the leader writes — every write checks, in its own transaction, that its replica still holds
//! the lease it took (its term), so a replica that was cut off or paused and lost the lead can no longer change
//! anything. The files the cluster shares (its authority, the path secret, the model store, the applied source)
//! are kept here too, so that a replica that takes over has them.
//!
//! The `postgres` client blocks on a runtime of its own, which cannot run inside the server's; each transaction
//! therefore runs on a short-lived thread of its own, while the caller waits as it waits for SQLite.

use super::sql::{Row, Sql, Value, values};
use crate::Error;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use std::sync::Mutex;
use std::time::Duration;
use stratum_core::sync::lock;

/// The schema, one migration per entry, applied in order under an advisory lock (replicas may start together);
/// `stratum_schema` remembers how many ran. Never edit an entry that has shipped: add one.
const MIGRATIONS: &[&str] = &["CREATE TABLE app_versions (
        app TEXT NOT NULL,
        version BIGINT NOT NULL,
        created BIGINT NOT NULL,
        ir TEXT NOT NULL,
        plan TEXT NOT NULL,
        PRIMARY KEY (app, version)
    );
    CREATE TABLE events (
        id BIGSERIAL PRIMARY KEY,
        app TEXT NOT NULL,
        at_milliseconds BIGINT NOT NULL,
        kind TEXT NOT NULL,
        component TEXT,
        message TEXT NOT NULL
    );
    CREATE INDEX events_by_app ON events (app, id);
    CREATE INDEX events_by_component ON events (component, id);
    CREATE TABLE served_models (
        app TEXT NOT NULL,
        service TEXT NOT NULL,
        model TEXT NOT NULL,
        version BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        data_sha256 TEXT NOT NULL,
        PRIMARY KEY (app, service)
    );
    CREATE TABLE agents (name TEXT PRIMARY KEY, description TEXT NOT NULL, updated BIGINT NOT NULL);
    CREATE TABLE migrations (
        app TEXT NOT NULL,
        version BIGINT NOT NULL,
        component TEXT NOT NULL,
        tier TEXT NOT NULL,
        PRIMARY KEY (app, version, component)
    );
    CREATE TABLE added_instances (
        app TEXT NOT NULL,
        version BIGINT NOT NULL,
        component TEXT NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (app, version, component)
    );
    CREATE TABLE agent_keys (name TEXT PRIMARY KEY, key_sha256 TEXT NOT NULL);
    CREATE TABLE checkpoints (
        component TEXT NOT NULL,
        handed BOOLEAN NOT NULL,
        holder TEXT NOT NULL,
        file TEXT NOT NULL,
        PRIMARY KEY (component, handed)
    );
    CREATE TABLE leader (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        holder TEXT NOT NULL,
        address TEXT NOT NULL,
        term BIGINT NOT NULL,
        expires TIMESTAMPTZ NOT NULL
    );
    INSERT INTO leader (id, holder, address, term, expires) VALUES (1, '', '', 0, to_timestamp(0));
    CREATE TABLE files (path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, content BYTEA NOT NULL);"];

/// Any number: the advisory lock replicas take to migrate one at a time.
const MIGRATION_LOCK: i64 = 0x0053_5452_4154_554d;

/// The replica that leads, as the store says.
#[derive(Clone, Debug, PartialEq)]
pub struct Leader {
    /// Who: the replica's name (`HOST/ADDRESS/RANDOM`, unique to one run).
    pub holder: String,
    /// The address its API listens on.
    pub address: String,
    /// How many times the lead changed hands.
    pub term: i64,
    /// How long its lease still runs (negative: it lapsed).
    pub remaining_milliseconds: i64,
}

/// A state store on PostgreSQL (see the module documentation).
pub struct Postgres {
    config: postgres::Config,
    /// TLS trusting the operator's authority, when given.
    tls: Option<super::tls::Connector>,
    /// Where it is, for messages (never the password).
    shown: String,
    /// `None` until connected, and after the connection broke: the next transaction connects again.
    client: Mutex<Option<postgres::Client>>,
    /// The lease this replica holds, (holder, term): every write checks it is still the store's.
    lead: Mutex<Option<(String, i64)>>,
}

impl Drop for Postgres {
    // The client's drop blocks on a runtime of its own: on a thread of its own, never one of the server's runtime.
    fn drop(&mut self) {
        if let Some(client) = lock(&self.client).take() {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Postgres").field("at", &self.shown).finish_non_exhaustive()
    }
}

fn pg_error(error: postgres::Error) -> Error {
    Error::State(error.into())
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(number) if *ty == Type::INT4 => i32::try_from(*number)?.to_sql(ty, out),
            Value::Int(number) if *ty == Type::INT2 => i16::try_from(*number)?.to_sql(ty, out),
            Value::Int(number) if *ty == Type::FLOAT8 => (*number as f64).to_sql(ty, out),
            Value::Int(number) => number.to_sql(ty, out),
            Value::Text(text) => text.to_sql(ty, out),
            Value::Bool(flag) => flag.to_sql(ty, out),
            Value::Bytes(bytes) => bytes.to_sql(ty, out),
        }
    }

    // Each variant's own encoding is chosen by the column's type above; the server refuses a mismatch.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A row as the state store reads it.
fn row_of(row: &postgres::Row) -> Result<Row, Error> {
    let mut values = Vec::with_capacity(row.len());
    for (at, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = if *ty == Type::VOID {
            Ok(None)
        } else if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(at).map(|number| number.map(Value::Int))
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(at).map(|number| number.map(|number| Value::Int(number.into())))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(at).map(|flag| flag.map(Value::Bool))
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(at).map(|bytes| bytes.map(Value::Bytes))
        } else {
            row.try_get::<_, Option<String>>(at).map(|text| text.map(Value::Text))
        };
        values.push(value.map_err(pg_error)?.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

/// SQLite's placeholders (`?1`) as PostgreSQL's (`$1`): no statement of the store has a `?` elsewhere.
fn placeholders(sql: &str) -> String {
    sql.replace('?', "$")
}

/// A transaction on PostgreSQL.
struct Pg<'a, 'b>(&'a mut postgres::Transaction<'b>);

impl Sql for Pg<'_, '_> {
    fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, Error> {
        let parameters: Vec<&(dyn ToSql + Sync)> = values.iter().map(|value| value as &(dyn ToSql + Sync)).collect();
        self.0.execute(placeholders(sql).as_str(), &parameters).map_err(pg_error)
    }

    fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>, Error> {
        let parameters: Vec<&(dyn ToSql + Sync)> = values.iter().map(|value| value as &(dyn ToSql + Sync)).collect();
        let rows = self.0.query(placeholders(sql).as_str(), &parameters).map_err(pg_error)?;
        rows.iter().map(row_of).collect()
    }
}

impl Postgres {
    /// Connects to the store at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, or PostgreSQL's
    /// `key=value` form) and brings its schema up to date.
    ///
    /// With `authority` (PEM) the connection is TLS that trusts that authority alone (required, unless the address
    /// says otherwise with `sslmode`); without, an address that asks for TLS (`sslmode=require`) is refused.
    pub(crate) fn connect(url: &str, authority: Option<&str>) -> Result<Postgres, Error> {
        let shown = shown_without_password(url);
        let mut config: postgres::Config = url.parse().map_err(|error: postgres::Error| {
            Error::State(format!("`{shown}` is not a PostgreSQL address: {error}").into())
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let tls = match authority {
            Some(pem) => {
                if config.get_ssl_mode() == postgres::config::SslMode::Prefer {
                    config.ssl_mode(postgres::config::SslMode::Require);
                }
                Some(super::tls::Connector::trusting(pem).map_err(|error| {
                    Error::State(format!("the state store's authority (--store-ca): {error}").into())
                })?)
            }
            None if config.get_ssl_mode() == postgres::config::SslMode::Require => {
                return Err(Error::State(
                    format!(
                        "`{shown}` asks for TLS: give the authority that signed the database's certificate with \
                         --store-ca FILE (or STRATUM_STORE_CA)"
                    )
                    .into(),
                ));
            }
            None => None,
        };
        let store = Postgres { config, tls, shown, client: Mutex::new(None), lead: Mutex::default() };
        store.migrate()?;
        Ok(store)
    }

    /// Where the store is, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn migrate(&self) -> Result<(), Error> {
        let known = MIGRATIONS.len() as i64;
        self.transaction(false, |sql| {
            sql.query("SELECT pg_advisory_xact_lock(?1)", values![MIGRATION_LOCK])?;
            sql.execute("CREATE TABLE IF NOT EXISTS stratum_schema (version BIGINT NOT NULL)", &[])?;
            let applied = match sql.query("SELECT version FROM stratum_schema", &[])?.first() {
                Some(row) => row.int(0)?,
                None => {
                    sql.execute("INSERT INTO stratum_schema (version) VALUES (0)", &[])?;
                    0
                }
            };
            if applied > known {
                return Err(Error::State(
                    format!(
                        "the state store has schema version {applied}, newer than this Stratum knows ({known}); \
                         upgrade Stratum"
                    )
                    .into(),
                ));
            }
            for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
                for statement in migration.split(';').filter(|statement| !statement.trim().is_empty()) {
                    sql.execute(statement, &[])?;
                }
                sql.execute("UPDATE stratum_schema SET version = ?1", values![index as i64 + 1])?;
                tracing::info!(migration = index + 1, "state store migrated");
            }
            Ok(())
        })
    }

    /// Runs `body` in one transaction, connecting first if need be. A `fenced` one (every write) first checks that
    /// this replica still holds the lease it took, and fails with [`Error::NotLeading`] if not: what it would write
    /// is not written.
    pub(crate) fn transaction<R: Send>(
        &self,
        fenced: bool,
        body: impl FnOnce(&mut dyn Sql) -> Result<R, Error> + Send,
    ) -> Result<R, Error> {
        let lead = lock(&self.lead).clone();
        if fenced && lead.is_none() {
            return Err(Error::NotLeading("it has not taken the lead".into()));
        }
        let mut guard = lock(&self.client);
        // The guard stays here; the thread borrows what it guards.
        let client: &mut Option<postgres::Client> = &mut guard;
        std::thread::scope(|scope| {
            let running = scope.spawn(|| {
                let run = || -> Result<R, Error> {
                    if client.as_ref().is_none_or(postgres::Client::is_closed) {
                        let connected = match &self.tls {
                            Some(tls) => self.config.connect(tls.clone()),
                            None => self.config.connect(postgres::NoTls),
                        }
                        .map_err(|error| {
                            Error::State(format!("cannot reach the state store at {}: {error}", self.shown).into())
                        })?;
                        *client = Some(connected);
                    }
                    let Some(connected) = client.as_mut() else { unreachable!("connected above") };
                    let mut transaction = connected.transaction().map_err(pg_error)?;
                    if let Some((holder, term)) = lead.as_ref().filter(|_| fenced) {
                        let held = Pg(&mut transaction).query(
                            "SELECT term FROM leader WHERE id = 1 AND holder = ?1 AND term = ?2 FOR SHARE",
                            values![holder.as_str(), *term],
                        )?;
                        if held.is_empty() {
                            return Err(Error::NotLeading(format!(
                                "the lease of term {term} passed to another replica"
                            )));
                        }
                    }
                    let answer = body(&mut Pg(&mut transaction))?;
                    transaction.commit().map_err(pg_error)?;
                    Ok(answer)
                };
                let answer = run();
                // A connection that broke goes here, off the runtime: the client's drop blocks on a runtime of
                // its own, which a runtime's thread may not.
                if client.as_ref().is_some_and(postgres::Client::is_closed) {
                    *client = None;
                }
                answer
            });
            running.join().unwrap_or_else(|_| Err(Error::Task("a state store transaction panicked".into())))
        })
    }

    /// Takes the lead for `holder` (listening at `address`) if nobody holds it or its lease lapsed, for `lease`;
    /// whether it did.
    pub fn try_lead(&self, holder: &str, address: &str, lease: Duration) -> Result<bool, Error> {
        let rows = self.transaction(false, |sql| {
            sql.query(
                "UPDATE leader SET holder = ?1, address = ?2, term = term + 1,
                   expires = now() + ?3::BIGINT * INTERVAL '1 millisecond'
                 WHERE id = 1 AND (holder = '' OR expires < now()) RETURNING term",
                values![holder, address, lease.as_millis() as i64],
            )
        })?;
        let Some(row) = rows.first() else { return Ok(false) };
        *lock(&self.lead) = Some((holder.to_string(), row.int(0)?));
        Ok(true)
    }

    /// Renews the lead this replica holds for another `lease`; whether it still held it.
    pub fn renew(&self, lease: Duration) -> Result<bool, Error> {
        let Some((holder, term)) = lock(&self.lead).clone() else { return Ok(false) };
        let renewed = self.transaction(false, |sql| {
            sql.execute(
                "UPDATE leader SET expires = now() + ?3::BIGINT * INTERVAL '1 millisecond'
                 WHERE id = 1 AND holder = ?1 AND term = ?2",
                values![holder.as_str(), term, lease.as_millis() as i64],
            )
        })?;
        Ok(renewed == 1)
    }

    /// Gives the lead up at once (a replica that stops), so that another takes it without waiting for the lease
    /// to lapse.
    pub fn resign(&self) -> Result<(), Error> {
        let Some((holder, term)) = lock(&self.lead).take() else { return Ok(()) };
        self.transaction(false, |sql| {
            sql.execute(
                "UPDATE leader SET expires = to_timestamp(0) WHERE id = 1 AND holder = ?1 AND term = ?2",
                values![holder.as_str(), term],
            )
        })?;
        Ok(())
    }

    /// Who leads, as the store says.
    pub fn leader(&self) -> Result<Leader, Error> {
        let rows = self.transaction(false, |sql| {
            sql.query(
                "SELECT holder, address, term,
                   (EXTRACT(EPOCH FROM (expires - now())) * 1000)::BIGINT FROM leader WHERE id = 1",
                &[],
            )
        })?;
        let row = rows.first().ok_or_else(|| Error::State("the store has no leader row".into()))?;
        Ok(Leader {
            holder: row.text(0)?,
            address: row.text(1)?,
            term: row.int(2)?,
            remaining_milliseconds: row.int(3)?,
        })
    }

    /// Whether this replica's session with the store is encrypted (PostgreSQL's `pg_stat_ssl`).
    pub fn over_tls(&self) -> Result<bool, Error> {
        let rows =
            self.transaction(false, |sql| sql.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]))?;
        rows.first().map_or(Ok(false), |row| row.flag(0))
    }

    /// Keeps files the cluster shares (path relative to the state directory, sha256, content).
    pub fn put_files(&self, files: &[(String, String, Vec<u8>)]) -> Result<(), Error> {
        self.transaction(true, |sql| {
            for (path, sha256, content) in files {
                sql.execute(
                    "INSERT INTO files (path, sha256, content) VALUES (?1, ?2, ?3)
                     ON CONFLICT (path) DO UPDATE SET sha256 = excluded.sha256, content = excluded.content",
                    values![path, sha256, content.as_slice()],
                )?;
            }
            Ok(())
        })
    }

    /// The shared files the store keeps: (path, sha256).
    pub fn file_digests(&self) -> Result<Vec<(String, String)>, Error> {
        let rows = self.transaction(false, |sql| sql.query("SELECT path, sha256 FROM files ORDER BY path", &[]))?;
        rows.iter().map(|row| Ok((row.text(0)?, row.text(1)?))).collect()
    }

    /// One shared file's content.
    pub fn file(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let rows =
            self.transaction(false, |sql| sql.query("SELECT content FROM files WHERE path = ?1", values![path]))?;
        rows.first().map(|row| row.bytes(0)).transpose()
    }
}

/// A PostgreSQL address with its password (if any) left out, for messages and logs.
fn shown_without_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) => format!("{scheme}://{}@{host}", user.split(':').next().unwrap_or_default()),
            None => url.to_string(),
        },
        None => url.split_whitespace().filter(|pair| !pair.starts_with("password=")).collect::<Vec<_>>().join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows() {
        assert_eq!(shown_without_password("postgres://stratum:secret@db:5432/s"), "postgres://stratum@db:5432/s");
        assert_eq!(shown_without_password("postgres://db/s"), "postgres://db/s");
        assert_eq!(shown_without_password("host=db password=secret user=s"), "host=db user=s");
        assert_eq!(placeholders("WHERE a = ?1 AND b = ?2"), "WHERE a = $1 AND b = $2");
    }
}
