//! The two databases a study can live in, behind one small interface: SQLite (a file,
//! the embedded default) and PostgreSQL (a server many machines share; feature
//! `postgres`). Statements are written once, with `?N` placeholders and SQL both
//! accept (`ON CONFLICT`, `RETURNING`); what differs (schema types, how a write
//! transaction excludes other workers, how a worker tells it is alone) is here.

use std::path::Path;

use descent::{Error, Result};
use rusqlite::Connection;

/// A value bound to or read from a statement.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum V {
    I(i64),
    F(f64),
    T(String),
    /// A nullable float or text column.
    OF(Option<f64>),
    OT(Option<String>),
}

impl V {
    pub(crate) fn i(&self) -> i64 {
        match self {
            V::I(v) => *v,
            _ => 0,
        }
    }
    pub(crate) fn t(&self) -> String {
        match self {
            V::T(s) => s.clone(),
            V::OT(s) => s.clone().unwrap_or_default(),
            _ => String::new(),
        }
    }
    pub(crate) fn of(&self) -> Option<f64> {
        match self {
            V::F(v) => Some(*v),
            V::OF(v) => *v,
            _ => None,
        }
    }
    pub(crate) fn ot(&self) -> Option<String> {
        match self {
            V::T(s) => Some(s.clone()),
            V::OT(s) => s.clone(),
            _ => None,
        }
    }
}

/// The type of a column read back.
#[derive(Clone, Copy)]
pub(crate) enum Ty {
    I,
    T,
    OF,
    OT,
}

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    direction TEXT NOT NULL,
    metric TEXT NOT NULL,
    config TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    number INTEGER NOT NULL,
    state TEXT NOT NULL,
    params TEXT NOT NULL,
    value REAL,
    scores TEXT,
    attempts INTEGER NOT NULL,
    started REAL,
    seconds REAL,
    message TEXT,
    heartbeat REAL,
    worker TEXT,
    UNIQUE (study_id, number)
);
CREATE TABLE IF NOT EXISTS intermediate (
    trial_id INTEGER NOT NULL REFERENCES trials(id),
    step INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (trial_id, step)
);
";

pub(crate) enum Db {
    Sqlite(Connection),
    #[cfg(feature = "postgres")]
    Postgres(std::cell::RefCell<postgres::Client>),
}

/// Whether a study's storage names a PostgreSQL server rather than a file.
pub fn is_server_url(storage: &Path) -> bool {
    let s = storage.to_string_lossy();
    s.starts_with("postgresql://") || s.starts_with("postgres://")
}

/// The storage as messages show it: a URL without its password.
pub fn shown(storage: &Path) -> String {
    let s = storage.to_string_lossy().into_owned();
    if !is_server_url(storage) {
        return s;
    }
    match (s.find("://"), s.rfind('@')) {
        (Some(a), Some(at)) if at > a => {
            let creds = &s[a + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &s[..a + 3], &creds[..c], &s[at..]),
                None => s,
            }
        }
        _ => s,
    }
}

