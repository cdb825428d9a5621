//! What a purge removes: one URL (every origin, every variant), a URL
//! prefix, a tag, one resource's key (an invalidation), or everything.
//! The same rule is applied to this instance's store, carried to the rest
//! of a fleet ([`crate::shared`]), and checked against fills that were in
//! flight when it landed, so that a purged response is not stored after
//! its purge.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::key::{CacheKey, KeyUrl};

/// Purges remembered for fills in flight; a fill that started before the
/// oldest of them is not stored if any purge landed since.
const REMEMBERED: usize = 256;

/// Where in a fleet's purge log a store is: which log (it changes when
/// Redis lost its data) and the last entry applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPosition {
    /// The log's identity.
    pub log: String,
    /// The last applied entry's id.
    pub applied: String,
}

/// The purges applied to a store, numbered, the last few kept: a fill
/// notes the number when its fetch starts and is stored only if no purge
/// since then matches it.
#[derive(Debug, Default)]
pub struct RecentPurges {
    applied: AtomicU64,
    recent: Mutex<VecDeque<(u64, PurgeRule)>>,
}

impl RecentPurges {
    /// Purges applied so far (a fill's starting point).
    pub fn count(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Records `rule` before it is applied, so that a fill finishing
    /// during the purge's walk sees it.
    pub fn record(&self, rule: PurgeRule) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let number = self.applied.load(Ordering::Relaxed) + 1;
        if recent.len() == REMEMBERED {
            recent.pop_front();
        }
        recent.push_back((number, rule));
        self.applied.store(number, Ordering::Release);
    }

    /// Whether a purge recorded after `since` removes `key` with `tags`
    /// (or may have: purges before the remembered ones are not known).
    pub fn purged_since(&self, since: u64, key: &CacheKey, tags: &[Box<str>]) -> bool {
        if self.count() == since {
            return false; // the common case: no lock
        }
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        match recent.front() {
            Some((oldest, _)) if *oldest <= since + 1 => recent
                .iter()
                .filter(|(number, _)| *number > since)
                .any(|(_, rule)| rule.matches(key, tags)),
            _ => true,
        }
    }
}

/// One purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeRule {
    /// Every entry of this URL (any origin, any variant).
    Url(KeyUrl),
    /// Every entry whose URL starts with this.
    Prefix(KeyUrl),
    /// Every entry with this purge tag.
    Tag(Box<str>),
    /// Every variant of this primary key (an unsafe method's invalidation).
    Key(CacheKey),
    /// Everything.
    All,
}

impl PurgeRule {
    /// Whether it removes the entry stored under `key` with `tags`.
    pub fn matches(&self, key: &CacheKey, tags: &[Box<str>]) -> bool {
        match self {
            PurgeRule::Url(url) => url.is_url_of(key),
            PurgeRule::Prefix(prefix) => prefix.is_prefix_of(key),
            PurgeRule::Tag(tag) => tags.iter().any(|t| t == tag),
            PurgeRule::Key(primary) => key.resource_text() == primary.as_str(),
            PurgeRule::All => true,
        }
    }

    /// Its kind, as a purge log names it.
    pub fn op(&self) -> &'static str {
        match self {
            PurgeRule::Url(_) => "url",
            PurgeRule::Prefix(_) => "prefix",
            PurgeRule::Tag(_) => "tag",
            PurgeRule::Key(_) => "key",
            PurgeRule::All => "all",
        }
    }

    /// Its argument, as a purge log holds it.
    pub fn arg(&self) -> &str {
        match self {
            PurgeRule::Url(url) | PurgeRule::Prefix(url) => url.as_str(),
            PurgeRule::Tag(tag) => tag,
            PurgeRule::Key(key) => key.as_str(),
            PurgeRule::All => "",
        }
    }

    /// The rule a purge log entry names; `None` for anything else (a
    /// newer version's kind, a malformed argument).
    pub fn from_op(op: &str, arg: &str) -> Option<Self> {
        Some(match op {
            "url" => PurgeRule::Url(KeyUrl::parse(arg)?),
            "prefix" => PurgeRule::Prefix(KeyUrl::parse(arg)?),
            "tag" if !arg.is_empty() => PurgeRule::Tag(arg.into()),
            "key" => PurgeRule::Key(CacheKey::parse(arg).ok()?.primary()),
            "all" => PurgeRule::All,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_is_refused_only_by_a_later_purge_that_matches_it() {
        let purges = RecentPurges::default();
        let a = CacheKey::new("http://o", "h", "/a");
        let b = CacheKey::new("http://o", "h", "/b");
        let started = purges.count();
        assert!(!purges.purged_since(started, &a, &[]));
        purges.record(PurgeRule::Key(b.clone()));
        assert!(!purges.purged_since(started, &a, &[]));
        assert!(purges.purged_since(started, &b, &[]));
        assert!(
            !purges.purged_since(purges.count(), &b, &[]),
            "a fill after it"
        );
        for _ in 0..REMEMBERED {
            purges.record(PurgeRule::Key(b.clone()));
        }
        assert!(
            purges.purged_since(started, &a, &[]),
            "too old to know: refused"
        );
    }

    #[test]
    fn rules_match_what_they_name_and_survive_the_log() {
        let key = CacheKey::new("http://o", "h", "/a/b?x");
        let variant = CacheKey::variant(&key, 7);
        let tags: Vec<Box<str>> = vec!["t1".into()];
        let rules = [
            (PurgeRule::Url(KeyUrl::new("h", "/a/b?x")), true),
            (PurgeRule::Url(KeyUrl::new("h", "/a/b")), false),
            (PurgeRule::Prefix(KeyUrl::new("h", "/a/")), true),
            (PurgeRule::Prefix(KeyUrl::new("g", "/")), false),
            (PurgeRule::Tag("t1".into()), true),
            (PurgeRule::Tag("t2".into()), false),
            (PurgeRule::Key(key.clone()), true),
            (
                PurgeRule::Key(CacheKey::new("http://p", "h", "/a/b?x")),
                false,
            ),
            (PurgeRule::All, true),
        ];
        for (rule, hit) in rules {
            assert_eq!(rule.matches(&key, &tags), hit, "{rule:?}");
            assert_eq!(rule.matches(&variant, &tags), hit, "{rule:?} on a variant");
            assert_eq!(PurgeRule::from_op(rule.op(), rule.arg()), Some(rule));
        }
        assert_eq!(PurgeRule::from_op("url", "no-slash"), None);
        assert_eq!(PurgeRule::from_op("tag", ""), None);
        assert_eq!(PurgeRule::from_op("ban", "x"), None);
    }
}
