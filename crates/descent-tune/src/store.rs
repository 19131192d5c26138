//! The study database: one SQLite file holding studies, their trials (parameters,
//! state, value, scores, timing) and every reported intermediate value.
//!
//! Each change is one autocommitted statement (or one transaction) with `synchronous =
//! FULL`, so a process killed at any instant leaves the file consistent: a trial is
//! either recorded as finished or still marked running.
//!
//! Several worker processes may share a study (`mpirun -np N descent tune`, or several
//! `descent tune` at once), with the semantics of Optuna's RDB storage:
//! - a trial is claimed or created inside one write transaction (`BEGIN IMMEDIATE`), so
//!   no two workers take the same trial and the budget is used exactly;
//! - every worker stamps a heartbeat on its running trials; a running trial whose
//!   heartbeat is older than the grace period belongs to a dead worker: it is queued
//!   again (its partial intermediate values dropped) and retried with its stored
//!   parameters under the same number — nothing lost, nothing counted twice.
//!
//! A lock file beside the study tells whether other workers are alive: each holds it
//! shared; one that finds it free when it opens the study is alone, so every running
//! trial is a dead run's and is queued at once (no grace period to wait out).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

use crate::space::Params;
use crate::trial::{Direction, TrialRecord, TrialState};
use descent::{Error, Result};

const SCHEMA: &str = "
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

/// A study's identity as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyInfo {
    pub name: String,
    pub direction: Direction,
    pub metric: String,
    /// The study definition (JSON): what `descent study export` needs to rebuild the
    /// best trial's experiment.
    pub config: serde_json::Value,
}

pub struct Store {
    conn: Connection,
    study_id: i64,
    pub info: StudyInfo,
    pub path: PathBuf,
    /// Held while this process works on the study.
    _lock: Option<File>,
}

fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Format { path: path.to_path_buf(), message: format!("study database: {e}") }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The lock beside a study file: its whole name plus `.lock` (`study.sqlite.lock`), so it
/// can never be a sibling file of the user's (`poetry.toml` → not `poetry.lock`).
fn lock_path_of(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".lock");
    name.into()
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(sql_err(path))?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")
        .map_err(sql_err(path))?;
    conn.execute_batch(SCHEMA).map_err(sql_err(path))?;
    // Studies written before heartbeats: add the columns (NULL: no heartbeat yet).
    let columns: Vec<String> = {
        let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('trials')").map_err(sql_err(path))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(sql_err(path))?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql_err(path))?
    };
    for (column, ty) in [("heartbeat", "REAL"), ("worker", "TEXT")] {
        if !columns.iter().any(|c| c == column) {
            conn.execute_batch(&format!("ALTER TABLE trials ADD COLUMN {column} {ty}")).map_err(sql_err(path))?;
        }
    }
    Ok(conn)
}

/// This worker's name in the store: host and process.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into());
    format!("{host}:{}", std::process::id())
}

impl Store {
    /// Opens (creating if needed) the study `info.name` in the file at `path` for work,
    /// as one of its workers; when no other worker has it open, queues the trials a
    /// killed run left running. An existing study must have the same direction and
    /// metric.
    pub fn open_for_work(path: &Path, info: StudyInfo) -> Result<Store> {
        let lock_path = lock_path_of(path);
        // Opened, never truncated: a file of that name that descent did not create keeps
        // its contents (it is only locked).
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::Io { path: lock_path.clone(), source: e })?;
        let lock_err = |e: std::io::Error| Error::Io { path: lock_path.clone(), source: e };
        // Free: no other worker is alive. Held (shared) by others: they are.
        let alone = lock.try_lock().is_ok();
        let conn = connect(path)?;
        let e = sql_err(path);
        // Created by whichever worker comes first (the others' insert is ignored), then
        // read back by every one.
        conn.execute(
            "INSERT OR IGNORE INTO studies (name, direction, metric, config, created) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![info.name, info.direction.as_str(), info.metric, info.config.to_string(), now()],
        )
        .map_err(&e)?;
        let (study_id, direction, metric): (i64, String, String) = conn
            .query_row("SELECT id, direction, metric FROM studies WHERE name = ?1", [&info.name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(&e)?;
        if direction != info.direction.as_str() || metric != info.metric {
            return Err(Error::Config(format!(
                "{}: study `{}` exists with {direction} {metric}, not {} {}; use another study name or file",
                path.display(),
                info.name,
                info.direction.as_str(),
                info.metric
            )));
        }
        conn.execute("UPDATE studies SET config = ?1 WHERE id = ?2", params![info.config.to_string(), study_id]).map_err(&e)?;
        if alone {
            let store = Store { conn, study_id, info: info.clone(), path: path.to_path_buf(), _lock: None };
            store.requeue_running("its worker was interrupted")?;
            lock.unlock().map_err(lock_err)?;
            // A worker opening in between found the lock free too: it queued the same
            // dead trials (the same change) and claimed nothing before taking it shared.
            lock.lock_shared().map_err(lock_err)?;
            return Ok(Store { _lock: Some(lock), ..store });
        }
        lock.lock_shared().map_err(lock_err)?;
        Ok(Store { conn, study_id, info, path: path.to_path_buf(), _lock: Some(lock) })
    }

    /// Opens a study read-only (for `descent study show|best|export`); `name` may be
    /// omitted when the file holds one study.
    pub fn open_read(path: &Path, name: Option<&str>) -> Result<Store> {
        if !path.exists() {
            return Err(Error::Io { path: path.into(), source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such study database") });
        }
        let conn = connect(path)?;
        let e = sql_err(path);
        let rows: Vec<(i64, String, String, String, String)> = {
            let mut stmt = conn.prepare("SELECT id, name, direction, metric, config FROM studies ORDER BY id").map_err(&e)?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))).map_err(&e)?;
            rows.collect::<std::result::Result<_, _>>().map_err(&e)?
        };
        let names: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        let row = match name {
            Some(n) => rows.iter().find(|r| r.1 == n),
            None if rows.len() == 1 => rows.first(),
            None => None,
        }
        .ok_or_else(|| Error::Config(format!("{}: choose a study with --study (it holds: {})", path.display(), names.join(", "))))?;
        let info = StudyInfo {
            name: row.1.clone(),
            direction: Direction::parse(&row.2)?,
            metric: row.3.clone(),
            config: serde_json::from_str(&row.4).unwrap_or(serde_json::Value::Null),
        };
        Ok(Store { study_id: row.0, conn, info, path: path.to_path_buf(), _lock: None })
    }

