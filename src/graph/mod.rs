//! Microsoft Graph: the only module that speaks HTTP to the tenant. Everything it returns is a
//! domain type or a typed [`Error`].
//!
//! - [`Connection`]: hosts, timeouts, retries and clock; the one builder of the Graph and
//!   realm clients and of the HTTP client under them.
//! - [`auth`]: tokens (client secret, certificate, pre-obtained token, device code), from the
//!   [`auth::Auth`] description `config` builds.
//! - [`client`]: the one client and response checker; throttling, paging.
//! - [`retry`]: the pure retry policy, and the one retry loop (Graph calls, realm look-ups,
//!   token requests).
//! - [`realm`]: home-realm discovery and a domain's tenant id on the login host (anonymous;
//!   never sends the token).
//! - [`users`] and `tenant`: the resources the tool reads, as domain types.
//! - [`invitations`]: the one conversion write, and the `mail` update before it.
//! - [`contacts`]: org contacts, whose addresses no user may take.
//! - [`cross_tenant`]: the cross-tenant access settings' automatic redemption (the partner
//!   pre-flight); the partner domain's tenant id comes from [`realm`] (OIDC metadata).
//! - [`audit_logs`]: the directory audit log's conversion events (`verify`'s corroboration).
//! - [`groups`]: groups found by display name (how an operator names a wave's group).
//! - [`memberships`]: a user's direct groups and app role assignments, and the conversion
//!   baseline built from them.
//!
//! It must not touch the store, evaluate rules, or decide what a failure means for a user: it
//! reports precisely what happened (including "the outcome of this write is unknown") and the
//! caller decides.

pub mod audit_logs;
pub mod auth;
pub mod client;
mod connection;
pub mod contacts;
pub mod cross_tenant;
mod error;
pub mod groups;
pub mod invitations;
pub mod memberships;
pub mod permissions;
pub mod realm;
pub mod retry;
mod tenant;
pub mod users;

pub use client::{GraphClient, Page, Priority, Response, ResponseMeta};
pub use connection::{Connection, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};
pub use error::{ApiError, Error};
pub use groups::NamedGroup;
pub use memberships::{ConversionState, GroupMembership};
pub use users::{ChangesPage, LookupKey, UserChange, UserSelection, delta_link_expired};