/// `?N` placeholders as PostgreSQL's `$N`.
#[cfg(feature = "postgres")]
fn dollar(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

impl Db {
    /// Opens the study database: a SQLite file (created with the schema), or with the
    /// `postgres` feature a `postgresql://` server (the schema created once).
    pub(crate) fn open(storage: &Path) -> Result<Db> {
        if is_server_url(storage) {
            return Self::open_server(storage);
        }
        let err = |e: rusqlite::Error| Error::Format { path: storage.to_path_buf(), message: format!("study database: {e}") };
        let conn = Connection::open(storage).map_err(err)?;
        // Statements wait for another worker's lock (up to 10 s) instead of failing.
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(err)?;
        let err_in = |what: &'static str| move |e: rusqlite::Error| Error::Format { path: storage.to_path_buf(), message: format!("study database: {e} ({what})") };
        // Switching a new file to WAL needs its exclusive lock, and SQLite answers "busy"
        // at once, without waiting, when another worker is switching it too: retry.
        let mut tries = 0;
        loop {
            match conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;") {
                Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::DatabaseBusy && tries < 200 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                other => break other.map_err(err_in("setting it up"))?,
            }
        }
        conn.execute_batch(SQLITE_SCHEMA).map_err(err_in("creating its tables"))?;
        // Studies written before heartbeats: add the columns (NULL: no heartbeat yet).
        let columns: Vec<String> = {
            let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('trials')").map_err(err)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(err)?;
            rows.collect::<std::result::Result<_, _>>().map_err(err)?
        };
        for (column, ty) in [("heartbeat", "REAL"), ("worker", "TEXT")] {
            if !columns.iter().any(|c| c == column) {
                conn.execute_batch(&format!("ALTER TABLE trials ADD COLUMN {column} {ty}")).map_err(err)?;
            }
        }
        Ok(Db::Sqlite(conn))
    }

    #[cfg(not(feature = "postgres"))]
    fn open_server(storage: &Path) -> Result<Db> {
        Err(Error::Config(format!(
            "study storage {}: this build has no PostgreSQL support; build with `--features postgres`",
            shown(storage)
        )))
    }

    #[cfg(feature = "postgres")]
    fn open_server(storage: &Path) -> Result<Db> {
        let url = storage.to_string_lossy();
        let err = |e: postgres::Error| Error::Format { path: shown(storage).into(), message: format!("study database: {e}") };
        let mut client = postgres::Client::connect(&url, postgres::NoTls).map_err(err)?;
        // Several workers creating the tables at once collide inside PostgreSQL's
        // catalogue: one at a time.
        client
            .batch_execute(
                "SELECT pg_advisory_lock(7269846); \
                 CREATE TABLE IF NOT EXISTS studies (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, direction TEXT NOT NULL, \
                   metric TEXT NOT NULL, config TEXT NOT NULL, created DOUBLE PRECISION NOT NULL); \
                 CREATE TABLE IF NOT EXISTS trials (id BIGSERIAL PRIMARY KEY, study_id BIGINT NOT NULL REFERENCES studies(id), \
                   number BIGINT NOT NULL, state TEXT NOT NULL, params TEXT NOT NULL, value DOUBLE PRECISION, scores TEXT, \
                   attempts BIGINT NOT NULL, started DOUBLE PRECISION, seconds DOUBLE PRECISION, message TEXT, \
                   heartbeat DOUBLE PRECISION, worker TEXT, UNIQUE (study_id, number)); \
                 CREATE TABLE IF NOT EXISTS intermediate (trial_id BIGINT NOT NULL REFERENCES trials(id), step BIGINT NOT NULL, \
                   value DOUBLE PRECISION NOT NULL, PRIMARY KEY (trial_id, step)); \
                 SELECT pg_advisory_unlock(7269846);",
            )
            .map_err(err)?;
        Ok(Db::Postgres(std::cell::RefCell::new(client)))
    }

    fn failed(&self, storage: &Path, e: impl std::fmt::Display) -> Error {
        Error::Format { path: shown(storage).into(), message: format!("study database: {e}") }
    }

    /// Runs a statement; returns the rows it changed.
    pub(crate) fn exec(&self, storage: &Path, sql: &str, params: &[V]) -> Result<usize> {
        match self {
            Db::Sqlite(c) => {
                let bound: Vec<Box<dyn rusqlite::ToSql>> = params.iter().map(sqlite_value).collect();
                let refs: Vec<&dyn rusqlite::ToSql> = bound.iter().map(|b| b.as_ref()).collect();
                c.execute(sql, refs.as_slice()).map_err(|e| self.failed(storage, format!("{e} (in `{}`)", first_words(sql))))
            }
            #[cfg(feature = "postgres")]
            Db::Postgres(c) => {
                let bound = postgres_values(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = bound.iter().map(|b| b.as_ref()).collect();
                c.borrow_mut().execute(dollar(sql).as_str(), &refs).map(|n| n as usize).map_err(|e| self.failed(storage, e))
            }
        }
    }

    /// Runs a query; every row read as `types`.
    pub(crate) fn rows(&self, storage: &Path, sql: &str, params: &[V], types: &[Ty]) -> Result<Vec<Vec<V>>> {
        match self {
            Db::Sqlite(c) => {
                let bound: Vec<Box<dyn rusqlite::ToSql>> = params.iter().map(sqlite_value).collect();
                let refs: Vec<&dyn rusqlite::ToSql> = bound.iter().map(|b| b.as_ref()).collect();
                let in_sql = |e: rusqlite::Error| self.failed(storage, format!("{e} (in `{}`)", first_words(sql)));
                let mut stmt = c.prepare(sql).map_err(in_sql)?;
                let rows = stmt
                    .query_map(refs.as_slice(), |r| {
                        read_row(types, |i, t| {
                            Ok(match t {
                                Ty::I => V::I(r.get(i)?),
                                Ty::T => V::T(r.get(i)?),
                                Ty::OF => V::OF(r.get(i)?),
                                Ty::OT => V::OT(r.get(i)?),
                            })
                        })
                    })
                    .map_err(in_sql)?;
                rows.collect::<std::result::Result<_, _>>().map_err(in_sql)
            }
            #[cfg(feature = "postgres")]
            Db::Postgres(c) => {
                let bound = postgres_values(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = bound.iter().map(|b| b.as_ref()).collect();
                let rows = c.borrow_mut().query(dollar(sql).as_str(), &refs).map_err(|e| self.failed(storage, e))?;
                rows.iter()
                    .map(|r| {
                        read_row(types, |i, t| -> std::result::Result<V, postgres::Error> {
                            Ok(match t {
                                Ty::I => V::I(r.try_get(i)?),
                                Ty::T => V::T(r.try_get(i)?),
                                Ty::OF => V::OF(r.try_get(i)?),
                                Ty::OT => V::OT(r.try_get(i)?),
                            })
                        })
                        .map_err(|e| self.failed(storage, e))
                    })
                    .collect()
            }
        }
    }

    /// Starts a write transaction that excludes every other worker's on this study
    /// (SQLite: `BEGIN IMMEDIATE`, the file's write lock; PostgreSQL: a transaction
    /// holding the study's row under `FOR UPDATE` — a row lock, as Optuna's RDB storage
    /// takes on the rows it changes — released at commit, or with the connection of a
    /// worker that dies). Holding the study's row rather than the trial's is what makes
    /// the budget and the grid exact: the count of trials and the next grid point are
    /// read and written under one lock.
    pub(crate) fn begin(&self, storage: &Path, study_id: i64) -> Result<()> {
        let _ = study_id;
        match self {
            Db::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE").map_err(|e| self.failed(storage, format!("{e} (starting a claim)"))),
            #[cfg(feature = "postgres")]
            Db::Postgres(c) => {
                let mut c = c.borrow_mut();
                c.batch_execute("BEGIN").map_err(|e| self.failed(storage, e))?;
                let locked = c.execute("SELECT id FROM studies WHERE id = $1 FOR UPDATE", &[&study_id]).map_err(|e| self.failed(storage, e))?;
                if locked != 1 {
                    let _ = c.batch_execute("ROLLBACK");
                    return Err(self.failed(storage, format!("study {study_id} is not in the database (was it deleted while this worker ran?)")));
                }
                Ok(())
            }
        }
    }

    pub(crate) fn end(&self, storage: &Path, commit: bool) -> Result<()> {
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        match self {
            Db::Sqlite(c) => c.execute_batch(sql).map_err(|e| self.failed(storage, e)),
            #[cfg(feature = "postgres")]
            Db::Postgres(c) => c.borrow_mut().batch_execute(sql).map_err(|e| self.failed(storage, e)),
        }
    }

    /// On a server: takes the study's session lock shared (held while this worker's
    /// connection lives; a killed worker's goes with its connection), returning whether
    /// no other worker held it (this one is alone). Files use a lock file instead.
    #[cfg(feature = "postgres")]
    pub(crate) fn join_server_study(&self, storage: &Path, study_id: i64, on_alone: impl FnOnce() -> Result<()>) -> Result<()> {
        let Db::Postgres(c) = self else { return Ok(()) };
        let key = study_id as i32;
        let alone: bool = c.borrow_mut().query_one("SELECT pg_try_advisory_lock(2, $1::int)", &[&key]).map_err(|e| self.failed(storage, e))?.get(0);
        if alone {
            on_alone()?;
            c.borrow_mut().execute("SELECT pg_advisory_unlock(2, $1::int)", &[&key]).map_err(|e| self.failed(storage, e))?;
        }
        c.borrow_mut().execute("SELECT pg_advisory_lock_shared(2, $1::int)", &[&key]).map(|_| ()).map_err(|e| self.failed(storage, e))
    }
}

/// The start of a statement, for messages.
fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ")
}

/// One row's columns, each read by `get` as its type says.
fn read_row<E>(types: &[Ty], get: impl Fn(usize, Ty) -> std::result::Result<V, E>) -> std::result::Result<Vec<V>, E> {
    types.iter().enumerate().map(|(i, t)| get(i, *t)).collect()
}

/// A value as the boxed parameter type a driver binds (each driver has its own trait).
macro_rules! bound {
    ($v:expr, $boxed:ty) => {
        match $v.clone() {
            V::I(x) => Box::new(x) as $boxed,
            V::F(x) => Box::new(x) as $boxed,
            V::T(x) => Box::new(x) as $boxed,
            V::OF(x) => Box::new(x) as $boxed,
            V::OT(x) => Box::new(x) as $boxed,
        }
    };
}

fn sqlite_value(v: &V) -> Box<dyn rusqlite::ToSql> {
    bound!(v, Box<dyn rusqlite::ToSql>)
}

#[cfg(feature = "postgres")]
fn postgres_values(params: &[V]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params.iter().map(|v| bound!(v, Box<dyn postgres::types::ToSql + Sync>)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_files_and_shown_without_their_password() {
        assert!(is_server_url(Path::new("postgresql://u:p@h/db")));
        assert!(!is_server_url(Path::new("study.sqlite")));
        assert_eq!(shown(Path::new("postgresql://descent:secret@localhost/db")), "postgresql://descent:***@localhost/db");
        assert_eq!(shown(Path::new("postgresql://localhost/db")), "postgresql://localhost/db");
    }
}
