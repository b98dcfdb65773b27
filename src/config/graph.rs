//! What `graph` needs from the settings, in `graph`'s own types: the [`Connection`] (hosts,
//! timeouts, retries, read priority).
//!
//! `graph` never sees [`Settings`]; this is the one place that turns them into its inputs.

use super::Settings;
use crate::graph::Connection;
use crate::graph::retry::RetryPolicy;

impl Settings {
    /// How to reach the tenant: its Graph and login hosts, the timeouts, the configured
    /// number of attempts, low-priority reads, and the system clock.
    pub fn graph_connection(&self) -> Connection {
        let throughput = &self.throughput;
        Connection {
            connect_timeout: throughput.connect_timeout,
            request_timeout: throughput.request_timeout,
            retry: RetryPolicy {
                max_attempts: throughput.max_attempts.get(),
                ..RetryPolicy::default()
            },
            low_priority_reads: throughput.low_priority_reads,
            ..Connection::new(self.tenant.graph_url.clone(), self.tenant.login_url.clone())
        }
    }
}
