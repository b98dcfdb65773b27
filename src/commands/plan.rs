//! `plan`: evaluate a wave's users with the eligibility rules and store the plan. Read-only on
//! the tenant (it may read group members, filtered users, home realms and, for the partner
//! pre-flight, partner tenant ids and the cross-tenant access settings).
//!
//! Orchestration only: this gathers the wave's users (the stored snapshot, a CSV list, a group
//! or a filter read from Graph) and the operator's exclusions, hands them to the planning
//! engine ([`crate::plan`]: the two passes, the decisions, the realm cache) and prints its
//! summary.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Ctx, Outcome, Refused, UsageError, connect, realm_client, resolve_group};
use crate::cli::PlanArgs;
use crate::config::Settings;
use crate::domain::{GroupRef, UserId, UserSnapshot};
use crate::graph::{GraphClient, UserSelection};
use crate::input::{self, UserKey};
use crate::output;
use crate::plan::preflight::{self, PreflightSummary};
use crate::plan::{self, Basis, Decider, RealmSummary, Roster, Tally, WaveUsers};
use crate::rules::Severity;
use crate::store::{self, NewWave, Store, Wave};

/// How a wave's users are chosen; stored with the wave so a re-plan selects the same way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Selection {
    users: Users,
    exclude_csv: Option<PathBuf>,
    exclude_groups: Vec<Uuid>,
    allow_new_address: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Users {
    All,
    Csv {
        path: PathBuf,
    },
    /// A group by object id, whatever the operator typed: a display name is resolved once, so
    /// a re-plan selects the same group even if it is renamed or another takes its name.
    Group {
        id: Uuid,
        transitive: bool,
        /// The display name the operator named the group by (shown, never used to select).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Filter {
        filter: String,
    },
}

impl Selection {
    /// Whether two selections choose the same users (a group's remembered name aside).
    fn selects_as(&self, other: &Self) -> bool {
        let unnamed = |selection: &Self| {
            let mut selection = selection.clone();
            if let Users::Group { name, .. } = &mut selection.users {
                *name = None;
            }
            selection
        };
        unnamed(self) == unnamed(other)
    }
}

