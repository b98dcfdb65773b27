//! The SQLite state database: tenant facts, user snapshots, org contacts, waves with their per-user decisions
//! and progress, conversion baselines, and the append-only event log. It is the source of truth of every run.
//!
//! The only module with SQL. It opens the database (WAL, foreign keys, busy timeout, mode 0600),
//! applies the migrations in `migrations/`, and offers one typed function per query. It must not
//! call Graph, evaluate rules, or hold secrets: nothing secret is ever written here.
//!
//! One file per idea: `tenant` (facts, domains, realm cache), `users` (snapshot upserts and
//! discovery runs), `contacts` (org contacts and when they were read), `addresses` (the
//! address index and its look-ups), `snapshot` (the read
//! transaction a plan reads through), `waves` (wave rows), `members` (member rows and their
//! queries), `plan_transaction` (a plan being written), `transitions` (compare-and-set state
//! changes with their event), `reinvites` (re-send operations and their compare-and-set steps),
//! `runs`, `baselines`, `events`, `preflight` (the partner pre-flight's answers per domain).

mod addresses;
mod audit;
mod baselines;
mod contacts;
mod delta;
mod events;
mod members;
mod plan_transaction;
mod preflight;
mod reinvites;
mod runs;
mod snapshot;
mod tenant;
mod transitions;
mod users;
mod waves;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

pub use addresses::{AddressOwner, AddressSource, OwnerKind};
pub use audit::{AuditFilter, MailChange, TenantWrite};
pub use delta::StoredDeltaLink;
pub use events::{Event, NewEvent};
pub use members::{MailRestore, MemberNames, PlannedMember, WaveMember};
pub use plan_transaction::{PlanPart, PlanTransaction, PreviousDecision, Replaced};
pub use reinvites::{PendingMember, Reinvite, ResendCriteria, ResendMember, ResendState, Resent};
pub use runs::{Run, RunStatus};
pub use snapshot::{AddressFields, AddressPart, RuleInputs, SnapshotRead, StoragePosition};
pub use transitions::Transition;
pub use users::upn_key;
pub use waves::{NewWave, Wave};

/// A failure in the state database. Variants a caller branches on are typed; the rest wrap sqlx.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the database file {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot read and write the database file {}: {source}; the tool keeps its state there, so it needs both (check the file's owner and mode, 0600 for the user who runs b2b-convert, and that its folder is writable)",
        path.display()
    )]
    Access {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is not a b2b-convert database (it is not an SQLite file); check --db or store.path, or move that file away",
        path.display()
    )]
    NotADatabase { path: PathBuf },
    #[error(
        "the database file {} has {links} names (hard links): SQLite keeps its write-ahead log beside the name it was opened by, so two names can corrupt it; remove the other links (keep one name, or copy the file with `cp`) and use that one path",
        path.display()
    )]
    HardLinked { path: PathBuf, links: u64 },
    #[error(
        "there is no database at {}; create it with `b2b-convert init` or `b2b-convert discover`, or name another with --db",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("cannot copy the database to {}: {reason}", path.display())]
    Copy { path: PathBuf, reason: String },
    #[error("cannot open the database {}: {source}", path.display())]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("cannot bring the database {} up to date: {source}", path.display())]
    Migrate {
        path: PathBuf,
        source: sqlx::migrate::MigrateError,
    },
    #[error(
        "this database belongs to tenant {stored}, not {found}; use a separate --db for each tenant"
    )]
    TenantMismatch { stored: String, found: String },
    #[error("a wave named `{0}` already exists")]
    WaveExists(String),
    #[error("wave {wave} has members that already started converting; it cannot be re-planned")]
    WaveStarted { wave: String },
    #[error(
        "user {user} in wave {wave} is `{actual}`, not `{expected}`: another process may be working on it"
    )]
    StateConflict {
        wave: String,
        user: String,
        expected: String,
        actual: String,
    },
    #[error("user {user} is not a member of wave {wave}")]
    NotAMember { wave: String, user: String },
    #[error("stored value in {column} cannot be read: {message}")]
    Corrupt {
        column: &'static str,
        message: String,
    },
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A transaction on the writing connection.
type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

/// The page size of a database the store creates, in bytes.
const PAGE_SIZE: u32 = 16_384;

