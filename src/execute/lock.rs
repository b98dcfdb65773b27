//! One process at a time changes the tenant from a given database: an exclusive OS lock on
//! `<database>.lock`. The kernel releases it when the process ends, however it ends (a kill
//! leaves no stale lock behind). The file says who holds it, for the refusal message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Held while a command may write to the tenant; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another b2b-convert process is working on {database} ({holder}); wait for it to finish or stop it, then try again"
    )]
    Held { database: String, holder: String },
    #[error("cannot open the lock file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RunLock {
    /// Takes the lock of the database at `database`, describing this holder as `what`
    /// (e.g. `run --wave pilot`). Never waits.
    pub fn acquire(database: &Path, what: &str) -> Result<Self, LockError> {
        let path = lock_path(database);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    database: database.display().to_string(),
                    holder: if holder.is_empty() {
                        "holder unknown".into()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(TryLockError::Error(err)) => return Err(io(err)),
        }
        let started = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(
            file,
            "pid {}, `{what}`, since {started}",
            std::process::id()
        )
        .map_err(io)?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_description() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let first = RunLock::acquire(&db, "run --wave pilot").unwrap();
        let err = RunLock::acquire(&db, "run --wave second").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("run --wave pilot"), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        RunLock::acquire(&db, "run --wave second").expect("released on drop");
    }
}
