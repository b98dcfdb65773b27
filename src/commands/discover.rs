//! `discover`: snapshot users and tenant facts into the store. Read-only on the tenant.
//!
//! Pages are stored as they arrive, each in its own transaction, so an interruption loses at
//! most the page in flight and a rerun refreshes the snapshot. A user list is validated
//! completely before the first request. Every discover also reads the org contacts (whose
//! addresses no user may take) when the app may.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Ctx, Outcome, connect, resolve_group};
use crate::cli::DiscoverArgs;
use crate::discovery::{
    ChangesRead, ReadOptions, WholeTenantRead, read_changes, read_whole_tenant, usable_delta_link,
};
use crate::domain::{Rule, RuleMode, RunId, UserSnapshot};
use crate::graph::users::IN_CLAUSE_LIMIT;
use crate::graph::{GraphClient, LookupKey, UserSelection};
use crate::input::{self, UserKey, UserListEntry};
use crate::output::{self, Progress};
use crate::store::Store;

/// Users stored per transaction when they arrive in small lookups (CSV lists).
const STORE_BATCH: usize = 500;

/// What to snapshot.
enum Source {
    Selection(UserSelection),
    List(Vec<UserListEntry>),
}

/// Counts shared with the progress line.
#[derive(Default)]
struct Counters {
    users: AtomicU64,
    pages: AtomicU64,
    retries: AtomicU64,
}

impl DiscoverArgs {
    // One sequence of steps in the order they happen (facts, read, retire, summary); the read
    // itself is `read_users` and `discovery`'s. Kept whole to stay easy to merge with the
    // summary's other renderings.
    #[allow(clippy::too_many_lines)]
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let counters = Arc::new(Counters::default());
        let observed = Arc::clone(&counters);
        let client = Arc::new(connect(&settings)?.with_retry_observer(Arc::new(move |_| {
            observed.retries.fetch_add(1, Ordering::Relaxed);
        })));
        // A group named by display name is resolved once, before anything is stored.
        let group = match &self.users.group {
            Some(group) => Some(resolve_group(&client, group).await?),
            None => None,
        };
        let source = self.source(group.as_ref().map(|(id, _)| *id))?;
        let store = ctx.store(&settings).await?;

        let with_federation = settings.rules.mode(Rule::DirectFederation) != RuleMode::Off;
        let facts = client
            .tenant_facts(OffsetDateTime::now_utc(), with_federation)
            .await
            .context("reading the tenant's facts (organization, domains, direct federation)")?;
        store.save_tenant_facts(&facts).await?;

        let selector = self.selector_json(group.as_ref());
        let discovery = store
            .begin_discovery(&selector, OffsetDateTime::now_utc())
            .await?;
        let started = Instant::now();
        let interrupted = super::interruption()?;
        let whole_tenant = matches!(source, Source::Selection(UserSelection::All));
        let read_options = ReadOptions {
            partitioned: settings.discovery.partitioned,
            parallel_reads: settings.discovery.parallel_reads.get(),
            incremental: settings.discovery.incremental,
        };
        let tenant_id = facts.tenant_id.to_string();
        let delta_link = if whole_tenant && read_options.incremental && !self.full {
            usable_delta_link(&store, &tenant_id).await?
        } else {
            None
        };
        let tenant_count = if delta_link.is_some() {
            None
        } else {
            tenant_count(&client, whole_tenant && read_options.partitioned).await
        };
        let progress = match (
            &delta_link,
            tenant_count.filter(|_| output::progress_shown()),
        ) {
            (Some(_), _) => Progress::spinner("reading the changes since the last discover"),
            (None, Some(total)) => Progress::bar(total),
            (None, None) => Progress::spinner("reading users"),
        };
        let read = read_users(
            &client,
            &store,
            discovery,
            &source,
            Reading {
                options: read_options,
                tenant_id: &tenant_id,
                delta_link,
                tenant_count,
                list_concurrency: settings.throughput.max_concurrency.get(),
            },
            &counters,
            &progress,
        );
        let result = tokio::select! {
            result = read => result,
            () = interrupted => Err(super::Interrupted("interrupted; the pages stored so far are kept, run discover again to complete the snapshot".into()).into()),
        };
        progress.finish();
        let finished = store
            .finish_discovery(discovery, result.is_ok(), OffsetDateTime::now_utc())
            .await;
        let (missing, users_read, contacts) = match (result, finished) {
            (Ok(read), finished) => {
                finished?;
                read
            }
            (Err(err), finished) => {
                if let Err(also) = finished {
                    tracing::warn!("could not mark the discovery as failed: {also}");
                }
                return Err(err);
            }
        };
        // Only a complete read of every user knows who is gone.
        // Deleted users reach a read of the changes as removals.
        let retired = match &users_read {
            UsersRead::Whole(_) => {
                store
                    .retire_unseen_users(discovery, OffsetDateTime::now_utc())
                    .await?
            }
            UsersRead::Changes(changes) => changes.removed,
            UsersRead::Selection => 0,
        };

