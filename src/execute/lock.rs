//! One process at a time changes the tenant from a given database: an exclusive OS lock on
//! `<database>.lock` beside the database file itself, however the path to it is spelt
//! (relative, through symbolic links or `..`: the path is resolved first). A second hard
//! link, which would give the database a second name, is refused when the store opens
//! (`store::Error::HardLinked`). The kernel releases the lock when the process ends, however
//! it ends (a kill leaves no stale lock behind). The file says who holds it, for the refusal
//! message.
//!
//! The lock is a file of its own, never the database: SQLite's POSIX locks on the database
//! would be dropped by closing any other descriptor this process had on it.

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
    #[error(
        "cannot create the lock file {}: {source}; the folder of the database must be writable for the user who runs b2b-convert",
        path.display()
    )]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RunLock {
    /// Takes the lock of the database at `database`, describing this holder as `what`
    /// (e.g. `run --wave pilot`). Never waits.
    pub fn acquire(database: &Path, what: &str) -> Result<Self, LockError> {
        let database = resolved(database).map_err(|source| LockError::Io {
            path: database.to_path_buf(),
            source,
        })?;
        let path = lock_path(&database);
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

/// The database's own path: symbolic links and `..` resolved, so that every spelling of the
/// path names the same lock. A database not created yet is named by its resolved folder.
fn resolved(database: &Path) -> std::io::Result<PathBuf> {
    match std::fs::canonicalize(database) {
        Ok(path) => Ok(path),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let (Some(parent), Some(name)) = (database.parent(), database.file_name()) else {
                return Err(err);
            };
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            Ok(std::fs::canonicalize(parent)?.join(name))
        }
        Err(err) => Err(err),
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

    #[test]
    fn every_spelling_of_the_path_names_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        std::fs::write(&db, b"").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let link = dir.path().join("sub").join("link.db");
        std::os::unix::fs::symlink(&db, &link).unwrap();
        let first = RunLock::acquire(&link, "run --wave pilot").unwrap();
        for spelling in [
            db.clone(),
            dir.path().join("sub").join("..").join("state.db"),
            link.clone(),
        ] {
            let err = RunLock::acquire(&spelling, "run --wave second").unwrap_err();
            assert!(
                matches!(err, LockError::Held { .. }),
                "{}: {err}",
                spelling.display()
            );
        }
        assert_eq!(
            first.path(),
            std::fs::canonicalize(&db)
                .unwrap()
                .with_extension("db.lock")
        );
    }

    #[test]
    fn a_database_not_created_yet_is_locked_by_its_resolved_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let _first =
            RunLock::acquire(&dir.path().join("sub/../new.db"), "run --wave pilot").unwrap();
        let err = RunLock::acquire(&dir.path().join("new.db"), "run").unwrap_err();
        assert!(matches!(err, LockError::Held { .. }), "{err}");
    }
}
