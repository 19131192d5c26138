//! The study database: studies, their trials (parameters, state, value, scores,
//! timing) and every reported intermediate value — in one SQLite file (the embedded
//! default) or on a PostgreSQL server (`storage = "postgresql://…"`, feature
//! `postgres`), with the same semantics (`db.rs` holds what differs).
//!
//! Each change is one autocommitted statement (or one transaction), durable when it
//! returns (SQLite: `synchronous = FULL`), so a process killed at any instant leaves the
//! study consistent: a trial is either recorded as finished or still marked running.
//!
//! Several worker processes may share a study (`mpirun -np N descent tune`, several
//! `descent tune` at once, machines sharing a server), with the semantics of Optuna's
//! RDB storage:
//! - a trial is claimed or created inside one write transaction that excludes the other
//!   workers' (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: the study's row `FOR UPDATE`), so no
//!   two workers take the same trial and the budget is used exactly;
//! - every worker stamps a heartbeat on its running trials; a running trial whose
//!   heartbeat is older than the grace period belongs to a dead worker: it is queued
//!   again (its partial intermediate values dropped) and retried with its stored
//!   parameters under the same number — nothing lost, nothing counted twice.
//!
//! Every worker holds a shared lock on the study (a lock file beside a SQLite study, a
//! session advisory lock on a server, released with a killed worker's connection). One
//! that finds it free when it opens the study is alone, so every running trial is a
//! dead run's and is queued at once (no grace period to wait out).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::db::{Db, Ty, V};
use crate::space::Params;
use crate::trial::{Direction, TrialRecord, TrialState};
use descent::{Error, Result};

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
    db: Db,
    study_id: i64,
    pub info: StudyInfo,
    /// The SQLite file, or the server's URL.
    pub path: PathBuf,
    /// Held (shared) while this process works on a SQLite study.
    _lock: Option<File>,
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

/// This worker's name in the store: host and process.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into());
    format!("{host}:{}", std::process::id())
}