        let users = match &users_read {
            UsersRead::Whole(read) => read.users,
            UsersRead::Changes(changes) => changes.changed,
            UsersRead::Selection => counters.users.load(Ordering::Relaxed),
        };
        let elapsed = started.elapsed();
        let result = DiscoverDocument {
            tenant_id: facts.tenant_id,
            tenant_name: facts.display_name.clone(),
            group: group.as_ref().map(|(id, name)| GroupDocument {
                id: *id,
                name: name.clone(),
            }),
            verified_domains: facts.domains.iter().filter(|d| d.is_verified).count(),
            direct_federation_domains: facts.federation_domains.len(),
            users_stored: users,
            read: ReadDocument::of(&users_read, read_options),
            pages: counters.pages.load(Ordering::Relaxed),
            retried_requests: counters.retries.load(Ordering::Relaxed),
            elapsed_seconds: elapsed.as_secs_f64(),
            database: store.path().display().to_string(),
            user_snapshots: store.count_users().await?,
            retired,
            org_contacts_read: contacts,
            not_found: missing.iter().map(NotFound::of).collect(),
        };
        output::write_result(self.json, &result, DiscoverDocument::render)?;
        Ok(if missing.is_empty() {
            Outcome::Done
        } else {
            Outcome::SomeUsersFailed
        })
    }

    /// What to read; `group` is `--group`'s object id (resolved when given by name).
    fn source(&self, group: Option<Uuid>) -> anyhow::Result<Source> {
        Ok(if let Some(path) = &self.users.csv {
            Source::List(input::read_user_list(path)?)
        } else if let Some(id) = group {
            Source::Selection(UserSelection::Group {
                id,
                transitive: self.users.transitive,
            })
        } else if let Some(filter) = &self.users.filter {
            Source::Selection(UserSelection::Filter(filter.clone()))
        } else {
            Source::Selection(UserSelection::All)
        })
    }

    fn selector_json(&self, group: Option<&(Uuid, Option<String>)>) -> serde_json::Value {
        serde_json::json!({
            "csv": self.users.csv.as_ref().map(|p| p.display().to_string()),
            "group": group.map(|(id, _)| id),
            "group_name": group.and_then(|(_, name)| name.as_deref()),
            "transitive": self.users.transitive,
            "filter": self.users.filter,
        })
    }
}

/// How the users are read, besides what to read.
struct Reading<'a> {
    options: ReadOptions,
    tenant_id: &'a str,
    /// The last discover's users delta link, when only the changes since are read.
    delta_link: Option<String>,
    tenant_count: Option<u64>,
    /// Look-ups in flight at once for a list.
    list_concurrency: usize,
}

/// How the users were read.
enum UsersRead {
    /// A group, a filter or a list.
    Selection,
    /// Every user.
    Whole(WholeTenantRead),
    /// The changes since the last discover.
    Changes(ChangesRead),
}

