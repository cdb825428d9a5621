//! The snapshot's entry as it is written and read: serde types, and the
//! reuse rules converted once each way.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cache::entry::ReuseRules;

/// One entry of `cache.json`, owned (what the reader builds; the writer
/// serializes the same shape from borrowed parts).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SnapshotEntry {
    pub(super) key: String,
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: String,
    pub(super) stored_at: u64,
    pub(super) expires_at: Option<u64>,
    #[serde(default)]
    pub(super) initial_age: u64,
    #[serde(default)]
    pub(super) vary: Vec<(String, Option<String>)>,
    #[serde(default)]
    pub(super) rules: SnapshotRules,
    #[serde(default)]
    pub(super) tags: Vec<String>,
}

/// [`ReuseRules`] as stored: windows in seconds.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct SnapshotRules {
    #[serde(default)]
    forbids_stale: bool,
    #[serde(default)]
    no_cache: bool,
    #[serde(default)]
    immutable: bool,
    #[serde(default)]
    stale_while_revalidate: u64,
    #[serde(default)]
    stale_if_error: u64,
}

impl From<ReuseRules> for SnapshotRules {
    fn from(rules: ReuseRules) -> Self {
        SnapshotRules {
            forbids_stale: rules.forbids_stale,
            no_cache: rules.no_cache,
            immutable: rules.immutable,
            stale_while_revalidate: rules.stale_while_revalidate.as_secs(),
            stale_if_error: rules.stale_if_error.as_secs(),
        }
    }
}

impl From<&SnapshotRules> for ReuseRules {
    fn from(rules: &SnapshotRules) -> Self {
        ReuseRules {
            forbids_stale: rules.forbids_stale,
            no_cache: rules.no_cache,
            immutable: rules.immutable,
            stale_while_revalidate: Duration::from_secs(rules.stale_while_revalidate),
            stale_if_error: Duration::from_secs(rules.stale_if_error),
        }
    }
}
