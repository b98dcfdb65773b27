//! Microsoft Graph: the only module that speaks HTTP to the tenant. Everything it returns is a
//! domain type or a typed [`Error`].
//!
//! - [`auth`]: tokens (client secret, certificate, pre-obtained token, device code).
//! - [`client`]: the one client and response checker; retries, throttling, paging.
//! - [`retry`]: the pure retry policy.
//! - [`realm`]: home-realm discovery on the login host (anonymous; never sends the token).
//! - [`users`] and `tenant`: the resources the tool reads, as domain types.
//! - [`invitations`]: the one conversion write, and the `mail` update before it.
//! - [`memberships`]: a user's direct groups and app role assignments, and the conversion
//!   baseline built from them.
//!
//! It must not touch the store, evaluate rules, or decide what a failure means for a user: it
//! reports precisely what happened (including "the outcome of this write is unknown") and the
//! caller decides.

pub mod auth;
pub mod client;
mod error;
pub mod invitations;
pub mod memberships;
pub mod permissions;
pub mod realm;
pub mod retry;
mod tenant;
pub mod users;

pub use client::{ClientOptions, GraphClient, Page, Priority, Response, ResponseMeta};
pub use error::{ApiError, Error};
pub use memberships::{ConversionState, GroupMembership};
pub use users::{LookupKey, UserSelection};
