//! The URLs that hit and miss most, for the dashboard, in bounded memory.
//!
//! The request path offers one request in [`SAMPLE_EVERY`], chosen at
//! random (a per-thread xorshift, so no shared line is written for the
//! others, and traffic that repeats with a period is not aliased), into a
//! bounded queue, never waiting: a full queue drops the sample. Once a second the
//! dashboard drains the queue into two Space-Saving summaries (Metwally et
//! al.: at most [`TRACKED`] URLs each; a newcomer takes the place of the
//! least counted, inheriting its count as its error bound), whose counts
//! halve every minute so that they follow the last few minutes.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// One request in this many is looked at.
pub const SAMPLE_EVERY: u32 = 8;
/// URLs each summary keeps.
const TRACKED: usize = 64;
/// Samples waiting to be counted at most: a second's worth at 130k
/// requests a second (beyond, samples are dropped: the top lists stay
/// representative). The queue's slots are allocated and written up front
/// (half a megabyte), so it counts against the memory bound from the start.
const QUEUED: usize = 16_384;

thread_local! {
    /// xorshift32 state; any nonzero seed.
    static DICE: Cell<u32> = const { Cell::new(0x9E37_79B9) };
}

/// A sampled request: its URL (host and path) and whether it was a hit.
type Sampled = (Box<str>, bool);

/// URLs with their estimated counts, most first.
pub type Ranked = Vec<(String, u64)>;

/// The sampling queue and the two summaries it feeds.
#[derive(Debug)]
pub struct TopUrls {
    queue: SyncSender<Sampled>,
    drained: Mutex<Drained>,
}

#[derive(Debug)]
struct Drained {
    queue: Receiver<Sampled>,
    hits: SpaceSaving,
    misses: SpaceSaving,
}

impl Default for TopUrls {
    fn default() -> Self {
        let (queue, receiver) = sync_channel(QUEUED);
        TopUrls {
            queue,
            drained: Mutex::new(Drained {
                queue: receiver,
                hits: SpaceSaving::default(),
                misses: SpaceSaving::default(),
            }),
        }
    }
}

impl TopUrls {
    /// Offers a request; `url` is called (and allocates) only for the
    /// sampled one in [`SAMPLE_EVERY`].
    pub fn offer(&self, hit: bool, url: impl FnOnce() -> String) {
        let sampled = DICE.with(|dice| {
            let mut x = dice.get();
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            dice.set(x);
            x % SAMPLE_EVERY == 0
        });
        if sampled {
            match self.queue.try_send((url().into_boxed_str(), hit)) {
                Ok(()) | Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
            }
        }
    }

    /// Counts what was sampled since the last call (off the request path).
    pub fn drain(&self) {
        let mut drained = self.drained.lock().unwrap_or_else(|p| p.into_inner());
        let Drained {
            queue,
            hits,
            misses,
        } = &mut *drained;
        while let Ok((url, hit)) = queue.try_recv() {
            if hit { &mut *hits } else { &mut *misses }.count(url, u64::from(SAMPLE_EVERY));
        }
    }

    /// Halves every count, so that the summaries follow recent traffic.
    pub fn decay(&self) {
        let mut drained = self.drained.lock().unwrap_or_else(|p| p.into_inner());
        drained.hits.halve();
        drained.misses.halve();
    }

    /// The `n` URLs counted most among hits and among misses, with their
    /// estimated counts (scaled back up from the sample), most first.
    pub fn top(&self, n: usize) -> (Ranked, Ranked) {
        let drained = self.drained.lock().unwrap_or_else(|p| p.into_inner());
        (drained.hits.top(n), drained.misses.top(n))
    }
}

/// A Space-Saving summary of at most [`TRACKED`] URLs.
#[derive(Debug, Default)]
struct SpaceSaving {
    counts: HashMap<Box<str>, u64>,
}

impl SpaceSaving {
    fn count(&mut self, url: Box<str>, by: u64) {
        if let Some(count) = self.counts.get_mut(&url) {
            *count += by;
            return;
        }
        if self.counts.len() < TRACKED {
            self.counts.insert(url, by);
            return;
        }
        // The least counted makes room; its count stands for what the
        // newcomer may have had before (the algorithm's overestimate).
        let least = self
            .counts
            .iter()
            .min_by_key(|(_, count)| **count)
            .map(|(url, count)| (url.clone(), *count));
        if let Some((evicted, floor)) = least {
            self.counts.remove(&evicted);
            self.counts.insert(url, floor + by);
        }
    }

    fn halve(&mut self) {
        self.counts.retain(|_, count| {
            *count /= 2;
            *count > 0
        });
    }

    fn top(&self, n: usize) -> Ranked {
        let mut top: Vec<(String, u64)> = self
            .counts
            .iter()
            .map(|(url, count)| (url.to_string(), *count))
            .collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(n);
        top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heavy_urls_surface_among_many_light_ones() {
        let top = TopUrls::default();
        for i in 0..40_000u32 {
            let url = match i % 4 {
                0 | 1 => "h/hot".to_owned(),
                2 => "h/warm".to_owned(),
                _ => format!("h/cold-{i}"),
            };
            top.offer(true, || url);
        }
        for _ in 0..800 {
            top.offer(false, || "h/missing".to_owned());
        }
        top.drain();
        let (hits, misses) = top.top(3);
        assert_eq!(hits[0].0, "h/hot");
        assert_eq!(hits[1].0, "h/warm");
        let hot = hits[0].1;
        assert!((18_000..=22_000).contains(&hot), "about 20,000: {hot}");
        assert_eq!(misses[0].0, "h/missing");
        assert!(
            (500..=1_100).contains(&misses[0].1),
            "about 800: {misses:?}"
        );
        let tracked = top.drained.lock().unwrap().hits.counts.len();
        assert!(tracked <= TRACKED, "bounded: {tracked}");
    }

    #[test]
    fn counts_fade_with_time() {
        let top = TopUrls::default();
        for _ in 0..200 {
            top.offer(true, || "h/once".to_owned());
        }
        top.drain();
        for _ in 0..10 {
            top.decay();
        }
        assert!(top.top(5).0.is_empty(), "forgotten after ten minutes");
    }
}