/// The opened, migrated database.
#[derive(Clone, Debug)]
pub struct Store {
    /// The one connection that writes (one writer: no waiting on each other's locks).
    pool: SqlitePool,
    /// A second, read-only connection, opened on first use, for a [`SnapshotRead`]: in WAL
    /// mode it reads while the first writes, each on its own thread.
    readers: SqlitePool,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed, with mode 0600) and migrates the database at `path`.
    #[tracing::instrument(skip_all, fields(path = %path.display()), err)]
    pub async fn open(path: &Path) -> Result<Self> {
        create_private_file(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false)
            // 16 KiB pages for a new database (set before its first table; an existing one
            // keeps the size it was made with). A plan of a million users writes ~450 MB and
            // reads a million snapshots in id order: with 4 KiB pages that was four times the
            // page writes, checkpoint system calls and B-tree splits, and one level more to
            // every look-up (docs/performance.md: 1.5 s of 11 s).
            .page_size(PAGE_SIZE)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // A 64 MiB page cache and in-memory temporary tables: snapshots of a million users
            // touch index pages all over the file, and re-reading them costs more than memory.
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory")
            // Reading a whole snapshot takes seconds by design; that is not worth a warning.
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let readers = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(
                options
                    .clone()
                    .pragma("query_only", "true")
                    // Read the file through a memory map (up to SQLite's default ceiling of
                    // 2 GiB) rather than a system call per page: planning reads a million
                    // snapshots in id order, all over the file. The mapped pages are the OS
                    // page cache, shared and reclaimable, though they count in the process's
                    // resident size.
                    .pragma("mmap_size", "2147418112"),
            );
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|source| Error::Open {
                path: path.to_path_buf(),
                source,
            })?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|source| Error::Migrate {
                path: path.to_path_buf(),
                source,
            })?;
        tracing::debug!("database open, schema up to date");
        Ok(Self {
            pool,
            readers,
            path: path.to_path_buf(),
        })
    }

    /// Opens the database at `path` like [`open`](Self::open), but only if it exists: for
    /// commands that read the state and must not leave an empty database behind.
    pub async fn open_existing(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::Missing {
                path: path.to_path_buf(),
            });
        }
        Self::open(path).await
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The newest migration applied, for `config` and diagnostics.
    pub async fn schema_version(&self) -> Result<i64> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&self.pool)
                .await?;
        Ok(version.unwrap_or(0))
    }

    /// SQLite's own check of the whole file: `ok`, or the problems it found, one per line.
    pub async fn integrity_check(&self) -> Result<String> {
        let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await?;
        Ok(problems.join("\n"))
    }

    /// Writes a consistent copy of the whole database into `path`, an existing empty file:
    /// SQLite's `VACUUM INTO`, which reads one moment of the database (a run writing beside
    /// it is seen before or after a change, never half-way), then SQLite's integrity check of
    /// the copy. The copy is compact and needs no `-wal` beside it.
    #[tracing::instrument(skip_all, fields(path = %path.display()), err)]
    pub async fn copy_into(&self, path: &Path) -> Result<()> {
        let copy_error = |reason: String| Error::Copy {
            path: path.to_path_buf(),
            reason,
        };
        let name = path
            .to_str()
            .ok_or_else(|| copy_error("the path is not valid UTF-8".into()))?;
        sqlx::query("VACUUM INTO ?")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(|e| copy_error(e.to_string()))?;
        let mut copy = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .immutable(true)
            .connect()
            .await
            .map_err(|e| copy_error(e.to_string()))?;
        let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut copy)
            .await
            .map_err(|e| copy_error(e.to_string()))?;
        sqlx::Connection::close(copy)
            .await
            .map_err(|e| copy_error(e.to_string()))?;
        if problems != ["ok"] {
            return Err(copy_error(format!(
                "the copy fails SQLite's integrity check: {}",
                problems.join("; ")
            )));
        }
        Ok(())
    }

    /// Waits for pending writes and closes every connection, the writer last, after folding
    /// the write-ahead log into the database file (`wal_checkpoint(TRUNCATE)`), so that the
    /// `.db` file alone holds everything. SQLite's own fold on the last close is not relied on:
    /// it is skipped when another process has the database open. A checkpoint that cannot
    /// finish (another connection is reading) is reported, never fatal: the log stays beside
    /// the file, and SQLite folds it later.
    pub async fn close(self) {
        self.readers.close().await;
        match self.checkpoint().await {
            Ok(true) => {}
            Ok(false) => tracing::info!(
                "the write-ahead log of {} could not be folded in now (another process has the \
                 database open); copy it with `backup`, not by copying the file",
                self.path.display()
            ),
            Err(error) => tracing::warn!("could not checkpoint {}: {error}", self.path.display()),
        }
        self.pool.close().await;
    }

    /// Folds the write-ahead log into the database file and empties it. `false` when a
    /// reader elsewhere kept part of it from being folded.
    async fn checkpoint(&self) -> Result<bool> {
        let (busy, _frames, _folded): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await?;
        Ok(busy == 0)
    }
}

