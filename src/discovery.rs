//! Reading every user of the tenant into the store at real page latencies (#19 item 3), and
//! then only the changes (#19 item 4).
//!
//! Graph answers a 999-user page with every property the rules read in a second or more, so a
//! million users read one page after the other take half an hour. This module owns the faster
//! read: the tenant split into partitions by the first character of the UPN
//! (`startsWith(userPrincipalName,'a')`, a standard query), paged in parallel within the read
//! budget, each page handed over a bounded channel to one store writer, so fetching overlaps
//! storing and memory holds at most a few pages. It also owns the completeness check: the
//! partitions cover the characters a UPN may begin with, and when the tenant counts more users
//! than they held (a UPN beginning with another character, or a service that compares case
//! where the notes say it does not), the whole tenant is read again in one sequence, so a
//! complete read never misses a user. A user read twice is stored once (the store upserts by id)
//! and counted once.
//!
//! It also owns incremental re-discovery (#19 item 4): a full read keeps a users delta link
//! (`GET /users/delta`, NOTES §3.3) taken just before it began, and the next read follows it
//! for only the users added, changed, restored or deleted since (deleted ones are retired as a
//! full read retires users it no longer sees); a link Graph no longer honours is forgotten.
//!
//! It must not render: progress reaches the command through a callback, and the command says
//! which read it made. Group, filter and list selections are neither partitioned nor
//! incremental (they are the command's, page by page).

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::domain::{RunId, UserId, UserSnapshot};
use crate::graph::users::USER_SELECT;
use crate::graph::{self, GraphClient, UserChange, UserSelection, delta_link_expired};
use crate::store::{self, Store, StoredDeltaLink};

/// The characters a UPN's local part may begin with, one partition each: letters and digits,
/// and the punctuation Entra ID allows in a UPN (`' . - _ ! # ^ ~`). Letters are listed once,
/// lowercase: `startsWith` compares without regard to case (checked by the completeness check,
/// not assumed). Anything else (an accented letter, which the service also allows) is found by
/// that check and read by the fallback.
pub const UPN_FIRST_CHARACTERS: &str = "abcdefghijklmnopqrstuvwxyz0123456789'.-_!#^~";

/// The most partitions paged at once that the smallest tenants' read budget allows (NOTES
/// §8.2: 3,500 resource units per 10 s per app and tenant; a page of `GET users` with `$select`
/// costs 1). At a page every 100 ms (a fast service), 32 partitions spend 320 units per 10 s,
/// a tenth of that budget, leaving the rest to the other reads of the run and to other apps.
pub const MAX_PARALLEL_READS: usize = 32;
const _: () = assert!(
    MAX_PARALLEL_READS * 10 * 10 <= 3_500,
    "32 partitions at 10 pages/s spend at most a tenth of the smallest budget"
);

/// Pages read but not yet stored, per partition paged at once. At a million users the store
/// commits about as fast as 16 partitions read at 1-2 s a page, so the channel does fill: each
/// buffered page is 1-2 MB of snapshots, and one per reader (measured: 2 per reader put the
/// peak RSS of a million-user discover at 214 MB) keeps memory flat without slowing the read,
/// which is bounded by the slower side either way.
const PAGES_BUFFERED_PER_READER: usize = 1;

/// How a whole-tenant read is made.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Partition by the UPN's first character; `false`: one sequence of pages.
    pub partitioned: bool,
    /// Partitions paged at once (at most [`MAX_PARALLEL_READS`]).
    pub parallel_reads: usize,
    /// Keep a users delta link, so the next discover reads only the changes.
    pub incremental: bool,
}

/// What a whole-tenant read did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WholeTenantRead {
    /// Distinct users stored.
    pub users: u64,
    /// Pages stored (a fallback's pages included).
    pub pages: u64,
    /// Partitions paged (0: one sequence).
    pub partitions: usize,
    /// Why the whole tenant was read again in one sequence after the partitions, if it was.
    pub fallback: Option<String>,
}

/// A whole-tenant read failed: reading Graph or storing a page.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading users from Graph")]
    Graph(#[from] graph::Error),
    #[error("storing users")]
    Store(#[from] store::Error),
}

/// The partitions of a whole-tenant read: one UPN prefix each, together covering every UPN
/// that begins with one of [`UPN_FIRST_CHARACTERS`], no UPN in two.
pub fn upn_partitions() -> Vec<String> {
    UPN_FIRST_CHARACTERS.chars().map(String::from).collect()
}

/// What an incremental read did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangesRead {
    /// Users created, changed or restored since the last discover, stored.
    pub changed: u64,
    /// Users deleted since, retired from the snapshot (and still active in it until now).
    pub removed: u64,
    pub pages: u64,
}

