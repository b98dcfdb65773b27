//! A simulated Entra tenant that speaks Microsoft Graph, for tests, benchmarks, `demo` and
//! `b2b-convert sim serve`.
//!
//! Owns the [`Sim`] handle (start, URLs, credentials, observation and control), the
//! [`SimSpec`] that describes a tenant and its behaviour, and [`serve()`] for the CLI. The
//! submodules own the data ([`generate`], [`tenant_file`], [`directory`], [`audit`]), the protocol
//! ([`odata`], [`auth`], `http`) and the service behaviour ([`throttle`], [`faults`], [`limits`]).
//!
//! A crate of its own in the b2b-convert workspace, so that editing the product does not
//! recompile it. It must stay self-contained: it depends on nothing of the product (`b2b-convert`
//! depends on it, for `demo` and `sim serve` and as the tenant its tests run against, never the
//! other way round), and nothing in it is used by the real conversion path. See the repository's
//! `docs/simulator.md`.

pub mod audit;
pub mod auth;
pub mod clock;
pub mod directory;
pub mod faults;
pub mod generate;
mod http;
pub mod limits;
pub mod model;
pub mod observe;
pub mod odata;
pub mod rng;
mod serve;
pub mod tenant_file;
pub mod throttle;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use auth::{AuthConfig, Permission, SimCertificate};
pub use directory::{AddressRule, InvitationRules, RedemptionConfig, RepeatPolicy};
pub use faults::{Endpoint, FaultPlan, FaultSpec, FaultSpecError};
pub use generate::{GeneratedTenant, UserCase};
pub use model::{
    AppRegistration, AppRoleAssignment, CrossTenantPartner, InboundOutboundPolicyConfiguration,
    OrgContact, User,
};
pub use observe::{Counters, EndpointCounters, Outcome, RequestRecord};
pub use serve::{ServeOptions, serve};
pub use tenant_file::TenantFile;
pub use throttle::{CountedAt, ThrottleConfig, WindowLimit};

use clock::SimClock;
use directory::{Directory, Group, TenantFacts, UserSource};
use faults::FaultDice;
use observe::Observer;
use throttle::Throttler;

