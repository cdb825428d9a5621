//! Choosing a server of an origin with several: smooth weighted round robin (nginx's
//! sequence, computed once), least connections (in flight per weight), or
//! a consistent hash of the cache key (weighted rendezvous hashing: when a
//! server goes, only its own keys move). Backups take traffic only when no
//! primary can. Each server has a [`Breaker`] for passive health (`fall`
//! failures in a row take it out for a back-off, then one request tries it)
//! and an active-check flag. Lock-free: a pick reads atomics only.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::time::Duration;

use crate::breaker::{Breaker, Permit};
pub use crate::config::Balance;
pub use crate::metrics::ServerGauges;

/// Largest weight honoured (the round-robin sequence is the sum of them).
pub const MAX_WEIGHT: u32 = 100;

/// One server of an origin as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// Its name in logs and metrics (`host:port`).
    pub name: String,
    /// Its share of traffic (1 to [`MAX_WEIGHT`]).
    pub weight: u32,
    /// Takes traffic only when no primary can.
    pub backup: bool,
}

/// A change of a server's state, to log once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// It takes requests again.
    Up,
    /// It is left out.
    Down,
}

/// A server's live state.
#[derive(Debug)]
pub struct Server {
    /// As configured.
    pub spec: ServerSpec,
    in_flight: AtomicUsize,
    /// Passive health: failures of real requests.
    passive: Breaker,
    /// Active health: what the last checks said (true without checks).
    checked_up: AtomicBool,
    /// Checks in a row: successes when positive, failures when negative.
    checks_in_row: AtomicI32,
    /// For the hash: fixed per server name.
    seed: u64,
    gauges: ServerGauges,
}

impl Server {
    /// A server taken out after `fall` failed requests in a row, for
    /// `back_off`; its state shown in `gauges`.
    pub fn new(spec: ServerSpec, fall: u32, back_off: Duration, gauges: ServerGauges) -> Self {
        gauges.up.set(1);
        Server {
            seed: xxhash_rust::xxh3::xxh3_64(spec.name.as_bytes()),
            spec,
            in_flight: AtomicUsize::new(0),
            passive: Breaker::new(fall, back_off),
            checked_up: AtomicBool::new(true),
            checks_in_row: AtomicI32::new(0),
            gauges,
        }
    }

    /// This server with what the checks said of `earlier` (the same
    /// server before its settings changed).
    pub fn carrying(self, earlier: &Server) -> Self {
        self.checked_up.store(
            earlier.checked_up.load(Ordering::Acquire),
            Ordering::Release,
        );
        self.checks_in_row.store(
            earlier.checks_in_row.load(Ordering::Acquire),
            Ordering::Release,
        );
        self.show();
        self
    }

    /// Whether requests may go to it now (not counting a probe).
    pub fn is_up(&self) -> bool {
        self.checked_up.load(Ordering::Acquire) && self.passive.permit() == Permit::Call
    }

    /// Requests in flight to it.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// A request to it failed before any response (connect failure,
    /// timeout, reset); returns true when this took it out.
    pub fn failed(&self) -> bool {
        let out = self.passive.failed();
        if out {
            self.gauges.downs.inc();
            self.show();
        }
        out
    }

    /// A request to it got a response; returns true when this brought it
    /// back.
    pub fn succeeded(&self) -> bool {
        let back = self.passive.succeeded();
        if back {
            self.show();
        }
        back
    }

    /// An active check answered well; after `rise` in a row a server the
    /// checks had taken out is back (and a passive back-off is over).
    pub fn check_passed(&self, rise: u32) -> Option<Transition> {
        let in_row = self
            .checks_in_row
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.max(0).saturating_add(1))
            })
            .map_or(1, |n| n.max(0).saturating_add(1));
        if self.checked_up.load(Ordering::Acquire) {
            // A passive back-off ends with the check's success.
            if self.passive.succeeded() {
                self.show();
                return Some(Transition::Up);
            }
            return None;
        }
        if u32::try_from(in_row).unwrap_or(0) < rise {
            return None;
        }
        self.checked_up.store(true, Ordering::Release);
        self.passive.succeeded();
        self.show();
        Some(Transition::Up)
    }

    /// An active check failed; after `fall` in a row the server is out
    /// until `rise` checks pass.
    pub fn check_failed(&self, fall: u32) -> Option<Transition> {
        let in_row = self
            .checks_in_row
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.min(0).saturating_sub(1))
            })
            .map_or(1, |n| n.min(0).saturating_sub(1).unsigned_abs());
        if !self.checked_up.load(Ordering::Acquire) || in_row < fall {
            return None;
        }
        let was_up = self.is_up();
        self.checked_up.store(false, Ordering::Release);
        self.show();
        if was_up {
            self.gauges.downs.inc();
            Some(Transition::Down)
        } else {
            None
        }
    }

    /// Takes it out or brings it back as the checks say (tests).
    pub fn set_checked_up(&self, up: bool) {
        self.checked_up.store(up, Ordering::Release);
        self.show();
    }

    /// Its state for `/stats`.
    pub fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "server": self.spec.name,
            "weight": self.spec.weight,
            "backup": self.spec.backup,
            "up": self.is_up(),
            "in_flight": self.in_flight(),
            "passive": self.passive.state().as_str(),
            "checked": if self.checked_up.load(Ordering::Acquire) { "up" } else { "down" },
            "taken_out": self.gauges.downs.get(),
        })
    }

    fn show(&self) {
        self.gauges.up.set(i64::from(self.is_up()));
    }
}

