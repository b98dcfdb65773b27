//! The one decision path of `plan` and `invite`. It owns what a decision is made with — the
//! only place the rules' [`Policy`], [`TenantView`] and [`WaveSettings`], and the settings a
//! plan keeps with its wave, are built from [`Settings`] and the tenant facts ([`Basis`],
//! [`wave_settings`], [`settings_json`]) — and how a verdict is made: the rules' evaluation
//! with what the wave adds ([`decide`]), for a wave's users ([`Decider`](super::Decider)) and
//! for `invite`'s one user ([`Alone`]). It must not evaluate a rule itself (that is `rules`'),
//! hold SQL or HTTP, or build a client: realm answers come through a client the caller hands in.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use time::OffsetDateTime;

use super::realms::{RealmOptions, RealmSummary, resolve_realms};
use crate::config::{AuthMethod, Settings};
use crate::domain::{Rule, RuleMode, TenantFacts, UserId, UserSnapshot};
use crate::execute::InvitationTemplate;
use crate::graph::realm::RealmClient;
use crate::rules::{
    self, Candidate, Collision, DomainSet, Evaluation, Finding, Policy, TenantView, WaveSettings,
};
use crate::store::{self, AddressOwner, PlannedMember, Store};

/// The stored snapshot's owners of the chosen addresses, by lower-cased address. Only the
/// addresses some object other than the user choosing them answers to are kept: for the rest
/// the rules would find no collision either way.
pub type StoredOwners = HashMap<String, Vec<Collision>, foldhash::fast::RandomState>;

/// What every decision is made with: the operator's policy and the tenant as the rules see it
/// (its verified and direct-federation domains, and the realms asked so far).
#[derive(Clone, Debug)]
pub struct Basis {
    pub policy: Policy,
    pub tenant: TenantView,
    /// The tenant's verified domains: their realms are never asked.
    verified: Vec<String>,
    /// Whether `discover` read the org contacts (their addresses are in the index).
    contacts_read: bool,
}

impl Basis {
    /// The policy the settings give (with `allow_new_address` from the wave or the command),
    /// and the tenant of `facts` before any realm is asked.
    pub fn new(settings: &Settings, facts: &TenantFacts, allow_new_address: bool) -> Self {
        let policy = Policy {
            modes: rules_modes(settings),
            set_mail_before_invite: settings.invitation.set_mail_before_invite,
            allow_new_address,
            exchange_add_on_plans: settings.rules.exchange_add_on_plans.clone(),
        };
        let (tenant, verified) = tenant_view(facts);
        Self {
            policy,
            tenant,
            verified,
            contacts_read: facts.contacts_read_at.is_some(),
        }
    }

    /// Whether the `home-realm-not-entra` rule is on, so home realms are worth asking.
    pub fn asks_realms(&self) -> bool {
        self.policy.mode(Rule::HomeRealmNotEntra) != RuleMode::Off
    }

    /// Asks the home realms of `domains` (the tenant's own verified domains aside), from the
    /// realm cache or the realm endpoint, and keeps the answers for the rules.
    pub async fn add_realms(
        &mut self,
        client: &RealmClient,
        store: &Store,
        domains: Vec<String>,
        now: OffsetDateTime,
    ) -> Result<RealmSummary, store::Error> {
        let summary = resolve_realms(
            client,
            store,
            domains,
            &self.verified,
            now,
            &RealmOptions::default(),
        )
        .await?;
        self.tenant.realms = summary
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
        Ok(summary)
    }

    /// The findings about the wave as a whole, which every user of it gets: its invitation
    /// settings', and what the snapshot could not check (org contacts not read).
    pub fn wave_findings(&self, wave: &WaveSettings) -> Vec<Finding> {
        let mut findings = rules::wave_findings(wave, &self.policy);
        findings.extend(rules::snapshot_findings(self.contacts_read));
        findings
    }
}

/// A user's verdict: the rules' evaluation with what the wave adds — another user of the wave
/// chose the same address (`duplicate`: the lower-cased address and those others, in the
/// wave's order), the other waves in which this tool already invited the user (`converted`,
/// each `<wave> (<state>)`, from the store: the snapshot may predate those runs), and the
/// wave's own findings.
pub fn decide(
    candidate: Candidate<'_>,
    tenant: &TenantView,
    policy: &Policy,
    owners: &StoredOwners,
    duplicate: Option<(&str, &[UserId])>,
    converted: &[String],
    wave_findings: &[Finding],
) -> Evaluation {
    let mut eval = rules::evaluate(candidate, tenant, policy, owners);
    if let Some((address, others)) = duplicate {
        rules::mark_duplicate(&mut eval, address, others);
    }
    rules::mark_converted_elsewhere(&mut eval, converted);
    rules::apply_wave_findings(std::slice::from_mut(&mut eval), wave_findings);
    eval
}

