//! The purges of the fleet's log that a response read from the shared tier
//! is checked against: a stored value names the log position its fetch
//! started at, and is refused if a purge after that position removes it.
//! Exact purges (a URL, an invalidated key) are looked up in a sharded
//! map; the rare prefix and tag purges are scanned, newest first; a purge
//! of everything raises the floor below which every value is refused.

use std::sync::Arc;

use arc_swap::ArcSwap;
use dashmap::DashMap;

use super::log_id::LogId;
use crate::cache::CacheKey;
use crate::cache::purge::PurgeRule;

/// Exact purges kept; beyond it the oldest half is folded into the floor
/// (values older than the floor are refused, which is safe: a miss).
const MAX_EXACT: usize = 100_000;
/// Prefix and tag purges kept, likewise.
const MAX_SCANNED: usize = 1_000;

/// What a value must be newer than.
#[derive(Debug, Default)]
struct Scanned {
    /// Values fetched before this position are refused.
    floor: LogId,
    /// Prefix and tag purges after the floor, oldest first.
    rules: Vec<(LogId, PurgeRule)>,
}

/// The purge log's rules, as far as this instance has read it.
#[derive(Debug, Default)]
pub struct Rules {
    /// Latest purge position per exact target: a key's text (it holds a
    /// space) or a URL's (it holds none).
    exact: DashMap<Box<str>, LogId>,
    scanned: ArcSwap<Scanned>,
}

impl Rules {
    /// Notes `rule` at `id`.
    pub fn add(&self, id: LogId, rule: &PurgeRule) {
        match rule {
            PurgeRule::Url(url) => self.add_exact(url.as_str(), id),
            PurgeRule::Key(key) => self.add_exact(key.as_str(), id),
            PurgeRule::All => self.raise_floor(id),
            PurgeRule::Prefix(_) | PurgeRule::Tag(_) => {
                let current = self.scanned.load();
                let mut rules = current.rules.clone();
                rules.push((id, rule.clone()));
                let mut floor = current.floor;
                if rules.len() > MAX_SCANNED {
                    let dropped: Vec<_> = rules.drain(..MAX_SCANNED / 2).collect();
                    floor = floor.max(dropped.last().map_or(floor, |(id, _)| *id));
                }
                self.scanned.store(Arc::new(Scanned { floor, rules }));
            }
        }
    }

    fn add_exact(&self, target: &str, id: LogId) {
        let mut slot = self.exact.entry(target.into()).or_insert(id);
        *slot = (*slot).max(id);
        drop(slot);
        if self.exact.len() > MAX_EXACT {
            let mut ids: Vec<LogId> = self.exact.iter().map(|e| *e.value()).collect();
            let middle = ids.len() / 2;
            let (_, median, _) = ids.select_nth_unstable(middle);
            let median = *median;
            self.raise_floor(median);
        }
    }

    /// Refuses every value fetched before `id` (a purge of everything, or
    /// a part of the log that is no longer known).
    pub fn raise_floor(&self, id: LogId) {
        let current = self.scanned.load();
        if id <= current.floor {
            return;
        }
        let rules = current
            .rules
            .iter()
            .filter(|(at, _)| *at > id)
            .cloned()
            .collect();
        self.scanned.store(Arc::new(Scanned { floor: id, rules }));
        self.exact.retain(|_, at| *at > id);
    }

    /// Forgets everything (the log was lost): values fetched before
    /// `floor` are refused.
    pub fn reset(&self, floor: LogId) {
        self.exact.clear();
        self.scanned.store(Arc::new(Scanned {
            floor,
            rules: Vec::new(),
        }));
    }

    /// Whether a purge after `since` removes the value stored under `key`
    /// with `tags`.
    pub fn purged_since(&self, since: LogId, key: &CacheKey, tags: &[Box<str>]) -> bool {
        let scanned = self.scanned.load();
        if since < scanned.floor {
            return true;
        }
        let later = |target: &str| self.exact.get(target).is_some_and(|at| *at > since);
        if later(key.primary_text()) || later(key.url()) {
            return true;
        }
        scanned
            .rules
            .iter()
            .rev()
            .take_while(|(at, _)| *at > since)
            .any(|(_, rule)| rule.matches(key, tags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key::KeyUrl;

    fn id(ms: u64) -> LogId {
        LogId { ms, seq: 0 }
    }

    #[test]
    fn a_value_is_refused_by_a_later_purge_only() {
        let rules = Rules::default();
        let key = CacheKey::new("http://o", "h", "/a?x");
        let variant = CacheKey::variant(&key, 9);
        let tags: Vec<Box<str>> = vec!["t".into()];
        assert!(!rules.purged_since(id(0), &variant, &tags));
        rules.add(id(10), &PurgeRule::Url(KeyUrl::new("h", "/a?x")));
        assert!(rules.purged_since(id(9), &variant, &tags));
        assert!(!rules.purged_since(id(10), &variant, &tags));
        rules.add(id(20), &PurgeRule::Key(key.clone()));
        assert!(rules.purged_since(id(15), &key, &tags));
        rules.add(id(30), &PurgeRule::Tag("t".into()));
        rules.add(id(31), &PurgeRule::Prefix(KeyUrl::new("g", "/")));
        assert!(rules.purged_since(id(25), &key, &tags));
        assert!(!rules.purged_since(id(25), &key, &[]));
        rules.add(id(40), &PurgeRule::All);
        assert!(rules.purged_since(id(39), &CacheKey::new("http://o", "z", "/"), &[]));
        assert!(!rules.purged_since(id(40), &key, &tags));
        rules.reset(id(50));
        assert!(rules.purged_since(id(45), &key, &[]));
    }
}
