//! What tests can observe about the simulator: a bounded request log, counters per endpoint,
//! per-user counts of invitation POSTs and the message language each user's last one asked for.
//!
//! Owns recording and snapshots. It must not influence behaviour: nothing here is read by the
//! request pipeline to decide an answer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

use super::faults::Endpoint;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Answered normally (any status, including Graph errors).
    Answered,
    /// 429 from the throttle.
    Throttled,
    /// Injected 503/504.
    InjectedStatus,
    /// Connection closed before any work.
    Reset,
    /// Work done, then the connection was closed without a response.
    CommittedThenDropped,
}

/// One line of the request log.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    pub seq: u64,
    pub at: String,
    pub method: String,
    pub path: String,
    pub endpoint: Option<Endpoint>,
    /// HTTP status, or 0 when no response was sent.
    pub status: u16,
    pub outcome: Outcome,
    pub request_id: String,
    pub client_request_id: String,
    pub app_id: Option<String>,
}

/// Counts for one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointCounters {
    pub requests: u64,
    pub success: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    pub throttled: u64,
    pub injected_status: u64,
    pub resets: u64,
    pub committed_then_dropped: u64,
}

/// A snapshot of all counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub requests: u64,
    pub endpoints: BTreeMap<Endpoint, EndpointCounters>,
    pub invitations_created: u64,
    pub tokens_issued: u64,
}

impl Counters {
    /// Counters of one endpoint (zeros if it was never called).
    pub fn endpoint(&self, endpoint: Endpoint) -> EndpointCounters {
        self.endpoints.get(&endpoint).cloned().unwrap_or_default()
    }
}

#[derive(Debug, Default)]
struct State {
    seq: u64,
    log: VecDeque<RequestRecord>,
    counters: Counters,
    invitation_posts: HashMap<String, u64>,
    /// `invitedUserMessageInfo.messageLanguage` of each user's last invitation POST (`None`
    /// when it had none).
    message_languages: HashMap<String, Option<String>>,
}

/// The recorder.
#[derive(Debug)]
pub struct Observer {
    capacity: usize,
    state: Mutex<State>,
}

impl Observer {
    /// Keeps the last `capacity` requests in the log.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::lock(&self.state)
    }

    /// Records a finished request.
    pub fn record(&self, mut record: RequestRecord) {
        let mut state = self.lock();
        state.seq += 1;
        record.seq = state.seq;
        state.counters.requests += 1;
        if let Some(endpoint) = record.endpoint {
            let counters = state.counters.endpoints.entry(endpoint).or_default();
            counters.requests += 1;
            match record.outcome {
                Outcome::Throttled => counters.throttled += 1,
                Outcome::InjectedStatus => counters.injected_status += 1,
                Outcome::Reset => counters.resets += 1,
                Outcome::CommittedThenDropped => counters.committed_then_dropped += 1,
                Outcome::Answered => {}
            }
            match record.status {
                200..=299 => counters.success += 1,
                400..=499 => counters.client_errors += 1,
                500..=599 => counters.server_errors += 1,
                _ => {}
            }
        }
        if self.capacity > 0 {
            if state.log.len() == self.capacity {
                state.log.pop_front();
            }
            state.log.push_back(record);
        }
    }

    /// Counts an invitation POST naming `user_id`, and remembers the message language it
    /// asked for.
    pub fn count_invitation_post(&self, user_id: &str, message_language: Option<&str>) {
        let key = user_id.to_ascii_lowercase();
        let mut state = self.lock();
        state
            .message_languages
            .insert(key.clone(), message_language.map(str::to_owned));
        *state.invitation_posts.entry(key).or_default() += 1;
    }

    /// The `messageLanguage` of the last invitation POST naming `user_id`: `None` when there
    /// was none or it had no language.
    pub fn message_language(&self, user_id: &str) -> Option<String> {
        self.lock()
            .message_languages
            .get(&user_id.to_ascii_lowercase())
            .cloned()
            .flatten()
    }

    pub fn count_token(&self) {
        self.lock().counters.tokens_issued += 1;
    }

    pub fn invitation_posts(&self, user_id: &str) -> u64 {
        self.lock()
            .invitation_posts
            .get(&user_id.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    pub fn all_invitation_posts(&self) -> BTreeMap<String, u64> {
        self.lock()
            .invitation_posts
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    pub fn counters(&self, invitations_created: u64) -> Counters {
        let mut counters = self.lock().counters.clone();
        counters.invitations_created = invitations_created;
        counters
    }

    pub fn log(&self) -> Vec<RequestRecord> {
        self.lock().log.iter().cloned().collect()
    }
}