/// `invite`'s decision: one user, alone, decided like a wave's user. The address is chosen
/// first and its other owners read; the caller asks the realm [`Alone::realm_to_ask`] names,
/// then [`Alone::decide`] gives the verdict.
#[derive(Debug)]
pub struct Alone<'a> {
    candidate: Candidate<'a>,
    /// The address the rules choose for the user, if any.
    address: Option<String>,
    owners: StoredOwners,
}

impl<'a> Alone<'a> {
    /// Chooses the user's address as the rules do, and reads who else answers to it.
    pub async fn choose(
        store: &Store,
        basis: &Basis,
        candidate: Candidate<'a>,
    ) -> Result<Self, store::Error> {
        let first = rules::evaluate(candidate, &basis.tenant, &basis.policy, &HashMap::new());
        let address = first.address.map(|a| a.address);
        let owners = match &address {
            Some(address) => as_collisions(
                store
                    .address_owners_of_many(std::slice::from_ref(address))
                    .await?,
            ),
            None => StoredOwners::default(),
        };
        Ok(Self {
            candidate,
            address,
            owners,
        })
    }

    /// The domain whose home realm the verdict needs: the chosen address's, for a cloud-only
    /// user, when the rule is on.
    pub fn realm_to_ask(&self, basis: &Basis) -> Option<String> {
        if !basis.asks_realms() || self.candidate.user.is_synced() {
            return None;
        }
        self.address.as_deref().and_then(rules::address::domain_of)
    }

    /// The verdict, with the wave's findings; with `reset_redemption`, being a B2B user
    /// already is information, not a blocker.
    pub fn decide(
        self,
        basis: &Basis,
        wave_findings: &[Finding],
        reset_redemption: bool,
    ) -> Evaluation {
        // `invite` reads its user from Graph right before deciding: a conversion by another
        // wave shows as `already-external` there, and a redemption reset of such a user is
        // what `invite --reset-redemption` is for.
        let mut eval = decide(
            self.candidate,
            &basis.tenant,
            &basis.policy,
            &self.owners,
            None,
            &[],
            wave_findings,
        );
        if reset_redemption {
            rules::allow_redemption_reset(&mut eval);
        }
        eval
    }
}

/// A user's evaluation as a plan stores it, with the fingerprint of the rule inputs it was
/// made from (`run` skips the user if they changed).
pub fn planned_member(eval: Evaluation, user: &UserSnapshot) -> PlannedMember {
    PlannedMember {
        user_id: eval.user,
        decision: eval.decision,
        chosen_address: eval.address.as_ref().map(|a| a.address.clone()),
        address_origin: eval.address.as_ref().map(|a| a.origin),
        set_mail: eval.set_mail,
        findings: eval.findings,
        snapshot_fingerprint: rules::fingerprint(user),
    }
}

/// Stored address owners as the rules see them: collisions, by lower-cased address.
pub fn as_collisions<S: BuildHasher>(
    owners: HashMap<String, Vec<AddressOwner>, S>,
) -> StoredOwners {
    owners
        .into_iter()
        .map(|(address, owners)| {
            let collisions = owners
                .into_iter()
                .map(|o| Collision {
                    object_id: o.object_id,
                    property: o.source.to_string(),
                    kind: match o.kind {
                        store::OwnerKind::User => rules::OwnerKind::User,
                        store::OwnerKind::OrgContact { display_name } => {
                            rules::OwnerKind::OrgContact { display_name }
                        }
                    },
                })
                .collect();
            (address, collisions)
        })
        .collect()
}

fn rules_modes(settings: &Settings) -> BTreeMap<Rule, RuleMode> {
    Rule::ALL
        .iter()
        .map(|rule| (*rule, settings.rules.mode(*rule)))
        .collect()
}

/// What the wave's invitations mean for every user in it. `sent` is the invitation as a
/// command will send it (`invite`'s options on top of the settings); without one, the
/// settings' invitation fields.
pub fn wave_settings(settings: &Settings, sent: Option<&InvitationTemplate>) -> WaveSettings {
    let app_only = matches!(
        settings.auth.method,
        AuthMethod::ClientSecret | AuthMethod::Certificate
    );
    match sent {
        Some(sent) => WaveSettings {
            custom_message: sent.custom_message.is_some(),
            app_only,
            send_message: sent.send_message,
            redirect_url: Some(sent.redirect_url.clone()),
        },
        None => WaveSettings {
            custom_message: settings.invitation.custom_message.is_some(),
            app_only,
            send_message: settings.invitation.send_message,
            redirect_url: settings
                .invitation
                .redirect_url
                .as_ref()
                .map(ToString::to_string),
        },
    }
}

/// What the plan was made with, kept with the wave (no secrets: none are involved).
pub fn settings_json(settings: &Settings, policy: &Policy) -> serde_json::Value {
    serde_json::json!({
        "auth_method": settings.auth.method,
        "invitation": invitation_json(settings),
        "rules": policy.modes.iter().map(|(rule, mode)| (rule.code(), mode.to_string())).collect::<BTreeMap<_, _>>(),
        "allow_new_address": policy.allow_new_address,
    })
}