/// Reads the selected users, then the org contacts, into the store: the list entries not
/// found, how the users were read, and the contacts read (`None`: not readable).
async fn read_users(
    client: &Arc<GraphClient>,
    store: &Store,
    discovery: RunId,
    source: &Source,
    reading: Reading<'_>,
    counters: &Counters,
    progress: &Progress,
) -> anyhow::Result<(Vec<UserListEntry>, UsersRead, Option<u64>)> {
    let counter = page_counter(counters, progress);
    let (missing, read) = if matches!(source, Source::Selection(UserSelection::All)) {
        let changes = match &reading.delta_link {
            Some(link) => {
                read_changes(client, store, discovery, reading.tenant_id, link, &counter).await?
            }
            None => None,
        };
        let read = if let Some(changes) = changes {
            UsersRead::Changes(changes)
        } else {
            let mut tenant_count = reading.tenant_count;
            if reading.delta_link.is_some() {
                output::notice(
                    "The last discover's users delta link is no longer honoured (Graph keeps one \
                     seven days): reading every user.",
                );
                tenant_count = self::tenant_count(client, reading.options.partitioned).await;
            }
            UsersRead::Whole(
                read_whole_tenant(
                    Arc::clone(client),
                    store,
                    discovery,
                    reading.tenant_id,
                    reading.options,
                    tenant_count,
                    &counter,
                )
                .await?,
            )
        };
        (Vec::new(), read)
    } else {
        let missing = snapshot(
            client,
            store,
            discovery,
            source,
            counters,
            progress,
            reading.list_concurrency,
        )
        .await?;
        (missing, UsersRead::Selection)
    };
    progress.set_message("reading org contacts".to_owned());
    let contacts = snapshot_contacts(client, store, discovery).await?;
    Ok((missing, read, contacts))
}

/// The tenant's count of users (`GET /users/$count`), asked when a partitioned read is checked
/// against it or a progress line shows it; `None` when not asked or not available.
async fn tenant_count(client: &GraphClient, partitioned_read: bool) -> Option<u64> {
    if !(partitioned_read || output::progress_shown()) {
        return None;
    }
    client
        .count_users()
        .await
        .map_err(|err| tracing::info!("the tenant's user count is not available: {err}"))
        .ok()
}

/// The progress callback of a whole-tenant read: counts each stored page and its users.
fn page_counter<'a>(counters: &'a Counters, progress: &'a Progress) -> impl Fn(u64) + Sync + 'a {
    let started = Instant::now();
    move |users: u64| {
        progress.inc_by(users);
        let users = counters.users.fetch_add(users, Ordering::Relaxed) + users;
        let pages = counters.pages.fetch_add(1, Ordering::Relaxed) + 1;
        progress.set_message(format!(
            "{users} users, {pages} pages, {:.0}/s, {} retries",
            output::rate(users, started.elapsed()),
            counters.retries.load(Ordering::Relaxed),
        ));
    }
}