/// Reads every user into the store under `discovery`, then keeps a users delta link of the
/// moment the read began for the next discover of `tenant_id` (taken first, so that changes
/// made during the read are read again next time rather than missed). `tenant_count` is the
/// tenant's own count (`GET /users/$count`) when it could be had: without it a partitioned read
/// cannot be checked, so the read is one sequence. `stored` is told the number of users of
/// every page stored.
pub async fn read_whole_tenant(
    client: Arc<GraphClient>,
    store: &Store,
    discovery: RunId,
    tenant_id: &str,
    options: ReadOptions,
    tenant_count: Option<u64>,
    stored: &(dyn Fn(u64) + Sync),
) -> Result<WholeTenantRead, Error> {
    let link = if options.incremental {
        client
            .latest_user_delta_link()
            .await
            .map_err(|error| {
                tracing::info!(
                    "no users delta link (the next discover reads everything again): {error}"
                );
            })
            .ok()
    } else {
        None
    };
    let read = read_all_users(client, store, discovery, options, tenant_count, stored).await?;
    if let Some(link) = link {
        store
            .save_user_delta_link(&StoredDeltaLink {
                link,
                tenant_id: tenant_id.to_owned(),
                user_select: USER_SELECT.to_owned(),
                obtained_at: OffsetDateTime::now_utc(),
            })
            .await?;
    }
    Ok(read)
}

/// The stored users delta link, when it was taken for this tenant and for the properties
/// discovery reads now (a link carries its `$select`; an older version's would miss some).
pub async fn usable_delta_link(store: &Store, tenant_id: &str) -> Result<Option<String>, Error> {
    Ok(store
        .user_delta_link()
        .await?
        .filter(|stored| stored.tenant_id == tenant_id && stored.user_select == USER_SELECT)
        .map(|stored| stored.link))
}

/// Reads the changes since `link` into the store under `discovery`: created, changed and
/// restored users are stored, deleted ones retired, in the order Graph lists them; the round's
/// new delta link replaces `link`. `None` when Graph no longer honours the link (expired after
/// seven days, or reset): it is forgotten, and only a full read helps.
pub async fn read_changes(
    client: &GraphClient,
    store: &Store,
    discovery: RunId,
    tenant_id: &str,
    link: &str,
    stored: &(dyn Fn(u64) + Sync),
) -> Result<Option<ChangesRead>, Error> {
    let mut read = ChangesRead {
        changed: 0,
        removed: 0,
        pages: 0,
    };
    let mut pages = std::pin::pin!(client.user_changes(link, OffsetDateTime::now_utc()));
    let mut next_link = None;
    loop {
        let page = match pages.try_next().await {
            Ok(Some(page)) => page,
            Ok(None) => break,
            Err(error) if read.pages == 0 && delta_link_expired(&error) => {
                tracing::info!("the users delta link is no longer honoured: {error}");
                store.forget_user_delta_link().await?;
                return Ok(None);
            }
            Err(error) => return Err(error.into()),
        };
        read.pages += 1;
        let (mut changed, mut removed) = (Vec::new(), Vec::new());
        for change in page.changes {
            match change {
                UserChange::Changed(user) => {
                    if !removed.is_empty() {
                        read.removed += retire(store, &mut removed).await?;
                    }
                    changed.push(*user);
                }
                UserChange::Removed(id) => {
                    if !changed.is_empty() {
                        read.changed += store_changed(store, discovery, &mut changed).await?;
                    }
                    removed.push(id);
                }
            }
        }
        let page_users = changed.len() as u64;
        read.changed += store_changed(store, discovery, &mut changed).await?;
        read.removed += retire(store, &mut removed).await?;
        stored(page_users);
        next_link = page.delta_link.or(next_link);
    }
    if let Some(link) = next_link {
        store
            .save_user_delta_link(&StoredDeltaLink {
                link,
                tenant_id: tenant_id.to_owned(),
                user_select: USER_SELECT.to_owned(),
                obtained_at: OffsetDateTime::now_utc(),
            })
            .await?;
    } else {
        store.forget_user_delta_link().await?;
        tracing::warn!(
            "the delta round ended without a delta link; the next discover reads everything"
        );
    }
    Ok(Some(read))
}

async fn store_changed(
    store: &Store,
    discovery: RunId,
    users: &mut Vec<UserSnapshot>,
) -> Result<u64, Error> {
    if !users.is_empty() {
        store.store_user_page(discovery, users).await?;
    }
    Ok(std::mem::take(users).len() as u64)
}

