//! Run folders: `<output.dir>/<name>-NNN`, one per run. A folder is complete once it
//! holds `metrics.json`, which is written last; a run killed or failed while writing
//! leaves a folder without it, and [`missing_run_files`] says what is missing.
//!
//! With `backup_and_restore`, a run killed and rerun any number of times ends as one
//! folder: the first attempt records its folder's name beside the backup, every rerun
//! writes into that folder again, and the backup goes only once the folder is complete.
//! (Deleting it at the end of `fit`, as Keras does, loses the whole training when the
//! kill lands while the folder is being written.)

use std::path::{Path, PathBuf};

use super::Experiment;
use crate::error::{Error, Result};
use crate::io::{write_atomic, MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE};
use crate::train::BackupAndRestore;

/// The file a complete run folder is known by: written after everything else.
pub const METRICS_FILE: &str = "metrics.json";

/// Why a run stopped with an error (`diverged` or `failed`, and the message).
pub const STATUS_FILE: &str = "status.json";

/// Beside a backup: the name of the run folder the backup belongs to.
const BACKUP_RUN_FOLDER: &str = "run_folder";

/// What every completed run folder holds, in the order the run writes it.
const RUN_FILES: [&str; 6] = ["config.toml", "history.csv", "loss.svg", MODEL_WEIGHTS_FILE, MODEL_CONFIG_FILE, METRICS_FILE];

/// The files of a completed run that `dir` lacks (none: the run folder is complete).
pub fn missing_run_files(dir: &Path) -> Vec<&'static str> {
    RUN_FILES.into_iter().filter(|f| !dir.join(f).is_file()).collect()
}

/// Creates `root/<name>-NNN` with the next free number (atomically: `create_dir` fails
/// if another run took the number first).
pub fn next_run_dir(root: &Path, name: &str) -> Result<PathBuf> {
    claim_run_dir(root, name, &mut |_| Ok(()))
}

/// [`next_run_dir`], calling `claim` with each candidate folder before creating it.
fn claim_run_dir(root: &Path, name: &str, claim: &mut dyn FnMut(&str) -> Result<()>) -> Result<PathBuf> {
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    for n in 1..100_000 {
        let folder = format!("{name}-{n:03}");
        let dir = root.join(&folder);
        if dir.exists() {
            continue;
        }
        claim(&folder)?;
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&dir, e)),
        }
    }
    Err(Error::State(format!("no free run folder under {}", root.display())))
}

/// Removes what [`write_atomic`] calls killed mid-write left in `dir` (`.<file>.tmp-<pid>`):
/// a run killed and rerun twenty times would otherwise keep twenty partial copies of its
/// model.
fn remove_partial_writes(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let partial = name.starts_with('.') && name.rsplit_once(".tmp-").is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        if partial && entry.file_type().is_ok_and(|t| t.is_file()) {
            remove_if_present(&entry.path())?;
        }
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

impl Experiment {
    /// The experiment's `backup_and_restore` backup for runs under `root`, if it has one,
    /// as the fit uses it: the fit never deletes it ([`Experiment::finish_backup`] does).
    pub(super) fn backup_under(&self, root: &Path) -> Option<BackupAndRestore> {
        self.callbacks.iter().find_map(|c| c.backup(root, self.name())).map(|b| b.delete_checkpoint(false))
    }

    /// The folder for a run under `root`: with a backup, the folder of the run it resumes
    /// when there is one (made incomplete again until this run completes it), else the
    /// next free one — recorded beside the backup before it is created, so no kill leaves
    /// a folder the rerun does not know.
    pub(super) fn open_run_dir(&self, root: &Path) -> Result<PathBuf> {
        let Some(backup) = self.backup_under(root) else {
            return next_run_dir(root, self.name());
        };
        let marker = backup.backup_dir.join(BACKUP_RUN_FOLDER);
        let resumed = std::fs::read_to_string(&marker).ok().and_then(|n| self.own_run_folder(root, n.trim()));
        let Some(dir) = resumed else {
            std::fs::create_dir_all(&backup.backup_dir).map_err(|e| Error::io(&backup.backup_dir, e))?;
            return claim_run_dir(root, self.name(), &mut |folder| write_atomic(&marker, folder.as_bytes()));
        };
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        // The completion mark first, so the folder is never complete with stale parts.
        for file in [METRICS_FILE, STATUS_FILE, MODEL_CONFIG_FILE] {
            remove_if_present(&dir.join(file))?;
        }
        remove_partial_writes(&dir)?;
        remove_partial_writes(&backup.backup_dir)?;
        Ok(dir)
    }

    /// `root/<name>` when `name` is one of this experiment's run folders: `<name>-NNN`, a
    /// single path component (the record may come from someone else).
    fn own_run_folder(&self, root: &Path, name: &str) -> Option<PathBuf> {
        let number = name.strip_prefix(self.name())?.strip_prefix('-')?;
        let ours = number.len() >= 3 && number.bytes().all(|b| b.is_ascii_digit());
        ours.then(|| root.join(name))
    }

    /// Once the run folder under `root` is complete: the backup goes (unless the callback
    /// says `delete_checkpoint = false`), and so does the record of its folder, so the next
    /// run starts a folder of its own.
    pub(super) fn finish_backup(&self, root: &Path) -> Result<()> {
        let Some(configured) = self.callbacks.iter().find_map(|c| c.backup(root, self.name())) else {
            return Ok(());
        };
        if configured.delete_checkpoint {
            remove_if_present(&configured.path())?;
        }
        remove_if_present(&configured.backup_dir.join(BACKUP_RUN_FOLDER))?;
        // Only when nothing else is in it.
        let _ = std::fs::remove_dir(&configured.backup_dir);
        Ok(())
    }
}
