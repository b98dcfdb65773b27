//! Writing files the operator will keep: atomically (temporary file + rename, so a crash never
//! leaves half a file) and private (mode 0600: they hold tenant data).
//!
//! Owns file creation only; what goes into a file is the caller's business.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether an existing file at the destination may be replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    Yes,
    No,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{} already exists; it was left as it is (--force replaces it)", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes `contents` to `path` with mode 0600, atomically. With [`Overwrite::No`] an existing
/// file is left untouched and [`Error::Exists`] returned.
pub fn write_private(path: &Path, contents: &[u8], overwrite: Overwrite) -> Result<(), Error> {
    let mut file = PendingFile::new(path)?;
    file.write_all(contents)?;
    file.persist(overwrite)
}

/// A private (0600) file being prepared beside its destination, empty at first, for content
/// that something else writes by path (SQLite's `VACUUM INTO`): it takes the destination's
/// name only when [`persist`](Self::persist)ed, and disappears if dropped before.
#[derive(Debug)]
pub struct PendingFile {
    file: tempfile::NamedTempFile,
    destination: PathBuf,
}

impl PendingFile {
    pub fn new(destination: &Path) -> Result<Self, Error> {
        let dir = match destination.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        // tempfile creates the file with mode 0600 on Unix.
        let file = tempfile::NamedTempFile::new_in(dir).map_err(|source| Error::Io {
            path: destination.to_path_buf(),
            source,
        })?;
        Ok(Self {
            file,
            destination: destination.to_path_buf(),
        })
    }

    /// Where the content goes until it is persisted.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::Io {
            path: self.destination.clone(),
            source,
        }
    }

    fn write_all(&mut self, contents: &[u8]) -> Result<(), Error> {
        self.file.write_all(contents).map_err(|e| self.io(e))
    }

    /// Flushes the file to disk and gives it the destination's name. With [`Overwrite::No`]
    /// an existing file is left untouched and [`Error::Exists`] returned.
    pub fn persist(self, overwrite: Overwrite) -> Result<(), Error> {
        self.file.as_file().sync_all().map_err(|e| self.io(e))?;
        let Self { file, destination } = self;
        let io = |source| Error::Io {
            path: destination.clone(),
            source,
        };
        match overwrite {
            Overwrite::Yes => file
                .persist(&destination)
                .map(drop)
                .map_err(|e| io(e.error)),
            Overwrite::No => file.persist_noclobber(&destination).map(drop).map_err(|e| {
                if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::Exists(destination.clone())
                } else {
                    io(e.error)
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_private_file_and_refuses_to_clobber() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_private(&path, b"first", Overwrite::No).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let err = write_private(&path, b"second", Overwrite::No).unwrap_err();
        assert!(matches!(err, Error::Exists(_)));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first");
        write_private(&path, b"third", Overwrite::Yes).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "third");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files left behind");
    }

    #[test]
    fn a_missing_folder_is_reported_with_the_path() {
        let err =
            write_private(Path::new("/nonexistent/dir/out.txt"), b"x", Overwrite::No).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/dir/out.txt"),
            "{err}"
        );
    }
}