    fn e(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        sql_err(&self.path)
    }

    /// Every running trial belongs to a worker that died (no other is alive): queue
    /// them for a retry and drop their partial intermediate values. Returns how many.
    fn requeue_running(&self, why: &str) -> Result<usize> {
        self.requeue_older_than(f64::INFINITY, why)
    }

    /// Queues again the running trials whose heartbeat (or start, before the first
    /// beat) is older than `grace` seconds: their worker died. Returns how many.
    pub fn requeue_stale(&self, grace: f64) -> Result<usize> {
        self.requeue_older_than(now() - grace, "its worker stopped sending heartbeats")
    }

    /// Queues the running trials last heard of before `before` (Unix seconds).
    fn requeue_older_than(&self, before: f64, why: &str) -> Result<usize> {
        const STALE: &str = "study_id = ?1 AND state = 'running' AND COALESCE(heartbeat, started, 0) < ?2";
        self.conn
            .execute(&format!("DELETE FROM intermediate WHERE trial_id IN (SELECT id FROM trials WHERE {STALE})"), params![self.study_id, before])
            .map_err(self.e())?;
        self.conn
            .execute(
                &format!("UPDATE trials SET state = 'queued', started = NULL, heartbeat = NULL, message = ?3 WHERE {STALE}"),
                params![self.study_id, before, format!("retried: {why}")],
            )
            .map_err(self.e())
    }

    /// Runs `f` as one write transaction (`BEGIN IMMEDIATE`: other workers' writes wait
    /// for it), committed when `f` succeeds, rolled back when it fails.
    pub fn in_transaction<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(self.e())?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT").map_err(self.e())?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Stamps the heartbeat of these running trials (this worker's).
    pub fn heartbeat(&self, numbers: &[u64]) -> Result<()> {
        let t = now();
        for n in numbers {
            self.conn
                .execute("UPDATE trials SET heartbeat = ?1 WHERE study_id = ?2 AND number = ?3 AND state = 'running'", params![t, self.study_id, *n as i64])
                .map_err(self.e())?;
        }
        Ok(())
    }

