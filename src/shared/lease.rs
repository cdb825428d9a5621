//! Leases in the shared tier: the right to fetch one URL for the whole
//! fleet. Taken with `SET NX PX` (one owner at a time), renewed while the
//! fetch runs and released by its owner only (a compare-and-act script, so
//! a holder whose lease expired cannot cut short its successor's).

use std::time::Duration;

use super::client::{SharedClient, TierError, px};

/// Extends the lease's expiry if `owner` still holds it.
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

/// Deletes the lease if `owner` still holds it.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     return redis.call('DEL', KEYS[1]) else return 0 end";

/// Takes the lease, or answers how long the holder's has left, in one step.
const TAKE_OR_TTL: &str = "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then \
     return -3 else return redis.call('PTTL', KEYS[1]) end";

/// Takes the lease at `key` for `owner` for `ttl`; the answer is read by
/// [`answer`].
pub async fn take_or_ttl(
    client: &SharedClient,
    key: &str,
    owner: &str,
    ttl: Duration,
) -> Result<i64, TierError> {
    let mut eval = redis::cmd("EVAL");
    eval.arg(TAKE_OR_TTL)
        .arg(1)
        .arg(key)
        .arg(owner)
        .arg(px(ttl));
    client.call(eval).await
}

/// What a take answered: `None` when taken, else how long the holder's
/// lease has left.
pub fn answer(answer: i64) -> Option<Duration> {
    match answer {
        -3 => None,
        // Expired between the two calls (-2), or without expiry (-1, not
        // ours): look again soon.
        left if left < 0 => Some(Duration::from_millis(1)),
        left => Some(Duration::from_millis(left.unsigned_abs())),
    }
}

/// Takes the lease at `key` for `owner` for `ttl`; false if someone else
/// holds it.
pub async fn take(
    client: &SharedClient,
    key: &str,
    owner: &str,
    ttl: Duration,
) -> Result<bool, TierError> {
    let mut set = redis::cmd("SET");
    set.arg(key).arg(owner).arg("NX").arg("PX").arg(px(ttl));
    let taken: Option<String> = client.call(set).await?;
    Ok(taken.is_some())
}

/// Extends `owner`'s lease to `ttl` from now; false if it is no longer
/// theirs (it expired, and maybe someone else took it).
pub async fn renew(
    client: &SharedClient,
    key: &str,
    owner: &str,
    ttl: Duration,
) -> Result<bool, TierError> {
    let mut eval = redis::cmd("EVAL");
    eval.arg(RENEW).arg(1).arg(key).arg(owner).arg(px(ttl));
    let renewed: i64 = client.call(eval).await?;
    Ok(renewed == 1)
}

/// Gives `owner`'s lease up; false if it was no longer theirs.
pub async fn release(client: &SharedClient, key: &str, owner: &str) -> Result<bool, TierError> {
    let mut eval = redis::cmd("EVAL");
    eval.arg(RELEASE).arg(1).arg(key).arg(owner);
    let released: i64 = client.call(eval).await?;
    Ok(released == 1)
}