impl PlanArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = ctx.existing_store(&settings).await?;
        let facts = store.tenant_facts().await?.ok_or_else(|| {
            UsageError(
                "the database has no tenant facts yet; run `b2b-convert discover` first".into(),
            )
        })?;
        let existing = store.wave_by_name(&self.wave).await?;
        let (selection, cap) = self.settle_selection(&settings, existing.as_ref()).await?;

        let (users, overrides) = select_users(&settings, &store, &selection).await?;
        let mut basis = Basis::new(&settings, &facts, selection.allow_new_address);
        let mut snapshot = store.read_snapshot().await?;
        let (first, domains) = plan::first_pass(
            &store,
            &mut snapshot,
            &users,
            &overrides,
            &basis.tenant.verified_domains,
            &basis.policy,
        )
        .await?;
        if let Some(cap) = cap
            && first.users() > u64::from(cap)
        {
            return Err(Refused(format!(
                "wave {} would have {} users, more than its cap of {cap}; narrow the selection or raise --max",
                self.wave,
                first.users()
            ))
            .into());
        }
        let excluded = exclusions(&settings, &store, &selection).await?;
        let other_waves = store
            .pending_in_other_waves(existing.as_ref().map(|w| w.id))
            .await?;
        let converted = store
            .converted_in_other_waves(existing.as_ref().map(|w| w.id))
            .await?;
        let wave_users = WaveUsers {
            users,
            overrides,
            excluded,
            other_waves,
            converted,
        };
        let realm_summary = if basis.asks_realms() {
            let client = realm_client(&settings)?;
            Some(
                basis
                    .add_realms(&client, &store, domains, OffsetDateTime::now_utc())
                    .await?,
            )
        } else {
            None
        };

        let wave_findings = basis.wave_findings(&plan::wave_settings(&settings, None));
        let decider = Decider::new(&wave_users, &first, &basis, &wave_findings);
        let new = NewWave {
            name: self.wave.clone(),
            selector: serde_json::to_value(&selection)?,
            cap,
            settings: plan::settings_json(&settings, &basis.policy),
        };
        let (wave, tally, hash) = plan::store_plan(
            &store,
            snapshot,
            existing.as_ref(),
            &new,
            &decider,
            plan::USERS_PER_CHUNK,
        )
        .await?;

        let preflight = if settings.invitation.check_partner_settings {
            Some(partner_preflight(&settings, &store, &tally.domains, &basis).await?)
        } else {
            None
        };
        let mut result =
            PlanDocument::new(&wave, &selection, &tally, realm_summary.as_ref(), &hash);
        result.partner_preflight = preflight.map(PlanPreflight::of);
        output::write_result(self.json, &result, PlanDocument::render)?;
        Ok(Outcome::Done)
    }

    /// The selection and cap to plan with: the given ones for a new wave, the stored ones for
    /// a re-plan (a different selection for an existing wave is refused).
    async fn settle_selection(
        &self,
        settings: &Settings,
        existing: Option<&Wave>,
    ) -> anyhow::Result<(Selection, Option<u32>)> {
        let given = self.given_selection(settings).await?;
        match (existing, given) {
            (None, Some(selection)) => Ok((selection, self.max)),
            (None, None) => Err(UsageError(format!(
                "wave {} is new: choose its users with --csv, --group, --filter or --all",
                self.wave
            ))
            .into()),
            (Some(wave), given) => {
                let stored: Selection = serde_json::from_value(wave.selector.clone())
                    .context("reading the wave's stored selection")?;
                if given.as_ref().is_some_and(|g| !g.selects_as(&stored)) {
                    return Err(UsageError(format!(
                        "wave {} was planned with another selection; re-plan it with `plan --wave {}` \
                         alone, or plan a new wave",
                        wave.name, wave.name
                    ))
                    .into());
                }
                Ok((stored, self.max.or(wave.cap)))
            }
        }
    }

    /// The selection given on the command line, groups named by display name resolved to
    /// their object ids.
    async fn given_selection(&self, settings: &Settings) -> anyhow::Result<Option<Selection>> {
        let absolute = |path: &PathBuf| {
            std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
        };
        // Graph is asked only for a group named by its display name.
        let mut client = None;
        let users = if let Some(path) = &self.users.csv {
            Users::Csv {
                path: absolute(path)?,
            }
        } else if let Some(group) = &self.users.group {
            let (id, name) = group_id(settings, &mut client, group).await?;
            Users::Group {
                id,
                transitive: self.users.transitive,
                name,
            }
        } else if let Some(filter) = &self.users.filter {
            Users::Filter {
                filter: filter.clone(),
            }
        } else if self.users.all {
            Users::All
        } else {
            return Ok(None);
        };
        let mut exclude_groups = Vec::with_capacity(self.exclude_group.len());
        for group in &self.exclude_group {
            exclude_groups.push(group_id(settings, &mut client, group).await?.0);
        }
        Ok(Some(Selection {
            users,
            exclude_csv: self.exclude_csv.as_ref().map(absolute).transpose()?,
            exclude_groups,
            allow_new_address: self.allow_new_address,
        }))
    }
}

