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
    #[error("{} already exists", .0.display())]
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
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // tempfile creates the file with mode 0600 on Unix.
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.as_file().sync_all().map_err(io)?;
    match overwrite {
        Overwrite::Yes => file.persist(path).map(drop).map_err(|e| io(e.error)),
        Overwrite::No => file.persist_noclobber(path).map(drop).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Exists(path.to_path_buf())
            } else {
                io(e.error)
            }
        }),
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
