//! What an entry really costs in memory, for the store's byte bound: each
//! allocation it owns rounded up to the allocator's size class, moka's own
//! bookkeeping for it, its key, and its share of the `Vary` index.
//!
//! The constants were measured, not assumed: `bench/memory.py` compares
//! the store's count with the growth of the process's RSS per entry held
//! (small entries, where the overhead dominates), and the store test
//! `the_weight_of_an_entry_covers_its_allocations` checks the parts that
//! can be counted exactly.

use super::entry::CachedResponse;
use super::footprint::allocated;
use super::key::CacheKey;

/// moka's bookkeeping per entry: entry info 64, deque nodes 48,
/// timer-wheel node 40, bucket array ~38, key and value handles 32 + 32,
/// access-order node 24, bucket 16 (massif on a build with the system
/// allocator), rounded up to the allocator's size classes.
pub const MOKA_PER_ENTRY: usize = 320;

/// Small allocations cost more than their size classes add up to: an
/// allocator page of small objects is shared with entries evicted at other
/// times and stays partly empty. Measured in `bench/memory.py`'s small
/// scenario (200-byte bodies churned through a 16 MiB cache): RSS grew
/// 1.28 times what the size classes sum to. Large bodies have pages of
/// their own.
const SMALL_SLACK: (usize, usize) = (5, 4);
/// A body from this size on is counted without small-object slack.
const LARGE_BODY: usize = 16 * 1024;

/// One URL's line in the `Vary` index, charged to each of its variants:
/// the map slot (its key and the two vectors' heads, 64 bytes, at the
/// map's load factor), the key's text it keeps alive, the vectors' buffers.
const VARIANT_INDEX_LINE: usize = 96 + 32 + 32;

/// The bytes `entry` stored under `key` keeps allocated, as the store's
/// weigher counts them (saturating at `u32::MAX`).
pub fn of_entry(key: &CacheKey, entry: &CachedResponse) -> u32 {
    let text = key.as_str();
    // The key's `Arc<str>`: two counts and the text.
    let key_bytes = allocated(16 + text.len());
    let index = if key.is_variant() {
        // The primary key's text is kept by the index line.
        VARIANT_INDEX_LINE + allocated(16 + key.primary_text().len())
    } else {
        0
    };
    let heap = entry.heap_bytes();
    let large = match entry.body.len() {
        len if len >= LARGE_BODY => allocated(len),
        _ => 0,
    };
    let small = MOKA_PER_ENTRY + key_bytes + index + heap.saturating_sub(large);
    let total = large.saturating_add(small * SMALL_SLACK.0 / SMALL_SLACK.1);
    u32::try_from(total).unwrap_or(u32::MAX)
}