async fn retire(store: &Store, ids: &mut Vec<UserId>) -> Result<u64, Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let retired = store.retire_users(ids, OffsetDateTime::now_utc()).await?;
    ids.clear();
    Ok(retired)
}

/// Reads every user (partitioned and checked, or in one sequence).
async fn read_all_users(
    client: Arc<GraphClient>,
    store: &Store,
    discovery: RunId,
    options: ReadOptions,
    tenant_count: Option<u64>,
    stored: &(dyn Fn(u64) + Sync),
) -> Result<WholeTenantRead, Error> {
    let Some(expected) = tenant_count.filter(|_| options.partitioned) else {
        if options.partitioned {
            tracing::info!(
                "the tenant's user count is not available, so a partitioned read could not be \
                 checked for completeness: reading the users in one sequence"
            );
        }
        let pages = read_selections(
            client,
            store,
            discovery,
            vec![UserSelection::All],
            1,
            stored,
        )
        .await?;
        return Ok(WholeTenantRead {
            users: store.count_users_seen_by(discovery).await?,
            pages,
            partitions: 0,
            fallback: None,
        });
    };
    let partitions: Vec<UserSelection> = upn_partitions()
        .into_iter()
        .map(UserSelection::UpnPrefix)
        .collect();
    let count = partitions.len();
    let mut pages = read_selections(
        Arc::clone(&client),
        store,
        discovery,
        partitions,
        options.parallel_reads,
        stored,
    )
    .await?;
    let mut users = store.count_users_seen_by(discovery).await?;
    let mut fallback = None;
    if users < expected {
        let why = format!(
            "the partitions by the UPN's first character held {users} users, the tenant counts \
             {expected}: reading the whole tenant again in one sequence"
        );
        tracing::info!("{why}");
        pages += read_selections(
            client,
            store,
            discovery,
            vec![UserSelection::All],
            1,
            stored,
        )
        .await?;
        users = store.count_users_seen_by(discovery).await?;
        fallback = Some(why);
    }
    Ok(WholeTenantRead {
        users,
        pages,
        partitions: count,
        fallback,
    })
}

/// Pages `selections`, `parallel` at once, while one writer stores the pages as they come over
/// a bounded channel. Returns the pages stored.
async fn read_selections(
    client: Arc<GraphClient>,
    store: &Store,
    discovery: RunId,
    selections: Vec<UserSelection>,
    parallel: usize,
    stored: &(dyn Fn(u64) + Sync),
) -> Result<u64, Error> {
    let parallel = parallel.max(1);
    let (pages, mut arriving) =
        mpsc::channel::<Vec<UserSnapshot>>(parallel * PAGES_BUFFERED_PER_READER);
    // The readers run on a task of their own, so decoding pages overlaps storing them.
    let readers = tokio::spawn(async move {
        futures_util::stream::iter(selections)
            .map(|selection| {
                let client = Arc::clone(&client);
                let pages = pages.clone();
                async move {
                    let mut stream =
                        std::pin::pin!(client.users(&selection, OffsetDateTime::now_utc()));
                    while let Some(page) = stream.try_next().await? {
                        if pages.send(page.items).await.is_err() {
                            break; // the writer stopped: its error is the one reported
                        }
                    }
                    Ok::<(), graph::Error>(())
                }
            })
            .buffer_unordered(parallel)
            .try_collect::<()>()
            .await
    });
    let mut stored_pages = 0;
    let written = async {
        while let Some(page) = arriving.recv().await {
            store.store_user_page(discovery, &page).await?;
            stored_pages += 1;
            stored(page.len() as u64);
        }
        Ok::<(), store::Error>(())
    }
    .await;
    if let Err(error) = written {
        readers.abort();
        return Err(error.into());
    }
    match readers.await {
        Ok(read) => read?,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => unreachable!("the readers' task is only aborted after a store error: {join}"),
    }
    Ok(stored_pages)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn partitions_are_disjoint_and_cover_letters_digits_and_upn_punctuation() {
        let partitions = upn_partitions();
        let unique: HashSet<_> = partitions.iter().map(|p| p.to_lowercase()).collect();
        assert_eq!(unique.len(), partitions.len(), "no prefix twice");
        for (i, a) in partitions.iter().enumerate() {
            for b in &partitions[i + 1..] {
                assert!(
                    !a.starts_with(b.as_str()) && !b.starts_with(a.as_str()),
                    "{a} and {b} overlap"
                );
            }
        }
        for c in ('a'..='z').chain('0'..='9').chain("'.-_!#^~".chars()) {
            assert!(
                partitions.iter().any(|p| p.starts_with(c)),
                "{c} has no partition"
            );
        }
    }
}