    /// Which worker (host:process) last ran each trial, by number.
    pub fn workers(&self) -> Result<Vec<(u64, Option<String>)>> {
        let mut stmt = self.conn.prepare("SELECT number, worker FROM trials WHERE study_id = ?1 ORDER BY number").map_err(self.e())?;
        let rows = stmt.query_map([self.study_id], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))).map_err(self.e())?;
        rows.collect::<std::result::Result<_, _>>().map_err(self.e())
    }

    /// Every trial of the study, by number, with its intermediate values.
    pub fn trials(&self) -> Result<Vec<TrialRecord>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, number, state, params, value, scores, attempts, seconds, message FROM trials WHERE study_id = ?1 ORDER BY number",
            )
            .map_err(self.e())?;
        type Row = (i64, i64, String, String, Option<f64>, Option<String>, i64, Option<f64>, Option<String>);
        let rows: Vec<Row> = stmt
            .query_map([self.study_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))
            })
            .map_err(self.e())?
            .collect::<std::result::Result<_, _>>()
            .map_err(self.e())?;
        let mut inter = self.conn.prepare("SELECT step, value FROM intermediate WHERE trial_id = ?1 ORDER BY step").map_err(self.e())?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, number, state, params, value, scores, attempts, seconds, message) in rows {
            let intermediate: Vec<(u64, f64)> = inter
                .query_map([id], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
                .map_err(self.e())?
                .collect::<std::result::Result<_, _>>()
                .map_err(self.e())?;
            out.push(TrialRecord {
                number: number as u64,
                state: TrialState::parse(&state)?,
                params: serde_json::from_str(&params).map_err(|e| Error::format(&self.path, format!("trial {number} params: {e}")))?,
                value,
                scores: scores.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(serde_json::Value::Null),
                intermediate,
                attempts: attempts as u32,
                seconds,
                message,
            });
        }
        Ok(out)
    }

    /// Starts a new trial with the next number.
    pub fn create_trial(&self, params: &Params) -> Result<u64> {
        let json = serde_json::to_string(params).expect("params serialize");
        // One statement, so the number is taken atomically.
        self.conn
            .execute(
                "INSERT INTO trials (study_id, number, state, params, attempts, started, heartbeat, worker)
                 VALUES (?1, (SELECT COALESCE(MAX(number), -1) + 1 FROM trials WHERE study_id = ?1), 'running', ?2, 1, ?3, ?3, ?4)",
                params![self.study_id, json, now(), worker_name()],
            )
            .map_err(self.e())?;
        let number: i64 = self
            .conn
            .query_row("SELECT number FROM trials WHERE id = ?1", [self.conn.last_insert_rowid()], |r| r.get(0))
            .map_err(self.e())?;
        Ok(number as u64)
    }

    /// Takes the lowest-numbered queued trial (to retry it), marking it running.
    pub fn claim_queued(&self) -> Result<Option<(u64, Params)>> {
        let row: Option<(i64, i64, String)> = self
            .conn
            .query_row(
                "SELECT id, number, params FROM trials WHERE study_id = ?1 AND state = 'queued' ORDER BY number LIMIT 1",
                [self.study_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(self.e())?;
        let Some((id, number, params)) = row else { return Ok(None) };
        self.conn
            .execute(
                "UPDATE trials SET state = 'running', attempts = attempts + 1, started = ?2, heartbeat = ?2, worker = ?3 WHERE id = ?1",
                params![id, now(), worker_name()],
            )
            .map_err(self.e())?;
        let params = serde_json::from_str(&params).map_err(|e| Error::format(&self.path, format!("trial {number} params: {e}")))?;
        Ok(Some((number as u64, params)))
    }

    fn trial_id(&self, number: u64) -> Result<i64> {
        self.conn
            .query_row("SELECT id FROM trials WHERE study_id = ?1 AND number = ?2", params![self.study_id, number as i64], |r| r.get(0))
            .map_err(self.e())
    }

    /// Records the parameters chosen so far (so a retry uses the same ones).
    pub fn set_params(&self, number: u64, params: &Params) -> Result<()> {
        let json = serde_json::to_string(params).expect("params serialize");
        self.conn
            .execute("UPDATE trials SET params = ?1 WHERE study_id = ?2 AND number = ?3", params![json, self.study_id, number as i64])
            .map_err(self.e())?;
        Ok(())
    }

    pub fn report(&self, number: u64, step: u64, value: f64) -> Result<()> {
        let id = self.trial_id(number)?;
        // SQLite stores NaN as NULL, so a diverged value is recorded as the worst one for
        // the study's direction instead (pruners then treat it as such).
        let v = match (value.is_nan(), self.info.direction) {
            (false, _) => value,
            (true, Direction::Minimize) => f64::INFINITY,
            (true, Direction::Maximize) => f64::NEG_INFINITY,
        };
        self.conn
            .execute("INSERT OR REPLACE INTO intermediate (trial_id, step, value) VALUES (?1, ?2, ?3)", params![id, step as i64, v])
            .map_err(self.e())?;
        Ok(())
    }

    /// Marks a trial this worker runs finished. Returns false when the trial is no
    /// longer this worker's (it went silent past the grace period and was queued for
    /// another): the result is then dropped, so the trial counts once.
    pub fn finish(&self, number: u64, state: TrialState, value: Option<f64>, scores: &serde_json::Value, seconds: f64, message: Option<&str>) -> Result<bool> {
        let changed = self
            .conn
            .execute(
                "UPDATE trials SET state = ?1, value = ?2, scores = ?3, seconds = ?4, message = ?5
                 WHERE study_id = ?6 AND number = ?7 AND state = 'running' AND COALESCE(worker, ?8) = ?8",
                params![state.as_str(), value.filter(|v| !v.is_nan()), scores.to_string(), seconds, message, self.study_id, number as i64, worker_name()],
            )
            .map_err(self.e())?;
        Ok(changed == 1)
    }

    /// The best complete trial.
    pub fn best(&self) -> Result<Option<TrialRecord>> {
        let d = self.info.direction;
        Ok(self
            .trials()?
            .into_iter()
            .filter(|t| t.state == TrialState::Complete && t.value.is_some_and(f64::is_finite))
            .reduce(|a, b| if d.better(b.value.unwrap(), a.value.unwrap()) { b } else { a }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::ParamValue;

    fn info(name: &str) -> StudyInfo {
        StudyInfo { name: name.into(), direction: Direction::Maximize, metric: "accuracy".into(), config: serde_json::json!({"k": 1}) }
    }

    #[test]
    fn the_lock_never_touches_a_file_descent_did_not_create() {
        let dir = std::env::temp_dir().join(format!("descent-store-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A study stored in `poetry.toml` once locked (and truncated) `poetry.lock`.
        let (storage, neighbour) = (dir.join("poetry.toml"), dir.join("poetry.lock"));
        let _ = std::fs::remove_file(&storage);
        std::fs::write(&neighbour, "[[package]]\nname = \"kept\"\n").unwrap();
        // Even a file under the lock's own name keeps its contents.
        let own = dir.join("poetry.toml.lock");
        std::fs::write(&own, "someone's notes").unwrap();
        {
            // Two workers at once, both through the lock.
            let _s = Store::open_for_work(&storage, info("a")).unwrap();
            let _t = Store::open_for_work(&storage, info("a")).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&neighbour).unwrap(), "[[package]]\nname = \"kept\"\n");
        assert_eq!(std::fs::read_to_string(&own).unwrap(), "someone's notes");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn trials_round_trip_and_interrupted_ones_are_requeued() {
        let dir = std::env::temp_dir().join(format!("descent-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sqlite");
        let _ = std::fs::remove_file(&path);
        let p = Params::from([("lr".to_string(), ParamValue::Float(0.01))]);
        {
            let s = Store::open_for_work(&path, info("a")).unwrap();
            assert_eq!(s.create_trial(&p).unwrap(), 0);
            assert_eq!(s.create_trial(&p).unwrap(), 1);
            s.report(0, 1, 0.5).unwrap();
            s.report(0, 2, 0.7).unwrap();
            s.finish(0, TrialState::Complete, Some(0.7), &serde_json::json!({"x": 1}), 1.5, None).unwrap();
            s.report(1, 1, 0.2).unwrap();
            // A second worker opening meanwhile leaves the first one's running trial
            // alone: its worker is alive (it holds the lock), and its heartbeat is fresh.
            let other = Store::open_for_work(&path, info("a")).unwrap();
            assert_eq!(other.requeue_stale(60.0).unwrap(), 0);
            assert_eq!(other.trials().unwrap()[1].state, TrialState::Running);
            // Dropped here with trial 1 still running, as if killed.
        }
        let s = Store::open_for_work(&path, info("a")).unwrap();
        let t = s.trials().unwrap();
        assert_eq!(t[0].state, TrialState::Complete);
        assert_eq!(t[0].intermediate, vec![(1, 0.5), (2, 0.7)]);
        assert_eq!(t[0].params, p);
        assert_eq!(t[1].state, TrialState::Queued);
        assert!(t[1].intermediate.is_empty(), "partial values of the interrupted attempt are dropped");
        assert_eq!(s.claim_queued().unwrap(), Some((1, p.clone())));
        assert_eq!(s.claim_queued().unwrap(), None);
        assert_eq!(s.trials().unwrap()[1].attempts, 2);
        // A running trial silent past the grace period is queued again.
        assert_eq!(s.requeue_stale(60.0).unwrap(), 0);
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert_eq!(s.requeue_stale(0.01).unwrap(), 1);
        assert_eq!(s.trials().unwrap()[1].state, TrialState::Queued);
        assert_eq!(s.claim_queued().unwrap(), Some((1, p.clone())));
        assert_eq!(s.best().unwrap().unwrap().number, 0);
        // A diverged (NaN) value is kept as the worst one for a maximized metric.
        let n = s.create_trial(&p).unwrap();
        s.report(n, 1, f64::NAN).unwrap();
        assert_eq!(s.trials().unwrap()[n as usize].intermediate, vec![(1, f64::NEG_INFINITY)]);
        drop(s);
        // Same name, other direction: refused with an explanation.
        let other = StudyInfo { direction: Direction::Minimize, ..info("a") };
        assert!(Store::open_for_work(&path, other).err().unwrap().to_string().contains("exists with maximize"));
        // Read-only opening finds the only study without a name.
        assert_eq!(Store::open_read(&path, None).unwrap().info.name, "a");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
