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
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let counters = Arc::new(Counters::default());
        let observed = Arc::clone(&counters);
        let client = connect(&settings)?.with_retry_observer(Arc::new(move |_| {
            observed.retries.fetch_add(1, Ordering::Relaxed);
        }));
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
        let progress = progress_line(&client, &source).await;
        let read = async {
            let missing = snapshot(
                &client,
                &store,
                discovery,
                &source,
                &counters,
                &progress,
                settings.throughput.max_concurrency.get(),
            )
            .await?;
            progress.set_message("reading org contacts".to_owned());
            let contacts = snapshot_contacts(&client, &store, discovery).await?;
            Ok((missing, contacts))
        };
        let result = tokio::select! {
            result = read => result,
            () = interrupted => Err(super::Interrupted("interrupted; the pages stored so far are kept, run discover again to complete the snapshot".into()).into()),
        };
        progress.finish();
        let finished = store
            .finish_discovery(discovery, result.is_ok(), OffsetDateTime::now_utc())
            .await;
        let (missing, contacts) = match (result, finished) {
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
        let retired = if matches!(source, Source::Selection(UserSelection::All)) {
            store
                .retire_unseen_users(discovery, OffsetDateTime::now_utc())
                .await?
        } else {
            0
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
            users_stored: counters.users.load(Ordering::Relaxed),
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

/// Reads the users and stores them page by page. Returns the list entries not found.
/// The progress line of a read: a whole-tenant read knows its total (one advanced query, asked
/// only when the line is drawn), so it shows done/total and an ETA; others a spinner.
async fn progress_line(client: &GraphClient, source: &Source) -> Progress {
    let total = match source {
        Source::Selection(UserSelection::All) if output::progress_shown() => client
            .count_users()
            .await
            .map_err(|err| tracing::debug!("no user count for the progress line: {err}"))
            .ok(),
        _ => None,
    };
    match total {
        Some(total) => Progress::bar(total),
        None => Progress::spinner("reading users"),
    }
}

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
