//! Reading every user of the tenant into the store at real page latencies (#19 item 3).
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
//! It must not render: progress reaches the command through a callback. Group, filter and list
//! selections are not partitioned (they are the command's, page by page).

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::domain::{RunId, UserSnapshot};
use crate::graph::{self, GraphClient, UserSelection};
use crate::store::{self, Store};

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

/// Pages read but not yet stored, per partition paged at once: enough that a slow commit does
/// not stall the readers, few enough that memory stays flat (a page is about a megabyte).
const PAGES_BUFFERED_PER_READER: usize = 2;

/// How a whole-tenant read is made.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Partition by the UPN's first character; `false`: one sequence of pages.
    pub partitioned: bool,
    /// Partitions paged at once (at most [`MAX_PARALLEL_READS`]).
    pub parallel_reads: usize,
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

/// Reads every user into the store under `discovery`. `tenant_count` is the tenant's own count
/// (`GET /users/$count`) when it could be had: without it a partitioned read cannot be checked,
/// so the read is one sequence. `stored` is told the number of users of every page stored.
pub async fn read_whole_tenant(
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