/// The partner pre-flight of the planned wave's external domains (`domains`: those of its
/// chosen addresses, as the plan counted them), stored for the report. Advisory: when Graph
/// cannot be connected to, it is skipped and says why.
async fn partner_preflight(
    settings: &Settings,
    store: &Store,
    domains: &BTreeSet<String>,
    basis: &Basis,
) -> anyhow::Result<Result<PreflightSummary, String>> {
    let domains: Vec<String> = domains.iter().cloned().collect();
    let graph = match connect(settings) {
        Ok(graph) => graph,
        Err(error) => return Ok(Err(format!("{error:#}"))),
    };
    let login = realm_client(settings)?;
    let sources = preflight::Sources {
        graph: &graph,
        login: &login,
        store,
    };
    let answers = preflight::check_partners(
        &sources,
        &domains,
        &basis.tenant.verified_domains,
        &basis.tenant.realms,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok(Ok(PreflightSummary::of(&answers)))
}

/// A group's object id (and display name, when named by it), connecting to Graph on the first
/// group named by display name.
async fn group_id(
    settings: &Settings,
    client: &mut Option<GraphClient>,
    group: &GroupRef,
) -> anyhow::Result<(Uuid, Option<String>)> {
    if let GroupRef::Id(id) = group {
        return Ok((*id, None));
    }
    if client.is_none() {
        *client = Some(connect(settings)?);
    }
    let client = client.as_ref().context("connecting to Graph")?;
    resolve_group(client, group).await
}

/// The users a selection names, from the stored snapshot (group and filter selections are
/// read from Graph now, and their snapshots refreshed), with the list's address overrides.
async fn select_users(
    settings: &Settings,
    store: &Store,
    selection: &Selection,
) -> anyhow::Result<(Roster, HashMap<UserId, String>)> {
    let mut overrides = HashMap::new();
    let users = match &selection.users {
        Users::All => return Ok((Roster::Snapshot, overrides)),
        Users::Csv { path } => {
            let entries = input::read_user_list(path)?;
            let mut users = Vec::with_capacity(entries.len());
            let mut missing = Vec::new();
            // The list refuses a user written twice the same way; by id on one line and by
            // UPN on another is found once both name a stored user.
            let mut lines_of: HashMap<UserId, u64> = HashMap::with_capacity(entries.len());
            // A chunk at a time, so only the wave's users are held, not a second copy.
            for chunk in entries.chunks(LISTED_PER_LOOKUP) {
                let found = look_up_listed(store, chunk).await?;
                for (entry, found) in chunk.iter().zip(found) {
                    match found {
                        Some(user) => {
                            if let Some(first) = lines_of.insert(user.id, entry.line) {
                                return Err(UsageError(format!(
                                "{}, lines {first} and {}: both name the user {} ({}); keep one of them",
                                path.display(),
                                entry.line,
                                user.user_principal_name,
                                user.id
                            ))
                            .into());
                            }
                            if let Some(address) = &entry.address {
                                overrides.insert(user.id, address.clone());
                            }
                            users.push(user);
                        }
                        None => missing.push(entry.line),
                    }
                }
            }
            if !missing.is_empty() {
                let lines: Vec<String> = missing.iter().take(10).map(u64::to_string).collect();
                return Err(UsageError(format!(
                    "{} user(s) of {} are not in the snapshot (lines {}{}); run `b2b-convert discover --csv {}` first",
                    missing.len(),
                    path.display(),
                    lines.join(", "),
                    if missing.len() > 10 { ", …" } else { "" },
                    path.display()
                ))
                .into());
            }
            users
        }
        Users::Group { id, transitive, .. } => {
            read_and_store(
                settings,
                store,
                &UserSelection::Group {
                    id: *id,
                    transitive: *transitive,
                },
            )
            .await?
        }
        Users::Filter { filter } => {
            read_and_store(settings, store, &UserSelection::Filter(filter.clone())).await?
        }
    };
    Ok((Roster::listed(users), overrides))
}

/// Lines of a user list looked up together: two statements per this many lines.
const LISTED_PER_LOOKUP: usize = 5_000;

/// The stored users a list names, in the list's order (`None` where the snapshot has no such
/// user), looked up in batches: one statement per line made a 100,000-line list slow.
async fn look_up_listed(
    store: &Store,
    entries: &[input::UserListEntry],
) -> anyhow::Result<Vec<Option<UserSnapshot>>> {
    let mut ids = Vec::new();
    let mut upns = Vec::new();
    for entry in entries {
        match &entry.key {
            UserKey::Id(id) => ids.push(*id),
            UserKey::Upn(upn) => upns.push(upn.as_str()),
        }
    }
    let mut by_id = store.users_by_ids(&ids).await?;
    let mut by_upn = store.users_by_upns(&upns).await?;
    // Each found user moves out of its map, so a million snapshots are not held twice (the
    // list refuses a key written twice, UPNs compared ignoring case: each key is taken once).
    Ok(entries
        .iter()
        .map(|entry| match &entry.key {
            UserKey::Id(id) => by_id.remove(id),
            UserKey::Upn(upn) => by_upn.remove(&store::upn_key(upn)),
        })
        .collect())
}

/// Reads a selection from Graph, refreshing the stored snapshots on the way.
async fn read_and_store(
    settings: &Settings,
    store: &Store,
    selection: &UserSelection,
) -> anyhow::Result<Vec<UserSnapshot>> {
    let client = connect(settings)?;
    let mut users = Vec::new();
    let mut pages = std::pin::pin!(client.users(selection, OffsetDateTime::now_utc()));
    while let Some(page) = pages
        .try_next()
        .await
        .context("reading the wave's users from Graph")?
    {
        store.store_users(&page.items).await?;
        users.extend(page.items);
    }
    Ok(users)
}

/// Users the operator excluded, with why.
async fn exclusions(
    settings: &Settings,
    store: &Store,
    selection: &Selection,
) -> anyhow::Result<HashMap<UserId, String>> {
    let mut excluded = HashMap::new();
    if let Some(path) = &selection.exclude_csv {
        let entries = input::read_user_list(path)?;
        for chunk in entries.chunks(LISTED_PER_LOOKUP) {
            let upns: Vec<&str> = chunk
                .iter()
                .filter_map(|entry| match &entry.key {
                    UserKey::Upn(upn) => Some(upn.as_str()),
                    UserKey::Id(_) => None,
                })
                .collect();
            let by_upn = store.users_by_upns(&upns).await?;
            for entry in chunk {
                let found = match &entry.key {
                    UserKey::Id(id) => Some(*id),
                    UserKey::Upn(upn) => by_upn.get(&store::upn_key(upn)).map(|u| u.id),
                };
                if let Some(id) = found {
                    excluded.insert(id, format!("{}, line {}", path.display(), entry.line));
                }
            }
        }
    }
    if !selection.exclude_groups.is_empty() {
        let client = connect(settings)?;
        for group in &selection.exclude_groups {
            let selection = UserSelection::Group {
                id: *group,
                transitive: true,
            };
            let mut pages = std::pin::pin!(client.users(&selection, OffsetDateTime::now_utc()));
            while let Some(page) = pages
                .try_next()
                .await
                .context("reading an exclusion group from Graph")?
            {
                for user in page.items {
                    excluded.insert(user.id, format!("member of exclusion group {group}"));
                }
            }
        }
    }
    Ok(excluded)
}

/// What a plan decided: its summary, as text or `--json`.
#[derive(Serialize)]
struct PlanDocument {
    wave: String,
    /// The group the users came from, when `--group` chose them.
    group: Option<PlanGroup>,
    users: usize,
    eligible: usize,
    /// Eligible users whose `mail` is set to the address first.
    set_mail: usize,
    blocked: usize,
    /// Users per blocking reason code.
    blockers: BTreeMap<&'static str, usize>,
    /// Users per warning reason code.
    warnings: BTreeMap<&'static str, usize>,
    /// Home-realm discovery of the partner domains (absent when the rules ask none).
    realms: Option<PlanRealms>,
    /// The partner pre-flight of the wave's external domains (absent when switched off).
    partner_preflight: Option<PlanPreflight>,
    /// What changed since the wave's previous plan (absent for a new wave).
    replanned: Option<Replanned>,
    plan_hash: String,
}

#[derive(Serialize)]
struct PlanGroup {
    id: Uuid,
    name: Option<String>,
    transitive: bool,
}

#[derive(Serialize)]
struct PlanRealms {
    domains: usize,
    cached: usize,
    asked: usize,
    managed: usize,
    federated: usize,
    unknown: usize,
    failed: usize,
}

#[derive(Serialize)]
struct PlanPreflight {
    /// Why it was skipped (it is advisory), when it was.
    skipped: Option<String>,
    domains: usize,
    /// Domains whose users redeem without a prompt if their tenant allows it outbound.
    automatic: usize,
    /// Domains whose users are asked to consent.
    asks_partner: usize,
    /// Domains not checked, by reason.
    not_checked: BTreeMap<String, usize>,
}

impl PlanPreflight {
    fn of(outcome: Result<PreflightSummary, String>) -> Self {
        match outcome {
            Ok(summary) => Self {
                skipped: None,
                domains: summary.domains(),
                automatic: summary.automatic,
                asks_partner: summary.asks_partner,
                not_checked: summary
                    .not_checked
                    .iter()
                    .map(|(reason, n)| (reason.to_string(), *n))
                    .collect(),
            },
            Err(why) => Self {
                skipped: Some(why),
                domains: 0,
                automatic: 0,
                asks_partner: 0,
                not_checked: BTreeMap::new(),
            },
        }
    }
}

#[derive(Serialize)]
struct Replanned {
    added: usize,
    removed: u64,
    changed: usize,
}

impl output::JsonDocument for PlanDocument {
    const SCHEMA: &'static str = "plan";
    const VERSION: u32 = 1;
}

impl PlanDocument {
    fn new(
        wave: &Wave,
        selection: &Selection,
        tally: &Tally,
        realms: Option<&RealmSummary>,
        hash: &str,
    ) -> Self {
        let by_code = |severity: Severity| {
            tally
                .findings
                .iter()
                .filter(|((s, _), _)| *s == severity)
                .map(|((_, code), n)| (*code, *n))
                .collect()
        };
        Self {
            wave: wave.name.clone(),
            group: match &selection.users {
                Users::Group {
                    id,
                    transitive,
                    name,
                } => Some(PlanGroup {
                    id: *id,
                    name: name.clone(),
                    transitive: *transitive,
                }),
                _ => None,
            },
            users: tally.users,
            eligible: tally.eligible,
            set_mail: tally.set_mail,
            blocked: tally.users - tally.eligible,
            blockers: by_code(Severity::Blocker),
            warnings: by_code(Severity::Warning),
            realms: realms.map(|r| PlanRealms {
                domains: r.cached + r.asked + r.invalid,
                cached: r.cached,
                asked: r.asked,
                managed: r.managed,
                federated: r.federated,
                unknown: r.unknown,
                failed: r.failed,
            }),
            partner_preflight: None,
            replanned: (tally.previous > 0).then_some(Replanned {
                added: tally.added,
                removed: tally.removed,
                changed: tally.changed,
            }),
            plan_hash: hash.to_owned(),
        }
    }

    fn render(&self) -> String {
        let mut text = String::new();
        if let Some(PlanGroup {
            id,
            name: Some(name),
            transitive,
        }) = &self.group
        {
            let _ = writeln!(
                text,
                "Group \"{name}\" ({id}){}",
                if *transitive {
                    ", with nested groups"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(
            text,
            "Wave {}: {} user(s): {} eligible ({} with mail set first), {} blocked",
            self.wave, self.users, self.eligible, self.set_mail, self.blocked
        );
        for (label, counts) in [("Blocked by", &self.blockers), ("Warnings", &self.warnings)] {
            if !counts.is_empty() {
                let list: Vec<String> = counts
                    .iter()
                    .map(|(code, n)| format!("{code} {n}"))
                    .collect();
                let _ = writeln!(text, "{label}: {}", list.join(", "));
            }
        }
        if let Some(realms) = &self.realms {
            let _ = writeln!(
                text,
                "Realms: {} domain(s), {} cached, {} asked: {} managed, {} federated, {} unknown, {} failed",
                realms.domains,
                realms.cached,
                realms.asked,
                realms.managed,
                realms.federated,
                realms.unknown,
                realms.failed
            );
        }
        match &self.partner_preflight {
            Some(PlanPreflight {
                skipped: Some(why), ..
            }) => {
                let _ = writeln!(text, "Partner pre-flight skipped (advisory): {why}");
            }
            Some(preflight) if preflight.domains > 0 => {
                let not_checked: Vec<String> = preflight
                    .not_checked
                    .iter()
                    .map(|(reason, n)| format!("{reason} {n}"))
                    .collect();
                let _ = writeln!(
                    text,
                    "Partner pre-flight: {} domain(s): {} automatic if the partner allows it, {} ask the partner, {} not checked{}",
                    preflight.domains,
                    preflight.automatic,
                    preflight.asks_partner,
                    preflight.not_checked.values().sum::<usize>(),
                    if not_checked.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", not_checked.join(", "))
                    }
                );
            }
            _ => {}
        }
        if let Some(replanned) = &self.replanned {
            let _ = writeln!(
                text,
                "Re-planned: {} added, {} removed, {} changed (decision or address)",
                replanned.added, replanned.removed, replanned.changed
            );
        }
        let _ = writeln!(text, "Plan hash {}", self.plan_hash);
        let _ = writeln!(
            text,
            "\nNext: b2b-convert report --wave {} --format html --out {}.html",
            self.wave, self.wave
        );
        text
    }
}
