//! `plan`: evaluate a wave's users with the eligibility rules and store the plan. Read-only on
//! the tenant (it may read group members, filtered users and home realms).
//!
//! Orchestration only: the rules decide (`rules`), the store keeps (`store`), Graph and the
//! realm endpoint answer (`graph`). Everything an evaluation needs is loaded first, so the
//! rules stay pure.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::realms::{RealmOptions, RealmSummary, realm_client, resolve_realms};
use super::{Ctx, Outcome, Refused, UsageError, connect, open_store};
use crate::cli::PlanArgs;
use crate::config::{AuthMethod, Settings};
use crate::domain::{Decision, Rule, RuleMode, UserId, UserSnapshot};
use crate::graph::UserSelection;
use crate::input::{self, UserKey};
use crate::output;
use crate::rules::{
    self, Candidate, Collision, DomainSet, Evaluation, Policy, Severity, TenantView, WaveSettings,
};
use crate::store::{NewWave, PlannedMember, Store, Wave};

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
    Csv { path: PathBuf },
    Group { id: Uuid, transitive: bool },
    Filter { filter: String },
}

/// The stored snapshot's other owners of the chosen addresses, by lower-cased address.
type StoredOwners = HashMap<String, Vec<Collision>>;

impl PlanArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = open_store(&settings).await?;
        let facts = store.tenant_facts().await?.ok_or_else(|| {
            UsageError(
                "the database has no tenant facts yet; run `b2b-convert discover` first".into(),
            )
        })?;
        let existing = store.wave_by_name(&self.wave).await?;
        let (selection, cap) = self.settle_selection(existing.as_ref())?;

        let (users, overrides) = select_users(&settings, &store, &selection).await?;
        if let Some(cap) = cap
            && users.len() > cap as usize
        {
            return Err(Refused(format!(
                "wave {} would have {} users, more than its cap of {cap}; narrow the selection or raise --max",
                self.wave,
                users.len()
            ))
            .into());
        }
        let excluded = exclusions(&settings, &store, &selection).await?;

        let policy = Policy {
            modes: rules_modes(&settings),
            set_mail_before_invite: settings.invitation.set_mail_before_invite,
            allow_new_address: selection.allow_new_address,
        };
        let other_waves = store
            .pending_in_other_waves(existing.as_ref().map(|w| w.id))
            .await?;
        let wave_users = WaveUsers {
            users,
            overrides,
            excluded,
            other_waves,
        };
        let (evaluations, realm_summary) =
            decide(&settings, &store, &facts, &wave_users, &policy).await?;

        let now = OffsetDateTime::now_utc();
        let previous = match &existing {
            Some(wave) => store.members(wave.id).await?,
            None => Vec::new(),
        };
        let planned: Vec<PlannedMember> = evaluations
            .iter()
            .zip(&wave_users.users)
            .map(|(eval, user)| PlannedMember {
                user_id: eval.user,
                decision: eval.decision,
                findings: eval.findings.clone(),
                chosen_address: eval.address.as_ref().map(|a| a.address.clone()),
                address_origin: eval.address.as_ref().map(|a| a.origin),
                set_mail: eval.set_mail,
                snapshot_fingerprint: rules::fingerprint(user),
            })
            .collect();
        let hash = rules::plan_hash(&evaluations);
        // A new wave is created together with its plan: a failure leaves no empty wave.
        let wave = if let Some(mut wave) = existing {
            wave.cap = cap;
            wave.settings = settings_json(&settings, &policy);
            store
                .replace_plan(&wave, &planned, &hash, now)
                .await
                .context("storing the plan")?;
            wave
        } else {
            let new = NewWave {
                name: self.wave.clone(),
                selector: serde_json::to_value(&selection)?,
                cap,
                settings: settings_json(&settings, &policy),
            };
            store
                .create_planned_wave(&new, &planned, &hash, now)
                .await
                .context("storing the plan")?
        };

        output::write_stdout(&summary(
            &wave,
            &evaluations,
            &previous,
            realm_summary.as_ref(),
            &hash,
        ))?;
        Ok(Outcome::Done)
    }

    /// The selection and cap to plan with: the given ones for a new wave, the stored ones for
    /// a re-plan (a different selection for an existing wave is refused).
    fn settle_selection(
        &self,
        existing: Option<&Wave>,
    ) -> anyhow::Result<(Selection, Option<u32>)> {
        let given = self.given_selection()?;
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
                if given.as_ref().is_some_and(|g| *g != stored) {
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

    fn given_selection(&self) -> anyhow::Result<Option<Selection>> {
        let absolute = |path: &PathBuf| {
            std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
        };
        let users = if let Some(path) = &self.users.csv {
            Users::Csv {
                path: absolute(path)?,
            }
        } else if let Some(id) = self.users.group {
            Users::Group {
                id,
                transitive: self.users.transitive,
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
        Ok(Some(Selection {
            users,
            exclude_csv: self.exclude_csv.as_ref().map(absolute).transpose()?,
            exclude_groups: self.exclude_group.clone(),
            allow_new_address: self.allow_new_address,
        }))
    }
}

/// A wave's users with what the operator said about them.
struct WaveUsers {
    users: Vec<UserSnapshot>,
    overrides: HashMap<UserId, String>,
    excluded: HashMap<UserId, String>,
    /// Other waves that still plan to convert the user.
    other_waves: HashMap<UserId, Vec<String>>,
}

/// Evaluates every user: a first pass finds the addresses, then what depends on them (their
/// other owners, their domains' realms) is loaded and the users are decided for good.
async fn decide(
    settings: &Settings,
    store: &Store,
    facts: &crate::domain::TenantFacts,
    wave: &WaveUsers,
    policy: &Policy,
) -> anyhow::Result<(Vec<Evaluation>, Option<RealmSummary>)> {
    let verified: Vec<String> = facts
        .domains
        .iter()
        .filter(|d| d.is_verified)
        .map(|d| d.name.clone())
        .collect();
    let mut tenant = TenantView {
        verified_domains: DomainSet::new(&verified),
        federation_domains: DomainSet::new(facts.federation_domains.iter().map(|d| &d.domain)),
        realms: HashMap::new(),
    };
    let evaluate_all = |tenant: &TenantView, book: &StoredOwners| -> Vec<Evaluation> {
        wave.users
            .iter()
            .map(|user| {
                let candidate = Candidate {
                    user,
                    override_address: wave.overrides.get(&user.id).map(String::as_str),
                    excluded: wave.excluded.get(&user.id).map(String::as_str),
                    other_waves: wave.other_waves.get(&user.id).map_or(&[], Vec::as_slice),
                };
                rules::evaluate(candidate, tenant, policy, book)
            })
            .collect()
    };
    let first = evaluate_all(&tenant, &StoredOwners::new());
    let book = owners_of(store, &first).await?;
    let realm_summary = if policy.mode(Rule::HomeRealmNotEntra) == RuleMode::Off {
        None
    } else {
        let domains = first
            .iter()
            .zip(&wave.users)
            .filter(|(_, user)| !user.is_synced())
            .filter_map(|(eval, _)| eval.address.as_ref())
            .filter_map(|chosen| rules::address::domain_of(&chosen.address));
        let summary = resolve_realms(
            &realm_client(settings)?,
            store,
            domains,
            &verified,
            OffsetDateTime::now_utc(),
            &RealmOptions::default(),
        )
        .await?;
        tenant.realms = summary
            .records
            .iter()
            .filter_map(|(domain, record)| {
                record
                    .outcome
                    .as_ref()
                    .ok()
                    .map(|a| (domain.clone(), a.kind))
            })
            .collect();
        Some(summary)
    };
    let mut evaluations = evaluate_all(&tenant, &book);
    rules::mark_duplicates(&mut evaluations);
    rules::apply_wave_findings(
        &mut evaluations,
        &rules::wave_findings(&wave_settings(settings), policy),
    );
    Ok((evaluations, realm_summary))
}

/// The users a selection names, from the stored snapshot (group and filter selections are
/// read from Graph now, and their snapshots refreshed), with the list's address overrides.
async fn select_users(
    settings: &Settings,
    store: &Store,
    selection: &Selection,
) -> anyhow::Result<(Vec<UserSnapshot>, HashMap<UserId, String>)> {
    let mut overrides = HashMap::new();
    let users = match &selection.users {
        Users::All => store.active_users().await?,
        Users::Csv { path } => {
            let entries = input::read_user_list(path)?;
            let mut users = Vec::with_capacity(entries.len());
            let mut missing = Vec::new();
            for entry in entries {
                let found = match &entry.key {
                    UserKey::Id(id) => store.user(*id).await?,
                    UserKey::Upn(upn) => store.user_by_upn(upn).await?,
                };
                match found {
                    Some(user) => {
                        if let Some(address) = entry.address {
                            overrides.insert(user.id, address);
                        }
                        users.push(user);
                    }
                    None => missing.push(entry.line),
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
        Users::Group { id, transitive } => {
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
    Ok((users, overrides))
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
        for entry in input::read_user_list(path)? {
            let found = match &entry.key {
                UserKey::Id(id) => Some(*id),
                UserKey::Upn(upn) => store.user_by_upn(upn).await?.map(|u| u.id),
            };
            if let Some(id) = found {
                excluded.insert(id, format!("{}, line {}", path.display(), entry.line));
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

/// Who else owns each chosen address, from the stored address index.
async fn owners_of(store: &Store, evaluations: &[Evaluation]) -> anyhow::Result<StoredOwners> {
    let addresses: Vec<String> = evaluations
        .iter()
        .filter_map(|e| e.address.as_ref().map(|a| a.address.to_lowercase()))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let owners: StoredOwners = store
        .address_owners_of_many(&addresses)
        .await?
        .into_iter()
        .map(|(address, owners)| {
            let collisions = owners
                .into_iter()
                .map(|o| Collision {
                    object_id: o.object_id,
                    property: o.source.to_string(),
                })
                .collect();
            (address, collisions)
        })
        .collect();
    Ok(owners)
}

fn rules_modes(settings: &Settings) -> BTreeMap<Rule, RuleMode> {
    Rule::ALL
        .iter()
        .map(|rule| (*rule, settings.rules.mode(*rule)))
        .collect()
}

fn wave_settings(settings: &Settings) -> WaveSettings {
    WaveSettings {
        custom_message: settings.invitation.custom_message.is_some(),
        app_only: matches!(
            settings.auth.method,
            AuthMethod::ClientSecret | AuthMethod::Certificate
        ),
        send_message: settings.invitation.send_message,
        redirect_url: settings
            .invitation
            .redirect_url
            .as_ref()
            .map(ToString::to_string),
    }
}

/// What the plan was made with, kept with the wave (no secrets: none are involved).
fn settings_json(settings: &Settings, policy: &Policy) -> serde_json::Value {
    serde_json::json!({
        "auth_method": settings.auth.method,
        "invitation": invitation_json(settings),
        "rules": policy.modes.iter().map(|(rule, mode)| (rule.code(), mode.to_string())).collect::<BTreeMap<_, _>>(),
        "allow_new_address": policy.allow_new_address,
    })
}

/// The invitation settings as a plan keeps them; `run` sends only what they were.
pub(super) fn invitation_json(settings: &Settings) -> serde_json::Value {
    let invitation = &settings.invitation;
    serde_json::json!({
        "redirect_url": invitation.redirect_url.as_ref().map(ToString::to_string),
        "send_message": invitation.send_message,
        "message_language": invitation.message_language,
        "custom_message": invitation.custom_message,
        "cc_recipient": invitation.cc_recipient.as_ref().map(|c| &c.address),
        "invited_user_type": invitation.invited_user_type,
        "send_display_name": invitation.send_display_name,
        "set_mail_before_invite": invitation.set_mail_before_invite,
    })
}

fn summary(
    wave: &Wave,
    evaluations: &[Evaluation],
    previous: &[crate::store::WaveMember],
    realms: Option<&RealmSummary>,
    hash: &str,
) -> String {
    let mut text = String::new();
    let eligible = evaluations
        .iter()
        .filter(|e| e.decision == Decision::Eligible)
        .count();
    let set_mail = evaluations
        .iter()
        .filter(|e| e.set_mail && e.decision == Decision::Eligible)
        .count();
    let _ = writeln!(
        text,
        "Wave {}: {} user(s): {eligible} eligible ({set_mail} with mail set first), {} blocked",
        wave.name,
        evaluations.len(),
        evaluations.len() - eligible
    );
    for (severity, label) in [
        (Severity::Blocker, "Blocked by"),
        (Severity::Warning, "Warnings"),
    ] {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for finding in evaluations.iter().flat_map(|e| &e.findings) {
            if finding.severity == severity {
                *counts.entry(finding.reason.code()).or_default() += 1;
            }
        }
        if !counts.is_empty() {
            let list: Vec<String> = counts.iter().map(|(c, n)| format!("{c} {n}")).collect();
            let _ = writeln!(text, "{label}: {}", list.join(", "));
        }
    }
    if let Some(realms) = realms {
        let _ = writeln!(
            text,
            "Realms: {} domain(s), {} cached, {} asked: {} managed, {} federated, {} unknown, {} failed",
            realms.cached + realms.asked + realms.invalid,
            realms.cached,
            realms.asked,
            realms.managed,
            realms.federated,
            realms.unknown,
            realms.failed
        );
    }
    if !previous.is_empty() {
        let before: HashMap<UserId, (&Decision, &Option<String>)> = previous
            .iter()
            .map(|m| (m.plan.user_id, (&m.plan.decision, &m.plan.chosen_address)))
            .collect();
        let now: HashSet<UserId> = evaluations.iter().map(|e| e.user).collect();
        let added = evaluations
            .iter()
            .filter(|e| !before.contains_key(&e.user))
            .count();
        let removed = before.keys().filter(|id| !now.contains(id)).count();
        let changed = evaluations
            .iter()
            .filter(|e| {
                before.get(&e.user).is_some_and(|(decision, address)| {
                    **decision != e.decision
                        || address.as_deref() != e.address.as_ref().map(|a| a.address.as_str())
                })
            })
            .count();
        let _ = writeln!(
            text,
            "Re-planned: {added} added, {removed} removed, {changed} changed (decision or address)"
        );
    }
    let _ = writeln!(text, "Plan hash {}", &hash[..16]);
    let _ = writeln!(
        text,
        "\nNext: b2b-convert report --wave {} --format html --out {}.html",
        wave.name, wave.name
    );
    text
}