/// Locks a mutex, ignoring poisoning: simulator state stays usable after a panicking test.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Errors of the simulator's Rust API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not bind the simulator to {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("could not read the tenant file {path}")]
    ReadTenant {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid tenant{}: {reason}", path.as_ref().map(|p| format!(" file {}", p.display())).unwrap_or_default())]
    InvalidTenant {
        path: Option<PathBuf>,
        reason: String,
    },
    #[error(transparent)]
    Certificate(#[from] auth::CertificateError),
    #[error("no user {0} in the simulated tenant")]
    UnknownUser(String),
    #[error("no group {0} in the simulated tenant")]
    UnknownGroup(String),
    #[error("{0}")]
    Directory(#[from] directory::DirectoryError),
    #[error("could not write the simulator's credentials to {path}")]
    WriteCredentials {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not write the simulator's banner")]
    Output(#[source] std::io::Error),
}

/// Where the tenant's users and facts come from.
#[derive(Debug, Clone)]
pub enum TenantSource {
    /// `users` users derived from `seed` (O(1) memory per user).
    Generated { users: u64, seed: u64 },
    /// A JSON tenant file.
    File(PathBuf),
    /// A tenant file already parsed.
    Inline(Box<TenantFile>),
}

/// Graph behaviours the notes mark unverified, made switchable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphOptions {
    /// Return `domains` inline in federation configurations without `$expand=domains`.
    pub federation_domains_inline: bool,
}

/// Everything that defines a simulated tenant and its behaviour.
#[derive(Debug, Clone)]
pub struct SimSpec {
    pub tenant: TenantSource,
    /// 0 = an ephemeral port.
    pub port: u16,
    pub throttling: ThrottleConfig,
    pub faults: FaultPlan,
    /// Seed of the fault dice (faults are deterministic per seed and request order).
    pub fault_seed: u64,
    pub auth: AuthConfig,
    pub invitation_rules: InvitationRules,
    pub redemption: RedemptionConfig,
    pub graph: GraphOptions,
    /// How many recent requests the request log keeps.
    pub request_log_capacity: usize,
    /// `organization.createdDateTime` (RFC 3339) in place of the tenant's own.
    pub tenant_created: Option<String>,
}

impl SimSpec {
    /// A generated tenant with default behaviour (throttling on, no faults).
    pub fn generated(users: u64, seed: u64) -> Self {
        Self {
            tenant: TenantSource::Generated { users, seed },
            port: 0,
            throttling: ThrottleConfig::default(),
            faults: FaultPlan::none(),
            fault_seed: seed,
            auth: AuthConfig::default(),
            invitation_rules: InvitationRules::default(),
            redemption: RedemptionConfig::default(),
            graph: GraphOptions::default(),
            request_log_capacity: 10_000,
            tenant_created: None,
        }
    }

    /// A tenant loaded from a JSON file.
    pub fn from_file(path: impl Into<PathBuf>) -> Self {
        Self {
            tenant: TenantSource::File(path.into()),
            ..Self::generated(0, 0)
        }
    }

    /// A tenant given as a parsed tenant file.
    pub fn inline(file: TenantFile) -> Self {
        Self {
            tenant: TenantSource::Inline(Box::new(file)),
            ..Self::generated(0, 0)
        }
    }

    #[must_use]
    pub fn with_faults(mut self, faults: FaultPlan) -> Self {
        self.faults = faults;
        self
    }

    #[must_use]
    pub fn with_throttling(mut self, throttling: ThrottleConfig) -> Self {
        self.throttling = throttling;
        self
    }

    #[must_use]
    pub fn with_auth(mut self, auth: AuthConfig) -> Self {
        self.auth = auth;
        self
    }

    #[must_use]
    pub fn with_redemption(mut self, redemption: RedemptionConfig) -> Self {
        self.redemption = redemption;
        self
    }

    #[must_use]
    pub fn with_invitation_rules(mut self, rules: InvitationRules) -> Self {
        self.invitation_rules = rules;
        self
    }

    /// The tenant was created at `rfc3339` (`organization.createdDateTime`): a young tenant
    /// for tests of the 30-day quota warnings.
    #[must_use]
    pub fn with_tenant_created(mut self, rfc3339: impl Into<String>) -> Self {
        self.tenant_created = Some(rfc3339.into());
        self
    }

    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

/// State shared by the handle and the server.
#[derive(Debug)]
pub(crate) struct Shared {
    clock: SimClock,
    directory: Directory,
    /// The directory audit log (`auditLogs/directoryAudits`).
    audit: audit::AuditLog,
    auth: auth::Auth,
    throttle: Throttler,
    faults: Mutex<FaultPlan>,
    dice: FaultDice,
    observer: Observer,
    invitation_limits: limits::InvitationLimits,
    graph_url: String,
    login_url: String,
    options: GraphOptions,
}

impl Shared {
    fn fault_plan(&self) -> FaultPlan {
        lock(&self.faults).clone()
    }

    fn set_fault_plan(&self, plan: FaultPlan) {
        *lock(&self.faults) = plan;
    }

    fn counters(&self) -> Counters {
        self.observer.counters(self.directory.invitations_created())
    }

    fn default_admin_upn(&self) -> String {
        let domain = self
            .directory
            .facts
            .domains
            .iter()
            .find(|d| d.is_default)
            .or_else(|| self.directory.facts.domains.first());
        format!("admin@{}", domain.map_or("contoso.com", |d| d.id.as_str()))
    }

    fn describe(&self) -> Value {
        json!({
            "tenantId": self.directory.facts.tenant_id,
            "displayName": self.directory.facts.display_name,
            "graphUrl": self.graph_url,
            "loginUrl": self.login_url,
            "tokenUrl": format!("{}/{}/oauth2/v2.0/token", self.login_url, self.directory.facts.tenant_id),
            "users": self.directory.len(),
            "applications": self.directory.facts.apps.iter().map(|a| json!({
                "clientId": a.client_id,
                "displayName": a.display_name,
                "roles": a.roles,
                "secrets": a.secrets,
                "publicClient": a.public_client,
            })).collect::<Vec<_>>(),
        })
    }
}

fn build_tenant(spec: &SimSpec) -> Result<(TenantFacts, UserSource, u64), Error> {
    match &spec.tenant {
        TenantSource::Generated { users, seed } => {
            let tenant = GeneratedTenant::new(*seed, *users);
            let certificate = SimCertificate::shared()?;
            let groups = tenant
                .groups()
                .into_iter()
                .enumerate()
                .map(|(k, (id, display_name, user_ranges, nested))| Group {
                    id,
                    display_name,
                    user_ranges,
                    contacts: tenant.group_contacts(k),
                    nested,
                })
                .collect();
            let facts = TenantFacts {
                tenant_id: tenant.tenant_id(),
                display_name: "Contoso (simulated)".to_owned(),
                created_date_time: tenant_file::DEFAULT_TENANT_CREATED.to_owned(),
                domains: GeneratedTenant::domains(),
                federation: tenant.federation(),
                realms: GeneratedTenant::realms(),
                tenant_ids: BTreeMap::new(),
                cross_tenant_partners: GeneratedTenant::cross_tenant_partners(),
                groups,
                apps: tenant.applications(Some(&certificate.certificate_pem)),
                contacts: Vec::new(),
            };
            Ok((facts, UserSource::Generated(tenant), *seed))
        }
        TenantSource::File(path) => {
            let file = TenantFile::load(path)?;
            let (facts, users) = file.into_parts().map_err(|reason| Error::InvalidTenant {
                path: Some(path.clone()),
                reason,
            })?;
            Ok((facts, UserSource::Listed(users), spec.fault_seed))
        }
        TenantSource::Inline(file) => {
            let (facts, users) = file
                .as_ref()
                .clone()
                .into_parts()
                .map_err(|reason| Error::InvalidTenant { path: None, reason })?;
            Ok((facts, UserSource::Listed(users), spec.fault_seed))
        }
    }
}

/// A running simulated tenant. Dropping it stops the server (prefer [`Sim::shutdown`]).
#[derive(Debug)]
pub struct Sim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Sim {
    /// Starts a simulator on `127.0.0.1:spec.port` (0 = ephemeral).
    pub async fn start(spec: SimSpec) -> Result<Sim, Error> {
        let addr = SocketAddr::from(([127, 0, 0, 1], spec.port));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let (mut facts, source, seed) = build_tenant(&spec)?;
        if let Some(created) = &spec.tenant_created {
            facts.created_date_time.clone_from(created);
        }
        let users = source.len();
        let tenant_id = facts.tenant_id.clone();
        let graph_url = format!("http://{addr}");
        let shared = Arc::new(Shared {
            clock: SimClock::new(),
            directory: Directory::new(
                facts,
                source,
                spec.invitation_rules.clone(),
                spec.redemption.clone(),
                seed,
            ),
            audit: audit::AuditLog::new(seed),
            auth: auth::Auth::new(spec.auth.clone()),
            throttle: Throttler::new(spec.throttling.clone(), tenant_id, users),
            faults: Mutex::new(spec.faults.clone()),
            dice: FaultDice::new(spec.fault_seed),
            observer: Observer::new(spec.request_log_capacity),
            invitation_limits: limits::InvitationLimits::default(),
            login_url: format!("{graph_url}/login"),
            graph_url,
            options: spec.graph.clone(),
        });
        tracing::info!(graph_url = %shared.graph_url, users, "simulated Entra tenant listening");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(http::run(listener, shared.clone(), async move {
            let _ = stopped.await;
        }));
        Ok(Sim {
            shared,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The Graph root, e.g. `http://127.0.0.1:PORT` (the client appends `/v1.0/...`).
    pub fn graph_url(&self) -> &str {
        &self.shared.graph_url
    }

    /// The login host root, e.g. `http://127.0.0.1:PORT/login` (the client appends
    /// `/{tenant}/oauth2/v2.0/token`, `/common/userrealm/{user}`, ...).
    pub fn login_url(&self) -> &str {
        &self.shared.login_url
    }

    /// The token endpoint for this tenant.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.login_url(),
            self.tenant_id()
        )
    }

    /// The simulated Instance Metadata Service endpoint (what `B2BC_IMDS_URL` names).
    pub fn imds_url(&self) -> String {
        format!("{}/metadata/identity/oauth2/token", self.graph_url())
    }

    /// The simulated App Service identity endpoint (`IDENTITY_ENDPOINT`, or `MSI_ENDPOINT`).
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.graph_url())
    }

    /// The value the identity endpoint expects (`IDENTITY_HEADER`, or `MSI_SECRET`).
    pub fn identity_header(&self) -> String {
        self.shared.auth.config().managed_identity_secret
    }

    /// The simulated GitHub Actions token URL (`ACTIONS_ID_TOKEN_REQUEST_URL`), with its
    /// query, as the runner sets it.
    pub fn oidc_request_url(&self) -> String {
        format!("{}/oidc/token?api-version=2.0", self.graph_url())
    }

    /// The bearer token the OIDC endpoint expects (`ACTIONS_ID_TOKEN_REQUEST_TOKEN`).
    pub fn oidc_request_token(&self) -> String {
        self.shared.auth.config().oidc_request_token
    }

    /// A federated token from the simulated issuer with the trusted subject, audience
    /// `api://AzureADTokenExchange` (what a test writes into `AZURE_FEDERATED_TOKEN_FILE`).
    pub fn federated_token(&self) -> String {
        self.shared
            .auth
            .issue_oidc_token(auth::FEDERATED_AUDIENCE, &self.shared.clock)
    }

    /// The admin API root (`…/_sim`).
    pub fn admin_url(&self) -> String {
        format!("{}/_sim", self.graph_url())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn tenant_id(&self) -> &str {
        &self.shared.directory.facts.tenant_id
    }

    /// The registered app registrations (the first is the full-permission app).
    pub fn apps(&self) -> &[AppRegistration] {
        &self.shared.directory.facts.apps
    }

    /// The first app registration's client id.
    pub fn client_id(&self) -> &str {
        self.apps().first().map_or("", |a| a.client_id.as_str())
    }

    /// The first app registration's first client secret (a throwaway simulator credential).
    pub fn client_secret(&self) -> &str {
        self.apps()
            .first()
            .and_then(|a| a.secrets.first())
            .map_or("", String::as_str)
    }

    /// The certificate (and private key) registered on generated tenants' main app.
    pub fn certificate(&self) -> Result<&'static SimCertificate, Error> {
        Ok(SimCertificate::shared()?)
    }

    /// Number of users (including guests created by invitations).
    pub fn user_count(&self) -> u64 {
        self.shared.directory.len()
    }

    /// Current state of a user by object id or UPN.
    pub fn user(&self, id_or_upn: &str) -> Option<User> {
        self.shared
            .directory
            .resolve(id_or_upn)
            .and_then(|i| self.user_at(i))
    }

    /// Current state of user number `index`.
    pub fn user_at(&self, index: u64) -> Option<User> {
        self.shared.directory.user(index, &self.shared.clock)
    }

    /// The first user of a case (generated tenants; tenant files via `@sim.case`).
    pub fn find_user(&self, case: UserCase) -> Option<User> {
        self.shared
            .directory
            .find_case(case)
            .and_then(|i| self.user_at(i))
    }

    /// The label (`UserCase` name) of a user.
    pub fn case_of(&self, id_or_upn: &str) -> Option<String> {
        self.shared
            .directory
            .resolve(id_or_upn)
            .and_then(|i| self.shared.directory.case_of(i))
    }

    /// How many `POST /invitations` named this user in `invitedUser.id` (on arrival,
    /// whatever their outcome: throttled, faulted, rejected or created).
    pub fn invitation_posts(&self, user_id: &str) -> u64 {
        self.shared.observer.invitation_posts(user_id)
    }

    /// The `invitedUserMessageInfo.messageLanguage` of the last `POST /invitations` naming this
    /// user (`None` when there was none, or it carried no language).
    pub fn invitation_message_language(&self, user_id: &str) -> Option<String> {
        self.shared.observer.message_language(user_id)
    }

    pub fn counters(&self) -> Counters {
        self.shared.counters()
    }

    /// Every directory audit event so far, oldest first (what `auditLogs/directoryAudits`
    /// serves).
    pub fn audit_events(&self) -> Vec<audit::AuditEvent> {
        self.shared.audit.events()
    }

    /// The most recent requests (bounded by `request_log_capacity`).
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.shared.observer.log()
    }

    pub fn faults(&self) -> FaultPlan {
        self.shared.fault_plan()
    }

    pub fn set_faults(&self, plan: FaultPlan) {
        self.shared.set_fault_plan(plan);
    }

    pub fn set_throttling(&self, config: ThrottleConfig) {
        self.shared.throttle.set_config(config);
    }

    pub fn set_redemption(&self, config: RedemptionConfig) {
        self.shared.directory.set_redemption(config);
    }

    /// The identity platform's configuration in effect.
    pub fn auth_config(&self) -> AuthConfig {
        self.shared.auth.config()
    }

    pub fn set_auth(&self, config: AuthConfig) {
        self.shared.auth.set_config(config);
    }

    /// The invited user redeems now: `PendingAcceptance` -> `Accepted`.
    pub fn redeem(&self, id_or_upn: &str) -> Result<User, Error> {
        let index = self.index_of(id_or_upn)?;
        Ok(self.shared.directory.redeem(index, &self.shared.clock)?)
    }

    fn index_of(&self, id_or_upn: &str) -> Result<u64, Error> {
        self.shared
            .directory
            .resolve(id_or_upn)
            .ok_or_else(|| Error::UnknownUser(id_or_upn.to_owned()))
    }

    /// The ids of the groups a user is a direct member of now (what `memberOf` answers).
    pub fn member_of(&self, id_or_upn: &str) -> Result<Vec<String>, Error> {
        let index = self.index_of(id_or_upn)?;
        let groups = &self.shared.directory.facts.groups;
        Ok(self
            .shared
            .directory
            .member_of(index)
            .into_iter()
            .map(|position| groups[position].id.clone())
            .collect())
    }

    /// Takes a user out of a group's direct members, behind the tool's back (as another admin
    /// or app would with `DELETE /groups/{id}/members/{id}/$ref`). Not logged, not counted,
    /// not throttled.
    pub fn remove_group_member(&self, group_id: &str, user: &str) -> Result<(), Error> {
        let position = self
            .shared
            .directory
            .facts
            .group_position(group_id)
            .ok_or_else(|| Error::UnknownGroup(group_id.to_owned()))?;
        let index = self.index_of(user)?;
        Ok(self.shared.directory.remove_group_member(position, index)?)
    }

    /// A user's app role assignments now (what `appRoleAssignments` answers, without the
    /// principal's fields).
    pub fn app_role_assignments(&self, id_or_upn: &str) -> Result<Vec<AppRoleAssignment>, Error> {
        let index = self.index_of(id_or_upn)?;
        Ok(self.shared.directory.app_role_assignments(index))
    }

    /// Takes an app role assignment away from a user, behind the tool's back.
    pub fn remove_app_role_assignment(&self, user: &str, assignment_id: &str) -> Result<(), Error> {
        let index = self.index_of(user)?;
        self.shared
            .directory
            .remove_app_role_assignment(index, assignment_id)?;
        Ok(())
    }

    /// Renames every `every`-th user from user `first` on (their display name changes), behind
    /// the tool's back: what users delta then reports. Returns how many were renamed.
    pub fn rename_users(&self, first: u64, every: u64) -> u64 {
        self.shared
            .directory
            .rename_users(first, every, &self.shared.clock)
    }

    /// Deletes a user behind the tool's back, restorably (delta's `@removed` reason
    /// `changed`) or `permanently` (`deleted`).
    pub fn delete_user(&self, id_or_upn: &str, permanently: bool) -> Result<(), Error> {
        let index = self.index_of(id_or_upn)?;
        let reason = if permanently {
            directory::RemovalReason::Deleted
        } else {
            directory::RemovalReason::Changed
        };
        if self
            .shared
            .directory
            .delete_user(index, reason, &self.shared.clock)
        {
            Ok(())
        } else {
            Err(Error::UnknownUser(id_or_upn.to_owned()))
        }
    }

    /// Moves simulated time forward (token expiry, throttle windows, device codes, redemption).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Stops real time from moving the simulator's clock (only [`Sim::advance_clock`] moves
    /// it then), so throttle windows and polling intervals are exact in tests.
    pub fn freeze_clock(&self) {
        self.shared.clock.freeze();
    }

    /// Lets real time move the simulator's clock again.
    pub fn resume_clock(&self) {
        self.shared.clock.resume();
    }

    /// Invalidates every access token issued so far.
    pub fn revoke_tokens(&self) {
        self.shared.auth.revoke_all(&self.shared.clock);
    }

    /// Approves a pending device code as `upn` (default `admin@<default domain>`).
    pub fn approve_device_code(&self, user_code: &str, upn: Option<&str>) -> bool {
        let upn = upn.map_or_else(|| self.shared.default_admin_upn(), str::to_owned);
        self.shared.auth.decide_device_code(user_code, Some(upn))
    }

    /// Declines a pending device code.
    pub fn decline_device_code(&self, user_code: &str) -> bool {
        self.shared.auth.decide_device_code(user_code, None)
    }

    /// Stops accepting connections and waits (up to 2 s) for in-flight requests.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