impl Store {
    /// Opens (creating if needed) the study `info.name` in `path` (a SQLite file or a
    /// `postgresql://` URL) for work, as one of its workers; when no other worker has it
    /// open, queues the trials a killed run left running. An existing study must have
    /// the same direction and metric.
    pub fn open_for_work(path: &Path, info: StudyInfo) -> Result<Store> {
        let server = crate::db::is_server_url(path);
        // Opened, never truncated: a file of that name that descent did not create keeps
        // its contents (it is only locked).
        let lock_path = lock_path_of(path);
        let lock = if server {
            None
        } else {
            Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .map_err(|e| Error::Io { path: lock_path.clone(), source: e })?,
            )
        };
        let lock_err = |e: std::io::Error| Error::Io { path: lock_path.clone(), source: e };
        // Free: no other worker is alive. Held (shared) by others: they are.
        let alone = lock.as_ref().is_some_and(|l| l.try_lock().is_ok());
        let db = Db::open(path)?;
        // Created by whichever worker comes first (the others' insert is ignored), then
        // read back by every one.
        db.exec(
            path,
            "INSERT INTO studies (name, direction, metric, config, created) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
            &[V::T(info.name.clone()), V::T(info.direction.as_str().into()), V::T(info.metric.clone()), V::T(info.config.to_string()), V::F(now())],
        )?;
        let row = db.rows(path, "SELECT id, direction, metric FROM studies WHERE name = ?1", &[V::T(info.name.clone())], &[Ty::I, Ty::T, Ty::T])?;
        let row = row.first().ok_or_else(|| Error::State(format!("study `{}` vanished while opening", info.name)))?;
        let (study_id, direction, metric) = (row[0].i(), row[1].t(), row[2].t());
        if direction != info.direction.as_str() || metric != info.metric {
            return Err(Error::Config(format!(
                "{}: study `{}` exists with {direction} {metric}, not {} {}; use another study name or file",
                crate::db::shown(path),
                info.name,
                info.direction.as_str(),
                info.metric
            )));
        }
        db.exec(path, "UPDATE studies SET config = ?1 WHERE id = ?2", &[V::T(info.config.to_string()), V::I(study_id)])?;
        let store = Store { db, study_id, info, path: path.to_path_buf(), _lock: None };
        if server {
            #[cfg(feature = "postgres")]
            store.db.join_server_study(path, study_id, || store.requeue_running("its worker was interrupted").map(|_| ()))?;
            return Ok(store);
        }
        let lock = lock.expect("a file study has its lock");
        if alone {
            store.requeue_running("its worker was interrupted")?;
            lock.unlock().map_err(lock_err)?;
            // A worker opening in between found the lock free too: it queued the same
            // dead trials (the same change) and claimed nothing before taking it shared.
        }
        lock.lock_shared().map_err(lock_err)?;
        Ok(Store { _lock: Some(lock), ..store })
    }

    /// Opens a study read-only (for `descent study show|best|export`); `name` may be
    /// omitted when the storage holds one study.
    pub fn open_read(path: &Path, name: Option<&str>) -> Result<Store> {
        if !crate::db::is_server_url(path) && !path.exists() {
            return Err(Error::Io { path: path.into(), source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such study database") });
        }
        let db = Db::open(path)?;
        let rows = db.rows(path, "SELECT id, name, direction, metric, config FROM studies ORDER BY id", &[], &[Ty::I, Ty::T, Ty::T, Ty::T, Ty::T])?;
        let names: Vec<String> = rows.iter().map(|r| r[1].t()).collect();
        let row = match name {
            Some(n) => rows.iter().find(|r| r[1].t() == n),
            None if rows.len() == 1 => rows.first(),
            None => None,
        }
        .ok_or_else(|| Error::Config(format!("{}: choose a study with --study (it holds: {})", crate::db::shown(path), names.join(", "))))?;
        let info = StudyInfo {
            name: row[1].t(),
            direction: Direction::parse(&row[2].t())?,
            metric: row[3].t(),
            config: serde_json::from_str(&row[4].t()).unwrap_or(serde_json::Value::Null),
        };
        Ok(Store { study_id: row[0].i(), db, info, path: path.to_path_buf(), _lock: None })
    }

    fn exec(&self, sql: &str, params: &[V]) -> Result<usize> {
        self.db.exec(&self.path, sql, params)
    }
    fn rows(&self, sql: &str, params: &[V], types: &[Ty]) -> Result<Vec<Vec<V>>> {
        self.db.rows(&self.path, sql, params, types)
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
        let at = [V::I(self.study_id), V::F(before)];
        self.exec(&format!("DELETE FROM intermediate WHERE trial_id IN (SELECT id FROM trials WHERE {STALE})"), &at)?;
        self.exec(
            &format!("UPDATE trials SET state = 'queued', started = NULL, heartbeat = NULL, message = ?3 WHERE {STALE}"),
            &[V::I(self.study_id), V::F(before), V::T(format!("retried: {why}"))],
        )
    }

    /// Runs `f` as one write transaction that excludes the other workers', committed
    /// when `f` succeeds, rolled back when it fails.
    pub fn in_transaction<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        self.db.begin(&self.path, self.study_id)?;
        match f(self) {
            Ok(v) => {
                self.db.end(&self.path, true)?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.db.end(&self.path, false);
                Err(e)
            }
        }
    }

    /// Stamps the heartbeat of these running trials (this worker's).
    pub fn heartbeat(&self, numbers: &[u64]) -> Result<()> {
        let t = now();
        for n in numbers {
            self.exec("UPDATE trials SET heartbeat = ?1 WHERE study_id = ?2 AND number = ?3 AND state = 'running'", &[V::F(t), V::I(self.study_id), V::I(*n as i64)])?;
        }
        Ok(())
    }

    /// Which worker (host:process) last ran each trial, by number.
    pub fn workers(&self) -> Result<Vec<(u64, Option<String>)>> {
        let rows = self.rows("SELECT number, worker FROM trials WHERE study_id = ?1 ORDER BY number", &[V::I(self.study_id)], &[Ty::I, Ty::OT])?;
        Ok(rows.into_iter().map(|r| (r[0].i() as u64, r[1].ot())).collect())
    }

    fn parse_params(&self, number: i64, json: &str) -> Result<Params> {
        serde_json::from_str(json).map_err(|e| Error::format(crate::db::shown(&self.path), format!("trial {number} params: {e}")))
    }

    /// Every trial of the study, by number, with its intermediate values.
    pub fn trials(&self) -> Result<Vec<TrialRecord>> {
        let rows = self.rows(
            "SELECT id, number, state, params, value, scores, attempts, seconds, message FROM trials WHERE study_id = ?1 ORDER BY number",
            &[V::I(self.study_id)],
            &[Ty::I, Ty::I, Ty::T, Ty::T, Ty::OF, Ty::OT, Ty::I, Ty::OF, Ty::OT],
        )?;
        let values = self.rows(
            "SELECT i.trial_id, i.step, i.value FROM intermediate i JOIN trials t ON t.id = i.trial_id WHERE t.study_id = ?1 ORDER BY i.trial_id, i.step",
            &[V::I(self.study_id)],
            &[Ty::I, Ty::I, Ty::OF],
        )?;
        let mut by_trial: std::collections::HashMap<i64, Vec<(u64, f64)>> = std::collections::HashMap::new();
        for v in values {
            by_trial.entry(v[0].i()).or_default().push((v[1].i() as u64, v[2].of().unwrap_or(f64::NAN)));
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let number = r[1].i();
            out.push(TrialRecord {
                number: number as u64,
                state: TrialState::parse(&r[2].t())?,
                params: self.parse_params(number, &r[3].t())?,
                value: r[4].of(),
                scores: r[5].ot().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(serde_json::Value::Null),
                intermediate: by_trial.remove(&r[0].i()).unwrap_or_default(),
                attempts: r[6].i() as u32,
                seconds: r[7].of(),
                message: r[8].ot(),
            });
        }
        Ok(out)
    }

    /// Starts a new trial with the next number.
    pub fn create_trial(&self, params: &Params) -> Result<u64> {
        let json = serde_json::to_string(params).expect("params serialize");
        // One statement, so the number is taken atomically.
        let t = now();
        let rows = self.rows(
            "INSERT INTO trials (study_id, number, state, params, attempts, started, heartbeat, worker)
             VALUES (?1, (SELECT COALESCE(MAX(number), -1) + 1 FROM trials WHERE study_id = ?1), 'running', ?2, 1, ?3, ?3, ?4) RETURNING number",
            &[V::I(self.study_id), V::T(json), V::F(t), V::T(worker_name())],
            &[Ty::I],
        )?;
        Ok(rows.first().map_or(0, |r| r[0].i()) as u64)
    }

    /// Takes the lowest-numbered queued trial (to retry it), marking it running.
    pub fn claim_queued(&self) -> Result<Option<(u64, Params)>> {
        let rows = self.rows(
            "SELECT id, number, params FROM trials WHERE study_id = ?1 AND state = 'queued' ORDER BY number LIMIT 1",
            &[V::I(self.study_id)],
            &[Ty::I, Ty::I, Ty::T],
        )?;
        let Some(r) = rows.first() else { return Ok(None) };
        let (id, number) = (r[0].i(), r[1].i());
        self.exec(
            "UPDATE trials SET state = 'running', attempts = attempts + 1, started = ?2, heartbeat = ?2, worker = ?3 WHERE id = ?1",
            &[V::I(id), V::F(now()), V::T(worker_name())],
        )?;
        Ok(Some((number as u64, self.parse_params(number, &r[2].t())?)))
    }

    fn trial_id(&self, number: u64) -> Result<i64> {
        let rows = self.rows("SELECT id FROM trials WHERE study_id = ?1 AND number = ?2", &[V::I(self.study_id), V::I(number as i64)], &[Ty::I])?;
        rows.first().map(|r| r[0].i()).ok_or_else(|| Error::State(format!("{}: no trial {number}", crate::db::shown(&self.path))))
    }

    /// Records the parameters chosen so far (so a retry uses the same ones).
    pub fn set_params(&self, number: u64, params: &Params) -> Result<()> {
        let json = serde_json::to_string(params).expect("params serialize");
        self.exec("UPDATE trials SET params = ?1 WHERE study_id = ?2 AND number = ?3", &[V::T(json), V::I(self.study_id), V::I(number as i64)])?;
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
        self.exec(
            "INSERT INTO intermediate (trial_id, step, value) VALUES (?1, ?2, ?3) ON CONFLICT (trial_id, step) DO UPDATE SET value = excluded.value",
            &[V::I(id), V::I(step as i64), V::F(v)],
        )?;
        Ok(())
    }

    /// Marks a trial this worker runs finished. Returns false when the trial is no
    /// longer this worker's (it went silent past the grace period and was queued for
    /// another): the result is then dropped, so the trial counts once.
    pub fn finish(&self, number: u64, state: TrialState, value: Option<f64>, scores: &serde_json::Value, seconds: f64, message: Option<&str>) -> Result<bool> {
        let changed = self.exec(
            "UPDATE trials SET state = ?1, value = ?2, scores = ?3, seconds = ?4, message = ?5
             WHERE study_id = ?6 AND number = ?7 AND state = 'running' AND COALESCE(worker, ?8) = ?8",
            &[
                V::T(state.as_str().into()),
                V::OF(value.filter(|v| !v.is_nan())),
                V::T(scores.to_string()),
                V::F(seconds),
                V::OT(message.map(str::to_string)),
                V::I(self.study_id),
                V::I(number as i64),
                V::T(worker_name()),
            ],
        )?;
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
        let s = round_trip(&path, "a");
        drop(s);
        // Same name, other direction: refused with an explanation.
        let other = StudyInfo { direction: Direction::Minimize, ..info("a") };
        assert!(Store::open_for_work(&path, other).err().unwrap().to_string().contains("exists with maximize"));
        // Read-only opening finds the only study without a name.
        assert_eq!(Store::open_read(&path, None).unwrap().info.name, "a");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Trials through a store at `storage` (a file or a server): recorded, a killed
    /// worker's running trial left alone while another worker lives, queued again once
    /// no worker is, retried, and queued again after silence past the grace period.
    fn round_trip(storage: &Path, name: &str) -> Store {
        let p = Params::from([("lr".to_string(), ParamValue::Float(0.01))]);
        {
            let s = Store::open_for_work(storage, info(name)).unwrap();
            assert_eq!(s.create_trial(&p).unwrap(), 0);
            assert_eq!(s.create_trial(&p).unwrap(), 1);
            s.report(0, 1, 0.5).unwrap();
            s.report(0, 2, 0.7).unwrap();
            assert!(s.finish(0, TrialState::Complete, Some(0.7), &serde_json::json!({"x": 1}), 1.5, None).unwrap());
            s.report(1, 1, 0.2).unwrap();
            // A second worker opening meanwhile leaves the first one's running trial
            // alone: its worker is alive (it holds the lock), and its heartbeat is fresh.
            let other = Store::open_for_work(storage, info(name)).unwrap();
            assert_eq!(other.requeue_stale(60.0).unwrap(), 0);
            assert_eq!(other.trials().unwrap()[1].state, TrialState::Running);
            // Dropped here with trial 1 still running, as if killed.
        }
        let s = Store::open_for_work(storage, info(name)).unwrap();
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
        s
    }

    /// The server the PostgreSQL tests use (`.ci/run` starts one and sets this).
    #[cfg(feature = "postgres")]
    pub(crate) fn test_server() -> PathBuf {
        let url = std::env::var("DESCENT_TEST_POSTGRES")
            .expect("set DESCENT_TEST_POSTGRES to a PostgreSQL server URL (e.g. postgresql://descent:descent@localhost/descent_test) to run the PostgreSQL tests");
        PathBuf::from(url)
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn trials_round_trip_on_a_postgresql_server() {
        let server = test_server();
        // A name of its own: the server keeps every earlier run's studies.
        let name = format!("roundtrip-{}-{}", std::process::id(), now() as u64);
        let s = round_trip(&server, &name);
        drop(s);
        let other = StudyInfo { direction: Direction::Minimize, ..info(&name) };
        assert!(Store::open_for_work(&server, other).err().unwrap().to_string().contains("exists with maximize"));
        let read = Store::open_read(&server, Some(&name)).unwrap();
        assert_eq!(read.trials().unwrap().len(), 3);
        // The message shows the server without its password.
        let bad = PathBuf::from("postgresql://descent:wrong@localhost:1/none");
        let e = Store::open_read(&bad, None).err().unwrap().to_string();
        assert!(e.contains("descent:***@localhost") && !e.contains("wrong"), "{e}");
    }
}
