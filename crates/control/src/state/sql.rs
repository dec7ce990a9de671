//! The SQL the state store speaks, written once for both of its databases: values and rows that either can hold,
//! and [`Sql`], one transaction on SQLite (the embedded default) or PostgreSQL (the store that outlives its
//! machine). Statements use SQLite's numbered placeholders (`?1`); PostgreSQL's (`$1`) are derived from them.

use crate::Error;

/// A value a statement takes or a row holds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
    Bytes(Vec<u8>),
}

impl From<&str> for Value {
    fn from(text: &str) -> Value {
        Value::Text(text.to_string())
    }
}

impl From<&String> for Value {
    fn from(text: &String) -> Value {
        Value::Text(text.clone())
    }
}

impl From<Option<&str>> for Value {
    fn from(text: Option<&str>) -> Value {
        text.map_or(Value::Null, Value::from)
    }
}

impl From<i64> for Value {
    fn from(number: i64) -> Value {
        Value::Int(number)
    }
}

impl From<u32> for Value {
    fn from(number: u32) -> Value {
        Value::Int(i64::from(number))
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Value {
        Value::Bool(flag)
    }
}

impl From<&[u8]> for Value {
    fn from(bytes: &[u8]) -> Value {
        Value::Bytes(bytes.to_vec())
    }
}

/// The values of a statement's placeholders, in order: `values![app, version]`.
macro_rules! values {
    ($($value:expr),* $(,)?) => { &[$($crate::state::sql::Value::from($value)),*] };
}
pub(crate) use values;

/// One row of a query's answer, its columns in the order selected.
#[derive(Debug)]
pub(crate) struct Row(pub(crate) Vec<Value>);

impl Row {
    fn column(&self, at: usize) -> Result<&Value, Error> {
        self.0.get(at).ok_or_else(|| Error::State(format!("a row has no column {at}").into()))
    }

    fn unexpected(&self, at: usize, wanted: &str) -> Error {
        Error::State(format!("column {at} holds {:?}, not {wanted}", self.0.get(at)).into())
    }

    pub(crate) fn text(&self, at: usize) -> Result<String, Error> {
        match self.column(at)? {
            Value::Text(text) => Ok(text.clone()),
            _ => Err(self.unexpected(at, "text")),
        }
    }

    pub(crate) fn optional_text(&self, at: usize) -> Result<Option<String>, Error> {
        match self.column(at)? {
            Value::Null => Ok(None),
            _ => self.text(at).map(Some),
        }
    }

    pub(crate) fn int(&self, at: usize) -> Result<i64, Error> {
        match self.column(at)? {
            Value::Int(number) => Ok(*number),
            _ => Err(self.unexpected(at, "an integer")),
        }
    }

    pub(crate) fn u32(&self, at: usize) -> Result<u32, Error> {
        u32::try_from(self.int(at)?).map_err(|_| self.unexpected(at, "a count"))
    }

    /// A flag: SQLite keeps it as 0 or 1, PostgreSQL as a boolean.
    pub(crate) fn flag(&self, at: usize) -> Result<bool, Error> {
        match self.column(at)? {
            Value::Bool(flag) => Ok(*flag),
            Value::Int(number) => Ok(*number != 0),
            _ => Err(self.unexpected(at, "a flag")),
        }
    }

    pub(crate) fn bytes(&self, at: usize) -> Result<Vec<u8>, Error> {
        match self.column(at)? {
            Value::Bytes(bytes) => Ok(bytes.clone()),
            _ => Err(self.unexpected(at, "bytes")),
        }
    }
}

/// One transaction of the state store's database.
pub(crate) trait Sql {
    /// Runs a statement; how many rows it changed.
    fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, Error>;
    /// Runs a query; its rows.
    fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>, Error>;
}

/// A transaction on the embedded SQLite database.
pub(crate) struct Sqlite<'a>(pub(crate) &'a rusqlite::Transaction<'a>);

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(number) => ToSqlOutput::Borrowed(ValueRef::Integer(*number)),
            Value::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Value::Bool(flag) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*flag))),
            Value::Bytes(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
        })
    }
}

pub(crate) fn sqlite_error(error: rusqlite::Error) -> Error {
    Error::State(error.into())
}

impl Sql for Sqlite<'_> {
    fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, Error> {
        let changed = self.0.execute(sql, rusqlite::params_from_iter(values.iter())).map_err(sqlite_error)?;
        Ok(changed as u64)
    }

    fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>, Error> {
        let mut statement = self.0.prepare_cached(sql).map_err(sqlite_error)?;
        let columns = statement.column_count();
        let rows = statement
            .query_map(rusqlite::params_from_iter(values.iter()), |row| {
                (0..columns)
                    .map(|at| {
                        Ok(match row.get::<_, rusqlite::types::Value>(at)? {
                            rusqlite::types::Value::Null => Value::Null,
                            rusqlite::types::Value::Integer(number) => Value::Int(number),
                            rusqlite::types::Value::Text(text) => Value::Text(text),
                            rusqlite::types::Value::Blob(bytes) => Value::Bytes(bytes),
                            rusqlite::types::Value::Real(number) => Value::Text(number.to_string()),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Value>>>()
                    .map(Row)
            })
            .map_err(sqlite_error)?;
        rows.collect::<rusqlite::Result<Vec<Row>>>().map_err(sqlite_error)
    }
}