/// Reads the users of a group, a filter or a list, and stores them page by page. Returns the
/// list entries not found.
async fn snapshot(
    client: &GraphClient,
    store: &Store,
    discovery: RunId,
    source: &Source,
    counters: &Counters,
    progress: &Progress,
    concurrency: usize,
) -> anyhow::Result<Vec<UserListEntry>> {
    let started = Instant::now();
    let show = |counters: &Counters| {
        let users = counters.users.load(Ordering::Relaxed);
        progress.set_message(format!(
            "{users} users, {} pages, {:.0}/s, {} retries",
            counters.pages.load(Ordering::Relaxed),
            output::rate(users, started.elapsed()),
            counters.retries.load(Ordering::Relaxed),
        ));
    };
    match source {
        Source::Selection(selection) => {
            let mut pages = std::pin::pin!(client.users(selection, OffsetDateTime::now_utc()));
            while let Some(page) = pages.try_next().await.context("reading users from Graph")? {
                store.store_user_page(discovery, &page.items).await?;
                progress.inc_by(page.items.len() as u64);
                counters
                    .users
                    .fetch_add(page.items.len() as u64, Ordering::Relaxed);
                counters.pages.fetch_add(1, Ordering::Relaxed);
                show(counters);
            }
            Ok(Vec::new())
        }
        Source::List(entries) => {
            let mut found: HashSet<String> = HashSet::new();
            let lookups = lookup_batches(entries);
            let mut results = futures_util::stream::iter(lookups)
                .map(|(key, values)| async move {
                    client
                        .users_by_key(key, &values, OffsetDateTime::now_utc())
                        .await
                })
                .buffer_unordered(concurrency);
            let mut batch: Vec<UserSnapshot> = Vec::with_capacity(STORE_BATCH);
            while let Some(users) = results.next().await {
                let users = users.context("looking up the listed users in Graph")?;
                counters.pages.fetch_add(1, Ordering::Relaxed);
                for user in users {
                    found.insert(user.id.to_string());
                    found.insert(user.user_principal_name.to_lowercase());
                    batch.push(user);
                }
                if batch.len() >= STORE_BATCH {
                    store.store_user_page(discovery, &batch).await?;
                    counters
                        .users
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.clear();
                }
                show(counters);
            }
            if !batch.is_empty() {
                store.store_user_page(discovery, &batch).await?;
                counters
                    .users
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Ok(entries
                .iter()
                .filter(|e| {
                    let key = match &e.key {
                        UserKey::Id(id) => id.to_string(),
                        UserKey::Upn(upn) => upn.to_lowercase(),
                    };
                    !found.contains(&key)
                })
                .cloned()
                .collect())
        }
    }
}

/// Reads every org contact into the store (the addresses they hold join the address index),
/// page by page, and dates the complete read. `None` when the app may not read contacts
/// (403): the earlier reading, if any, is kept, and plans say what was not checked.
async fn snapshot_contacts(
    client: &GraphClient,
    store: &Store,
    discovery: RunId,
) -> anyhow::Result<Option<u64>> {
    let mut read = 0;
    let mut pages = std::pin::pin!(client.contacts());
    loop {
        match pages.try_next().await {
            Ok(Some(page)) => {
                store.store_contact_page(discovery, &page.items).await?;
                read += page.items.len() as u64;
            }
            Ok(None) => break,
            Err(error) if read == 0 && error.status() == Some(403) => {
                tracing::warn!("org contacts not read: {error}");
                return Ok(None);
            }
            Err(error) => return Err(error).context("reading org contacts from Graph"),
        }
    }
    store
        .finish_contacts(discovery, OffsetDateTime::now_utc())
        .await?;
    Ok(Some(read))
}

/// What a discover read and stored: its summary, as text or `--json`.
#[derive(Serialize)]
struct DiscoverDocument {
    tenant_id: Uuid,
    tenant_name: Option<String>,
    /// The group read, when `--group` chose the users.
    group: Option<GroupDocument>,
    verified_domains: usize,
    direct_federation_domains: usize,
    users_stored: u64,
    /// How the users were read.
    read: ReadDocument,
    pages: u64,
    /// Requests throttled or retried along the way.
    retried_requests: u64,
    elapsed_seconds: f64,
    database: String,
    /// Users in the database's snapshot now (this read and earlier ones).
    user_snapshots: u64,
    /// Users no longer in the tenant, marked by this (whole-tenant) read.
    retired: u64,
    /// Org contacts read; `null` when the app may not read them.
    org_contacts_read: Option<u64>,
    /// Listed users (`--csv`) not in the tenant.
    not_found: Vec<NotFound>,
}

/// How a discover read the users.
#[derive(Serialize)]
struct ReadDocument {
    /// `selection` (a group, a filter or a list), `whole` (every user) or `changes` (the users
    /// delta since the last discover).
    mode: &'static str,
    /// `whole`: the partitions by the UPN's first character paged in parallel (0: one
    /// sequence of pages).
    partitions: usize,
    /// `whole`: partitions paged at once.
    parallel_reads: usize,
    /// `whole`: why every user was then read again in one sequence, if they were.
    fallback: Option<String>,
    /// `changes`: users added or changed since the last discover (stored).
    changed: u64,
    /// `changes`: users deleted since the last discover (retired from the snapshot).
    deleted: u64,
    /// `changes`: delta pages read.
    delta_pages: u64,
}

impl ReadDocument {
    fn of(read: &UsersRead, options: ReadOptions) -> Self {
        let mut document = Self {
            mode: "selection",
            partitions: 0,
            parallel_reads: 0,
            fallback: None,
            changed: 0,
            deleted: 0,
            delta_pages: 0,
        };
        match read {
            UsersRead::Selection => {}
            UsersRead::Whole(whole) => {
                document.mode = "whole";
                document.partitions = whole.partitions;
                document.parallel_reads = options.parallel_reads;
                document.fallback.clone_from(&whole.fallback);
            }
            UsersRead::Changes(changes) => {
                document.mode = "changes";
                document.changed = changes.changed;
                document.deleted = changes.removed;
                document.delta_pages = changes.pages;
            }
        }
        document
    }

    /// The summary's `Read` line (none for a selection).
    fn render(&self) -> String {
        match self.mode {
            "changes" => format!(
                "Read        the changes since the last discover (users delta): {} added or \
                 changed, {} deleted, {} page(s)\n",
                self.changed, self.deleted, self.delta_pages
            ),
            "whole" => {
                let mut line = if self.partitions == 0 {
                    "Read        in one sequence of pages\n".to_owned()
                } else {
                    format!(
                        "Read        in {} partitions by the UPN's first character, {} at once\n",
                        self.partitions, self.parallel_reads
                    )
                };
                if let Some(why) = &self.fallback {
                    let _ = writeln!(line, "            then {why}");
                }
                line
            }
            _ => String::new(),
        }
    }
}

#[derive(Serialize)]
struct GroupDocument {
    id: Uuid,
    name: Option<String>,
}

#[derive(Serialize)]
struct NotFound {
    /// The line of the CSV file.
    line: u64,
    /// The object id or UPN given there.
    user: String,
}

impl NotFound {
    fn of(entry: &UserListEntry) -> Self {
        Self {
            line: entry.line,
            user: describe(&entry.key),
        }
    }
}

impl output::JsonDocument for DiscoverDocument {
    const SCHEMA: &'static str = "discover";
    const VERSION: u32 = 1;
}

impl DiscoverDocument {
    fn render(&self) -> String {
        let mut text = match &self.group {
            Some(GroupDocument {
                id,
                name: Some(name),
            }) => format!("Group       \"{name}\" ({id})\n"),
            _ => String::new(),
        };
        let elapsed = std::time::Duration::from_secs_f64(self.elapsed_seconds);
        let _ = write!(
            text,
            "Tenant      {} ({})\n\
             Domains     {} verified, {} with direct federation\n\
             Users       {} stored in {:.1} s ({:.0}/s), {} page(s), {} throttled or retried request(s)\n\
             Database    {} now holds {} user snapshot(s), {} retired (no longer in the tenant)\n",
            self.tenant_name.as_deref().unwrap_or("unnamed"),
            self.tenant_id,
            self.verified_domains,
            self.direct_federation_domains,
            self.users_stored,
            self.elapsed_seconds,
            output::rate(self.users_stored, elapsed),
            self.pages,
            self.retried_requests,
            self.database,
            self.user_snapshots,
            self.retired,
        );
        text.push_str(&self.read.render());
        text.push_str(&summary_tail(self.org_contacts_read, &self.not_found));
        text
    }
}

/// The summary's last lines: the org contacts (`None`: not readable), and the listed users
/// that were not found.
fn summary_tail(contacts: Option<u64>, missing: &[NotFound]) -> String {
    let mut text = match contacts {
        Some(n) => {
            format!("Contacts    {n} org contact(s) read; the addresses they hold are checked\n")
        }
        None => {
            "Contacts    not read: the app may not read org contacts (grant OrgContact.Read.All); \
                 plans will warn that addresses contacts hold were not checked\n"
                .to_owned()
        }
    };
    if !missing.is_empty() {
        let _ = writeln!(
            text,
            "\n{} user(s) of the list were not found in the tenant:",
            missing.len()
        );
        for entry in missing {
            let _ = writeln!(text, "  line {}: {}", entry.line, entry.user);
        }
    }
    text
}

/// Groups a list into lookups of at most [`IN_CLAUSE_LIMIT`] ids or UPNs.
fn lookup_batches(entries: &[UserListEntry]) -> Vec<(LookupKey, Vec<String>)> {
    let ids: Vec<String> = entries
        .iter()
        .filter_map(|e| match &e.key {
            UserKey::Id(id) => Some(id.to_string()),
            UserKey::Upn(_) => None,
        })
        .collect();
    let upns: Vec<String> = entries
        .iter()
        .filter_map(|e| match &e.key {
            UserKey::Upn(upn) => Some(upn.clone()),
            UserKey::Id(_) => None,
        })
        .collect();
    ids.chunks(IN_CLAUSE_LIMIT)
        .map(|c| (LookupKey::Id, c.to_vec()))
        .chain(
            upns.chunks(IN_CLAUSE_LIMIT)
                .map(|c| (LookupKey::UserPrincipalName, c.to_vec())),
        )
        .collect()
}

fn describe(key: &UserKey) -> String {
    match key {
        UserKey::Id(id) => id.to_string(),
        UserKey::Upn(upn) => upn.clone(),
    }
}
