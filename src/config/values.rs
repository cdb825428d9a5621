//! Values as the config file spells them (durations, sizes) turned into
//! bounded typed values, and the error that names the key.

use std::time::Duration;

use super::error::{ConfigError, SizeError};
use super::file::{DurationValue, SizeValue, SliceValue};

/// A route's slice size with `slice = true` (nginx users' usual choice).
pub const DEFAULT_SLICE: u64 = 1024 * 1024;

/// The smallest slice: smaller ones cost a request each for little.
const MIN_SLICE: u64 = 64 * 1024;

/// A route's slice size, if it slices: at least 64 KiB, and a slice must
/// fit in one entry (`max_object_size`).
pub(super) fn slice_size(
    key: &str,
    value: Option<&SliceValue>,
    max_object_size: u64,
) -> Result<Option<u64>, ConfigError> {
    let size = match value {
        None | Some(SliceValue::On(false)) => return Ok(None),
        Some(SliceValue::On(true)) => DEFAULT_SLICE,
        Some(SliceValue::Size(size)) => bytes(key, size)?,
    };
    if size < MIN_SLICE {
        return Err(invalid(key, "a slice is at least 64KiB"));
    }
    if size > max_object_size {
        return Err(invalid(
            key,
            format!(
                "a slice of {size} bytes is larger than cache.max_object_size ({max_object_size})"
            ),
        ));
    }
    Ok(Some(size))
}

/// A configuration error about `key`.
pub(super) fn invalid(key: &str, why: impl Into<super::error::Problem>) -> ConfigError {
    ConfigError::invalid(key, why)
}

/// A duration within `min..=max`.
pub(super) fn duration(
    key: &str,
    value: &DurationValue,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let parsed = match value {
        DurationValue::Seconds(n) => u64::try_from(*n)
            .map(Duration::from_secs)
            .map_err(|_| invalid(key, "must not be negative"))?,
        DurationValue::Text(text) => humantime::parse_duration(text).map_err(|e| {
            ConfigError::invalid_because(
                key,
                format!("'{text}' is not a duration like 30s, 5m or 1h"),
                e,
            )
        })?,
    };
    if parsed < min || parsed > max {
        return Err(invalid(
            key,
            format!(
                "must be between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(parsed)
}

/// A size in bytes within `min..=max`.
pub(super) fn bounded_bytes(
    key: &str,
    value: &SizeValue,
    min: u64,
    max: u64,
) -> Result<usize, ConfigError> {
    let parsed = bytes(key, value)?;
    if parsed < min || parsed > max {
        return Err(invalid(
            key,
            format!("must be between {min} and {max} bytes"),
        ));
    }
    usize::try_from(parsed).map_err(|_| invalid(key, "too large"))
}

pub(super) fn bytes(key: &str, value: &SizeValue) -> Result<u64, ConfigError> {
    let parsed = match value {
        SizeValue::Bytes(n) => {
            u64::try_from(*n).map_err(|_| invalid(key, "must not be negative"))?
        }
        SizeValue::Text(text) => parse_size(text).map_err(|e| invalid(key, e))?,
    };
    if parsed == 0 {
        return Err(invalid(key, "must be greater than 0"));
    }
    Ok(parsed)
}

/// Parses a byte size: a plain number of bytes or a number with a unit
/// (KiB, MiB, GiB, KB, MB, ...).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let size: bytesize::ByteSize = text.trim().parse().map_err(|why| SizeError::NotASize {
        text: text.to_owned(),
        why,
    })?;
    if size.as_u64() == 0 {
        return Err(SizeError::Zero);
    }
    Ok(size.as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_sizes() {
        let size = |text: &str| SliceValue::Size(SizeValue::Text(text.into()));
        let max = 8 * 1024 * 1024;
        assert_eq!(slice_size("s", None, max).unwrap(), None);
        assert_eq!(
            slice_size("s", Some(&SliceValue::On(false)), max).unwrap(),
            None
        );
        assert_eq!(
            slice_size("s", Some(&SliceValue::On(true)), max).unwrap(),
            Some(DEFAULT_SLICE)
        );
        assert_eq!(
            slice_size("s", Some(&size("4MiB")), max).unwrap(),
            Some(4 * 1024 * 1024)
        );
        for refused in ["1KiB", "16MiB", "lots"] {
            let err = slice_size("routes[0].slice", Some(&size(refused)), max).unwrap_err();
            assert!(
                err.to_string().contains("routes[0].slice"),
                "{refused}: {err}"
            );
        }
    }
}