/// Creates the database file with mode 0600 if it is missing (SQLite gives its WAL and shared
/// memory files the same mode), and tightens an existing file that others can read.
fn create_private_file(path: &Path) -> Result<()> {
    let exists = path.exists();
    let fail = |source| {
        if exists {
            Error::Access {
                path: path.to_path_buf(),
                source,
            }
        } else {
            Error::Create {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::io::Read as _;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut file = options.open(path).map_err(fail)?;
        let metadata = file.metadata().map_err(fail)?;
        // An empty file becomes a database; anything else must already be one.
        if metadata.len() > 0 {
            let mut header = [0_u8; 16];
            let read = file.read(&mut header).map_err(fail)?;
            if read < header.len() || &header != b"SQLite format 3\0" {
                return Err(Error::NotADatabase {
                    path: path.to_path_buf(),
                });
            }
        }
        // SQLite names the write-ahead log and shared memory after the path it opens
        // (symbolic links resolved): through a second hard link, two processes would keep two
        // logs of one database.
        if metadata.nlink() > 1 {
            return Err(Error::HardLinked {
                path: path.to_path_buf(),
                links: metadata.nlink(),
            });
        }
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "the database was readable by other users; restricting it to mode 0600"
            );
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(fail)?;
        }
    }
    #[cfg(not(unix))]
    options.open(path).map_err(fail)?;
    Ok(())
}

/// Timestamps are stored as fixed-width UTC text so that text order is time order.
fn timestamp(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        ))
        .expect("a UTC timestamp formats")
}

fn parse_timestamp(column: &'static str, text: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| Error::Corrupt {
        column,
        message: e.to_string(),
    })
}

fn parse_optional_timestamp(
    column: &'static str,
    text: Option<&str>,
) -> Result<Option<OffsetDateTime>> {
    text.map(|t| parse_timestamp(column, t)).transpose()
}