/// A server picked for one request; counts it in flight until dropped.
#[derive(Debug)]
pub struct Picked {
    server: Arc<Server>,
    index: usize,
}

impl Picked {
    /// The server.
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Its position in the origin's list (to exclude it from a retry).
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for Picked {
    fn drop(&mut self) {
        self.server.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The servers of one origin and how to choose among them.
#[derive(Debug)]
pub struct Balancer {
    servers: Vec<Arc<Server>>,
    balance: Balance,
    /// Smooth weighted round-robin sequences of server indexes.
    primaries: Box<[usize]>,
    backups: Box<[usize]>,
    next: AtomicUsize,
}

impl Balancer {
    /// `servers` chosen by `balance`.
    pub fn new(servers: Vec<Arc<Server>>, balance: Balance) -> Self {
        let sequence = |backup: bool| {
            let members: Vec<(usize, u32)> = servers
                .iter()
                .enumerate()
                .filter(|(_, s)| s.spec.backup == backup)
                .map(|(i, s)| (i, s.spec.weight.clamp(1, MAX_WEIGHT)))
                .collect();
            smooth_sequence(&members).into_boxed_slice()
        };
        Balancer {
            primaries: sequence(false),
            backups: sequence(true),
            servers,
            balance,
            next: AtomicUsize::new(0),
        }
    }

    /// The servers, in configured order.
    pub fn servers(&self) -> &[Arc<Server>] {
        &self.servers
    }

    /// A server for a request with cache key `key`, not one of `tried`
    /// (a retry's earlier servers): a primary that is up, else a backup
    /// that is up, else one whose back-off is over (its probe), else none.
    pub fn pick(&self, key: &str, tried: &[usize]) -> Option<Picked> {
        self.pick_preferring(key, tried, |_| true)
    }

    /// As [`pick`](Self::pick), preferring servers for which `has_room`
    /// holds (below their connection bound) while any that is up has room.
    pub fn pick_preferring(
        &self,
        key: &str,
        tried: &[usize],
        has_room: impl Fn(usize) -> bool,
    ) -> Option<Picked> {
        let usable = |i: &usize| !tried.contains(i) && self.servers[*i].is_up();
        let roomy = |i: &usize| usable(i) && has_room(*i);
        let chosen = self
            .choose(&self.primaries, key, &roomy)
            .or_else(|| self.choose(&self.backups, key, &roomy))
            .or_else(|| self.choose(&self.primaries, key, &usable))
            .or_else(|| self.choose(&self.backups, key, &usable))
            .or_else(|| {
                // Nobody is up: the first server due for a probe gets this
                // request as its probe.
                (0..self.servers.len()).find(|i| !tried.contains(i) && self.probe_due(*i))
            })?;
        let server = self.servers[chosen].clone();
        server.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(Picked {
            server,
            index: chosen,
        })
    }

    fn probe_due(&self, index: usize) -> bool {
        let server = &self.servers[index];
        server.checked_up.load(Ordering::Acquire) && server.passive.begin_probe()
    }

    fn choose(
        &self,
        sequence: &[usize],
        key: &str,
        usable: &impl Fn(&usize) -> bool,
    ) -> Option<usize> {
        if sequence.is_empty() {
            return None;
        }
        match self.balance {
            Balance::RoundRobin => {
                // A server left out gives up its turn instead of passing it
                // to the next one, which would then get a double share.
                (0..sequence.len())
                    .map(|_| sequence[self.next.fetch_add(1, Ordering::Relaxed) % sequence.len()])
                    .find(usable)
            }
            Balance::LeastConnections => {
                // Ties go round robin, so that idle servers share the load.
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                let mut members: Vec<usize> = sequence.to_vec();
                members.sort_unstable();
                members.dedup();
                let offset = start % members.len();
                members.rotate_left(offset);
                members.into_iter().filter(usable).min_by(|a, b| {
                    let (a, b) = (&self.servers[*a], &self.servers[*b]);
                    // in_flight / weight, compared without division.
                    let left = a.in_flight() as u64 * u64::from(b.spec.weight.max(1));
                    let right = b.in_flight() as u64 * u64::from(a.spec.weight.max(1));
                    left.cmp(&right)
                })
            }
            Balance::KeyHash => {
                let key_hash = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
                let mut members: Vec<usize> = sequence.to_vec();
                members.sort_unstable();
                members.dedup();
                members.into_iter().filter(usable).max_by(|a, b| {
                    let score = |i: usize| rendezvous_score(key_hash, &self.servers[i]);
                    score(*a).total_cmp(&score(*b))
                })
            }
        }
    }
}

/// Weighted rendezvous hashing: `-weight / ln(u)`, `u` in (0, 1) from the
/// key and the server; the highest score wins. Removing a server moves
/// only the keys it won.
fn rendezvous_score(key_hash: u64, server: &Server) -> f64 {
    let mixed = xxhash_rust::xxh3::xxh3_64_with_seed(&key_hash.to_le_bytes(), server.seed);
    // 53 random bits into (0, 1): never 0, never 1.
    let unit = ((mixed >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(server.spec.weight.max(1)) / unit.ln()
}

/// nginx's smooth weighted round robin, unrolled once: every server
/// appears `weight` times, spread out (weights 5, 1, 1 give a a b a c a a).
fn smooth_sequence(members: &[(usize, u32)]) -> Vec<usize> {
    let total: i64 = members.iter().map(|(_, w)| i64::from(*w)).sum();
    let mut current: Vec<i64> = vec![0; members.len()];
    let mut sequence = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for (slot, (_, weight)) in members.iter().enumerate() {
            current[slot] += i64::from(*weight);
            if current[slot] > current[best] {
                best = slot;
            }
        }
        current[best] -= total;
        sequence.push(members[best].0);
    }
    sequence
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, weight: u32, backup: bool) -> ServerSpec {
        ServerSpec {
            name: name.into(),
            weight,
            backup,
        }
    }

    fn balancer(balance: Balance, specs: &[(&str, u32, bool)]) -> Balancer {
        let servers = specs
            .iter()
            .map(|(n, w, b)| {
                let gauges = ServerGauges::default();
                Arc::new(Server::new(
                    spec(n, *w, *b),
                    2,
                    Duration::from_secs(10),
                    gauges,
                ))
            })
            .collect();
        Balancer::new(servers, balance)
    }

    fn counts(balancer: &Balancer, picks: usize, key: impl Fn(usize) -> String) -> Vec<usize> {
        let mut counts = vec![0; balancer.servers().len()];
        for n in 0..picks {
            let picked = balancer.pick(&key(n), &[]).unwrap();
            counts[picked.index()] += 1;
        }
        counts
    }

    #[test]
    fn round_robin_follows_the_weights_interleaved() {
        assert_eq!(
            smooth_sequence(&[(0, 5), (1, 1), (2, 1)]),
            vec![0, 0, 1, 0, 2, 0, 0]
        );
        let rr = balancer(
            Balance::RoundRobin,
            &[("a", 1, false), ("b", 1, false), ("c", 2, false)],
        );
        assert_eq!(counts(&rr, 400, |_| String::new()), vec![100, 100, 200]);
    }

    #[test]
    fn a_server_that_fails_in_a_row_is_skipped_until_it_succeeds() {
        let rr = balancer(Balance::RoundRobin, &[("a", 1, false), ("b", 1, false)]);
        let a = rr.servers()[0].clone();
        assert!(!a.failed());
        assert!(a.failed(), "the second failure in a row takes it out");
        assert_eq!(counts(&rr, 10, |_| String::new()), vec![0, 10]);
        assert!(a.succeeded(), "a success brings it back");
        assert_eq!(counts(&rr, 10, |_| String::new()), vec![5, 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn with_every_server_out_one_request_probes_after_the_back_off() {
        let rr = balancer(Balance::RoundRobin, &[("a", 1, false)]);
        let a = rr.servers()[0].clone();
        a.failed();
        a.failed();
        assert!(
            rr.pick("", &[]).is_none(),
            "no server: the caller answers at once"
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        let probe = rr.pick("", &[]).expect("one request probes it");
        assert!(rr.pick("", &[]).is_none(), "one probe at a time");
        drop(probe);
        assert!(a.succeeded());
        assert!(rr.pick("", &[]).is_some());
    }

    #[test]
    fn backups_take_traffic_only_when_no_primary_can() {
        let rr = balancer(Balance::RoundRobin, &[("a", 1, false), ("spare", 1, true)]);
        assert_eq!(counts(&rr, 10, |_| String::new()), vec![10, 0]);
        rr.servers()[0].set_checked_up(false);
        assert_eq!(counts(&rr, 10, |_| String::new()), vec![0, 10]);
        rr.servers()[0].set_checked_up(true);
        assert_eq!(counts(&rr, 10, |_| String::new()), vec![10, 0]);
    }

    #[test]
    fn checks_take_a_server_out_after_fall_and_back_after_rise() {
        let rr = balancer(Balance::RoundRobin, &[("a", 1, false), ("b", 1, false)]);
        let a = rr.servers()[0].clone();
        assert_eq!(a.check_failed(3), None);
        assert_eq!(a.check_passed(2), None, "a success breaks the run");
        assert_eq!(a.check_failed(3), None);
        assert_eq!(a.check_failed(3), None);
        assert_eq!(a.check_failed(3), Some(Transition::Down));
        assert_eq!(a.check_failed(3), None, "logged once");
        assert_eq!(counts(&rr, 10, |_| String::new()), vec![0, 10]);
        assert_eq!(a.check_passed(2), None);
        assert_eq!(a.check_passed(2), Some(Transition::Up));
        assert_eq!(counts(&rr, 10, |_| String::new()), vec![5, 5]);
    }

    #[test]
    fn a_passing_check_ends_a_passive_back_off() {
        let rr = balancer(Balance::RoundRobin, &[("a", 1, false)]);
        let a = rr.servers()[0].clone();
        a.failed();
        assert!(a.failed());
        assert!(!a.is_up());
        assert_eq!(a.check_passed(2), Some(Transition::Up));
        assert!(a.is_up());
    }

    #[test]
    fn servers_with_room_are_preferred() {
        let rr = balancer(Balance::RoundRobin, &[("a", 1, false), ("b", 1, false)]);
        for _ in 0..4 {
            assert_eq!(rr.pick_preferring("", &[], |i| i == 1).unwrap().index(), 1);
        }
        assert!(
            rr.pick_preferring("", &[], |_| false).is_some(),
            "full: wait on one"
        );
    }

    #[test]
    fn a_retry_goes_to_another_server() {
        let rr = balancer(Balance::RoundRobin, &[("a", 1, false), ("b", 1, false)]);
        for _ in 0..4 {
            let first = rr.pick("", &[]).unwrap();
            let retry = rr.pick("", &[first.index()]).unwrap();
            assert_ne!(first.index(), retry.index());
            assert!(rr.pick("", &[0, 1]).is_none());
        }
    }

    #[test]
    fn least_connections_prefers_the_least_busy_per_weight() {
        let lc = balancer(
            Balance::LeastConnections,
            &[("a", 1, false), ("b", 1, false), ("c", 2, false)],
        );
        let held: Vec<Picked> = (0..8).map(|_| lc.pick("", &[]).unwrap()).collect();
        let mut in_flight: Vec<usize> = lc.servers().iter().map(|s| s.in_flight()).collect();
        assert_eq!(in_flight, vec![2, 2, 4], "in proportion to the weights");
        drop(held);
        in_flight = lc.servers().iter().map(|s| s.in_flight()).collect();
        assert_eq!(in_flight, vec![0, 0, 0], "counted until dropped");
    }

    #[test]
    fn key_hash_keeps_a_key_on_one_server_and_moves_few_when_one_goes() {
        let servers = [("a", 1, false), ("b", 1, false), ("c", 1, false)];
        let kh = balancer(Balance::KeyHash, &servers);
        let key = |n: usize| format!("http://o h/item/{n}");
        let before: Vec<usize> = (0..3000)
            .map(|n| kh.pick(&key(n), &[]).unwrap().index())
            .collect();
        let again: Vec<usize> = (0..3000)
            .map(|n| kh.pick(&key(n), &[]).unwrap().index())
            .collect();
        assert_eq!(before, again, "the same key, the same server");
        let share = counts(&kh, 3000, key);
        assert!(share.iter().all(|c| (800..=1200).contains(c)), "{share:?}");

        kh.servers()[2].set_checked_up(false);
        let after: Vec<usize> = (0..3000)
            .map(|n| kh.pick(&key(n), &[]).unwrap().index())
            .collect();
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        let lost = before.iter().filter(|b| **b == 2).count();
        assert_eq!(moved, lost, "only the keys of the server that went");
        assert!((800..=1200).contains(&moved), "about a third: {moved}");
    }
}