/// The invitation settings as a plan keeps them; `run` sends only what they were.
pub fn invitation_json(settings: &Settings) -> serde_json::Value {
    let invitation = &settings.invitation;
    let mut json = serde_json::json!({
        "redirect_url": invitation.redirect_url.as_ref().map(ToString::to_string),
        "send_message": invitation.send_message,
        "message_language": invitation.message_language,
        "custom_message": invitation.custom_message,
        "cc_recipient": invitation.cc_recipient.as_ref().map(|c| &c.address),
        "invited_user_type": invitation.invited_user_type,
        "send_display_name": invitation.send_display_name,
        "set_mail_before_invite": invitation.set_mail_before_invite,
    });
    // Kept only when on, so plans made before the setting existed still match settings that
    // leave it off.
    if invitation.message_language_from_user {
        json["message_language_from_user"] = true.into();
    }
    json
}

/// What the rules know about the tenant before realms are asked, and its verified domains.
fn tenant_view(facts: &TenantFacts) -> (TenantView, Vec<String>) {
    let verified: Vec<String> = facts
        .domains
        .iter()
        .filter(|d| d.is_verified)
        .map(|d| d.name.clone())
        .collect();
    let tenant = TenantView {
        verified_domains: DomainSet::new(&verified),
        federation_domains: DomainSet::new(facts.federation_domains.iter().map(|d| &d.domain)),
        realms: HashMap::new(),
    };
    (tenant, verified)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::config::{Environment, Sources};
    use crate::domain::{FederationDomain, TenantDomain};

    /// Settings from `text` as a config file (and a tenant id, so a redirect URL by default).
    fn settings(text: &str) -> (tempfile::TempDir, Settings) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b2b-convert.toml");
        std::fs::write(
            &path,
            format!("[tenant]\ntenant_id = \"11111111-2222-3333-4444-555555555555\"\n{text}"),
        )
        .unwrap();
        let sources = Sources {
            config_path: Some(path),
            env: Environment::default(),
            flags: vec![],
        };
        let settings = crate::config::load(&sources).unwrap();
        (dir, settings)
    }

    fn facts() -> TenantFacts {
        let domain = |name: &str, is_verified| TenantDomain {
            name: name.into(),
            is_verified,
            is_default: false,
            is_initial: false,
            authentication_type: None,
        };
        TenantFacts {
            tenant_id: uuid::Uuid::from_u128(1),
            display_name: None,
            domains: vec![domain("contoso.com", true), domain("unproven.com", false)],
            federation_domains: vec![FederationDomain {
                domain: "woodgrovebank.com".into(),
                configuration_id: "f".into(),
                display_name: None,
            }],
            created_at: None,
            fetched_at: datetime!(2026-11-21 08:00 UTC),
            contacts_read_at: None,
        }
    }

    #[test]
    fn the_basis_holds_the_configured_modes_and_the_tenants_verified_domains() {
        let (_dir, settings) = settings("[rules]\nhome-realm-not-entra = \"off\"\n");
        let basis = Basis::new(&settings, &facts(), true);
        assert_eq!(basis.policy.modes.len(), Rule::ALL.len());
        assert_eq!(basis.policy.mode(Rule::HomeRealmNotEntra), RuleMode::Off);
        assert!(!basis.asks_realms());
        assert!(basis.policy.allow_new_address);
        assert_eq!(basis.verified, ["contoso.com"]);
        assert!(
            basis
                .tenant
                .verified_domains
                .covering("contoso.com")
                .is_some()
        );
        assert!(
            basis
                .tenant
                .verified_domains
                .covering("unproven.com")
                .is_none()
        );
        assert!(
            basis
                .tenant
                .federation_domains
                .covering("woodgrovebank.com")
                .is_some()
        );
        assert!(basis.tenant.realms.is_empty());
    }

    #[test]
    fn a_wave_sent_as_configured_means_what_the_settings_mean() {
        let (_dir, settings) = settings("[invitation]\ncustom_message = \"Hello\"\n");
        let template = InvitationTemplate::from_settings(&settings.invitation).unwrap();
        assert_eq!(
            wave_settings(&settings, Some(&template)),
            wave_settings(&settings, None)
        );
        let mut quiet = template;
        quiet.send_message = false;
        quiet.custom_message = None;
        let wave = wave_settings(&settings, Some(&quiet));
        assert!(!wave.send_message && !wave.custom_message);
    }

    #[test]
    fn the_plans_settings_keep_the_invitation_and_every_rule_mode() {
        let (_dir, settings) = settings("");
        let basis = Basis::new(&settings, &facts(), false);
        let json = settings_json(&settings, &basis.policy);
        assert_eq!(json["invitation"], invitation_json(&settings));
        assert_eq!(json["allow_new_address"], false);
        assert_eq!(
            json["rules"].as_object().unwrap().len(),
            basis.policy.modes.len()
        );
    }
}
