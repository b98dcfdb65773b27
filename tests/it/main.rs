//! Integration tests: one binary (faster to link on small machines), one module per area.

mod audit;
mod check;
mod cli;
mod credentials;
mod demo;
mod discover;
mod graph;
mod invite;
mod plan;
mod preflight;
mod project;
mod realm;
mod reinvite;
mod report;
mod rules_oracle;
mod run;
mod samba;
mod schema;
mod scramble;
mod support;
mod user_type;
mod verify;