fn parse_code<T: FromStr>(column: &'static str, text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| Error::Corrupt {
        column,
        message: e.to_string(),
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(column: &'static str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt {
        column,
        message: e.to_string(),
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes to JSON")
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Store;

    /// A migrated database in a temporary folder that lives as long as the returned guard.
    pub async fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("state.db"))
            .await
            .expect("open store");
        (dir, store)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::temp_store;
    use super::*;

    #[tokio::test]
    async fn a_database_with_a_second_hard_link_is_refused_by_either_name() {
        let (dir, store) = temp_store().await;
        let path = store.path().to_path_buf();
        store.close().await;
        let other = dir.path().join("other.db");
        std::fs::hard_link(&path, &other).unwrap();
        for name in [&path, &other] {
            let err = Store::open(name).await.unwrap_err();
            assert!(
                matches!(err, Error::HardLinked { links: 2, .. }),
                "{}: {err}",
                name.display()
            );
            assert!(err.to_string().contains("remove the other links"), "{err}");
        }
        std::fs::remove_file(&other).unwrap();
        Store::open(&path).await.expect("one name again");
    }

    /// Benchmarks and backups copy the `.db` file alone: after a clean close it must hold
    /// everything, with no write-ahead log left beside it (#19 item 6).
    #[tokio::test]
    async fn a_closed_database_leaves_no_write_ahead_log_and_its_file_alone_holds_everything() {
        let (dir, store) = temp_store().await;
        let users: Vec<_> = (1..=2_000).map(users::tests::sample_user).collect();
        for chunk in users.chunks(500) {
            store.store_users(chunk).await.unwrap();
        }
        // A read on the readers' pool too, as `plan` makes.
        store.read_snapshot().await.unwrap().end().await.unwrap();
        store.close().await;
        let path = dir.path().join("state.db");
        let wal = dir.path().join("state.db-wal");
        assert!(
            !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
            "a clean close leaves no write-ahead log ({} bytes)",
            std::fs::metadata(&wal).map_or(0, |m| m.len())
        );
        let alone = dir.path().join("alone.db");
        std::fs::copy(&path, &alone).unwrap();
        let copied = Store::open(&alone).await.unwrap();
        assert_eq!(copied.count_users().await.unwrap(), 2_000);
        copied.close().await;
    }

    #[tokio::test]
    async fn a_copy_holds_everything_and_opens_as_a_store_of_its_own() {
        let (dir, store) = temp_store().await;
        store
            .store_users(&[users::tests::sample_user(1), users::tests::sample_user(2)])
            .await
            .unwrap();
        let copy = dir.path().join("copy.db");
        std::fs::write(&copy, b"").unwrap();
        store.copy_into(&copy).await.unwrap();
        store
            .store_users(&[users::tests::sample_user(3)])
            .await
            .unwrap();
        store.close().await;
        let copied = Store::open(&copy).await.unwrap();
        assert_eq!(
            copied.count_users().await.unwrap(),
            2,
            "the moment of the copy"
        );
        assert_eq!(copied.integrity_check().await.unwrap(), "ok");
        copied.close().await;
        let err = Store::open(&dir.path().join("state.db"))
            .await
            .unwrap()
            .copy_into(&copy)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Copy { .. }),
            "a non-empty target is refused: {err}"
        );
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_or_cannot_be_written_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.db");
        std::fs::write(&text, "user,address\nada@contoso.com,\n").unwrap();
        let err = Store::open(&text).await.unwrap_err();
        assert!(matches!(err, Error::NotADatabase { .. }), "{err}");
        assert!(err.to_string().contains("not an SQLite file"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&text).unwrap(),
            "user,address\nada@contoso.com,\n",
            "left as it was"
        );

        // What root cannot open for writing either: a folder where the file should be.
        let folder = dir.path().join("folder.db");
        std::fs::create_dir(&folder).unwrap();
        let err = Store::open(&folder).await.unwrap_err();
        assert!(matches!(err, Error::Access { .. }), "{err}");
        assert!(err.to_string().contains("needs both"), "{err}");
    }

    #[tokio::test]
    async fn open_creates_a_private_migrated_database() {
        let (dir, store) = temp_store().await;
        assert!(store.schema_version().await.unwrap() >= 20_261_121_000_000);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("state.db"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(journal, "wal");
        let fks: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(fks, 1);
        assert_eq!(page_size(&store.pool).await, i64::from(PAGE_SIZE));
    }

    /// A one-connection pool on the database at `path`, opened with `options` and not by the
    /// store: to make a database as an earlier version left it.
    async fn pool_without_store(path: &Path, options: SqliteConnectOptions) -> SqlitePool {
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.filename(path).create_if_missing(true))
            .await
            .unwrap()
    }

    async fn page_size(pool: &SqlitePool) -> i64 {
        sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    /// A database made with SQLite's default 4 KiB pages (every database before 16 KiB became
    /// the store's) opens, migrates and works as it is: the page size of a database in WAL
    /// mode cannot change, and asking for another is not an error.
    #[tokio::test]
    async fn a_database_with_the_older_page_size_keeps_it_and_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let older = pool_without_store(
            &path,
            SqliteConnectOptions::new()
                .page_size(4096)
                .journal_mode(SqliteJournalMode::Wal),
        )
        .await;
        sqlx::migrate!("./migrations").run(&older).await.unwrap();
        older.close().await;
        let store = Store::open(&path).await.unwrap();
        store
            .store_users(&[users::tests::sample_user(1)])
            .await
            .unwrap();
        assert_eq!(page_size(&store.pool).await, 4096);
        assert_eq!(store.count_users().await.unwrap(), 1);
        assert_eq!(store.integrity_check().await.unwrap(), "ok");
    }

    #[tokio::test]
    async fn reopening_is_idempotent_and_tightens_permissions() {
        let (dir, store) = temp_store().await;
        let path = store.path().to_path_buf();
        store.close().await;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let store = Store::open(&path).await.unwrap();
        assert!(store.schema_version().await.unwrap() > 0);
        assert_eq!(store.integrity_check().await.unwrap(), "ok");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        drop(dir);
    }

    /// The opcodes SQLite runs for `statement`.
    async fn program(store: &Store, statement: &str) -> Vec<String> {
        use sqlx::Row;
        sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {statement}")))
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>("opcode"))
            .collect()
    }

    /// A CHECK's IN list of three or more values is checked by building a temporary B-tree of
    /// the values for every row written: a plan of a million members spent a third of its
    /// writing on them (#19). Writing a member, or its state, builds none.
    #[tokio::test]
    async fn writing_a_member_or_its_state_builds_no_temporary_b_tree() {
        let (_dir, store) = temp_store().await;
        for statement in [
            "INSERT INTO wave_members (wave_id, user_id, decision, reasons, findings,
                    chosen_address, address_origin, set_mail, snapshot_fingerprint, state,
                    planned_at, state_changed_at)
             VALUES (1, 'u', 'eligible', '[]', '[]', 'a@b.c', 'mail', 0, 'f', 'ready', 't', 't')",
            "UPDATE wave_members SET state = 'inviting', state_changed_at = 't'
             WHERE wave_id = 1 AND user_id = 'u' AND state = 'ready'",
        ] {
            let program = program(&store, statement).await;
            assert!(
                !program.iter().any(|op| op == "OpenEphemeral"),
                "{statement}\n{program:?}"
            );
        }
    }

    /// Every column of `wave_members`, in the table's order.
    const MEMBER_COLUMNS: &str = "wave_id, user_id, decision, reasons, findings, chosen_address,
        address_origin, set_mail, snapshot_fingerprint, mail_set_fingerprint, state,
        failure_kind, attempts, last_error_code, last_error_message, invitation_id,
        invite_redeem_url, planned_at, state_changed_at, invited_at, accepted_at,
        external_state_changed_at, scrambled_at, scrambled_on, mail_restore, resent_at";

    /// Every row of `table` (ordered by `order`) over `columns`, as one JSON text.
    async fn rows(pool: &SqlitePool, table: &str, columns: &str, order: &str) -> String {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT json_group_array(json_array({columns}))
             FROM (SELECT * FROM {table} ORDER BY {order})"
        )))
        .fetch_one(pool)
        .await
        .unwrap()
    }

    /// Rebuilding `wave_members` with its checks as comparisons (20261206140000) keeps every
    /// member as it was, and the conversion baselines that reference them: dropping the old
    /// table deletes its rows, which cascades to the baselines.
    #[tokio::test]
    async fn rebuilding_wave_members_keeps_every_member_and_baseline_and_every_check() {
        const REBUILD: i64 = 20_261_206_140_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let before =
            pool_without_store(&path, SqliteConnectOptions::new().foreign_keys(true)).await;
        sqlx::migrate!("./migrations")
            .run_to(REBUILD - 1, &before)
            .await
            .unwrap();
        sqlx::raw_sql(
            "INSERT INTO user_snapshots (id, user_principal_name, snapshot_at) VALUES
                 ('00000000-0000-0000-0000-000000000001', 'ada@contoso.com', 't'),
                 ('00000000-0000-0000-0000-000000000002', 'bob@contoso.com', 't'),
                 ('00000000-0000-0000-0000-000000000003', 'cy@contoso.com', 't');
             INSERT INTO waves (id, name, selector, settings, created_at)
                 VALUES (1, 'pilot', '{}', '{}', 't'), (2, 'second', '{}', '{}', 't');
             INSERT INTO wave_members VALUES
                 (1, '00000000-0000-0000-0000-000000000001', 'eligible', '[]', '[]',
                  'ada@fabrikam.com', 'other-mails', 1, 'fp1', 'fp1-mail', 'failed', 'permanent',
                  3, 'BadRequest', 'refused', 'inv-1', NULL, 'p', 's', 'i', NULL, 'e', NULL, NULL,
                  'restored', 'r'),
                 (1, '00000000-0000-0000-0000-000000000002', 'blocked',
                  '[\"exchange-mailbox\"]', '[{\"reason\":\"exchange-mailbox\"}]', NULL, NULL, 0,
                  'fp2', NULL, 'excluded', NULL, 0, NULL, NULL, NULL, NULL, 'p', 's', NULL, NULL,
                  NULL, NULL, NULL, NULL, NULL),
                 (2, '00000000-0000-0000-0000-000000000003', 'eligible', '[]', '[]',
                  'cy@fabrikam.com', 'mail', 0, 'fp3', NULL, 'scrambled', NULL, 1, NULL, NULL,
                  'inv-3', 'https://redeem', 'p', 's', 'i', 'a', 'e', 'sc', 'dc1', NULL, NULL);
             INSERT INTO conversion_baselines VALUES
                 (1, '00000000-0000-0000-0000-000000000001', 'ada@contoso.com', '[\"g\"]', 2, 't'),
                 (2, '00000000-0000-0000-0000-000000000003', 'cy@contoso.com', '[]', 0, 't');",
        )
        .execute(&before)
        .await
        .unwrap();
        let baseline_columns =
            "wave_id, user_id, user_principal_name, group_ids, app_role_assignments, taken_at";
        let members = rows(&before, "wave_members", MEMBER_COLUMNS, "wave_id, user_id").await;
        let baselines = rows(&before, "conversion_baselines", baseline_columns, "wave_id").await;
        before.close().await;

        let store = Store::open(&path).await.unwrap();
        assert!(store.schema_version().await.unwrap() >= REBUILD);
        let (pool, order) = (&store.pool, "wave_id, user_id");
        assert_eq!(
            rows(pool, "wave_members", MEMBER_COLUMNS, order).await,
            members
        );
        assert_eq!(
            rows(pool, "conversion_baselines", baseline_columns, "wave_id").await,
            baselines
        );
        assert_eq!(store.integrity_check().await.unwrap(), "ok");
        let violations: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check")
            .fetch_all(pool)
            .await
            .unwrap();
        assert!(violations.is_empty(), "{violations:?}");

        // The same values are allowed and refused as before.
        let member = |state: &str, origin: &str, kind: &str| {
            format!(
                "INSERT INTO wave_members (wave_id, user_id, decision, snapshot_fingerprint,
                        state, failure_kind, address_origin, planned_at, state_changed_at)
                 VALUES (2, '00000000-0000-0000-0000-000000000002', 'eligible', 'f', {state},
                         {kind}, {origin}, 't', 't')"
            )
        };
        for (state, origin, kind, allowed) in [
            ("'paused'", "'mail'", "NULL", false),
            ("'ready'", "'proxy'", "NULL", false),
            ("'failed'", "'mail'", "NULL", false),
            ("'failed'", "NULL", "'retryable'", true),
            ("'drifted'", "'override'", "NULL", true),
            ("'planned'", "'other-mails'", "NULL", true),
        ] {
            let mut tx = pool.begin().await.unwrap();
            let result = sqlx::query(sqlx::AssertSqlSafe(member(state, origin, kind)))
                .execute(&mut *tx)
                .await;
            assert_eq!(
                result.is_ok(),
                allowed,
                "{state} {origin} {kind}: {result:?}"
            );
        }
        let index: Option<String> = sqlx::query_scalar(
            "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = 'wave_members_state'",
        )
        .fetch_optional(pool)
        .await
        .unwrap();
        assert!(index.is_some(), "the state index is rebuilt");
    }

    #[test]
    fn timestamps_have_a_fixed_width_and_round_trip() {
        let whole = time::macros::datetime!(2026-11-21 08:00:00 UTC);
        let fraction = time::macros::datetime!(2026-11-21 08:00:00.5 UTC);
        let (a, b) = (timestamp(whole), timestamp(fraction));
        assert_eq!(a.len(), b.len());
        assert!(a < b, "text order is time order: {a} < {b}");
        assert_eq!(parse_timestamp("t", &b).unwrap(), fraction);
        let offset = time::macros::datetime!(2026-11-21 10:00:00 +02:00);
        assert_eq!(timestamp(offset), timestamp(whole));
    }
}
