//! `[limits]`: the client-side limits of every listener, validated into
//! [`Limits`], each bounded.

use std::time::Duration;

use super::Limits;
use super::error::ConfigError;
use super::file::{LimitsSection, SizeValue};
use super::values::{bounded_bytes, bytes, duration, invalid};

pub(super) fn validate_limits(section: &LimitsSection) -> Result<Limits, ConfigError> {
    let mut limits = Limits::default();
    if let Some(max) = section.max_connections {
        if max == 0 || max > 1_000_000 {
            return Err(invalid(
                "limits.max_connections",
                "must be between 1 and 1000000",
            ));
        }
        limits.max_connections = max as usize;
    }
    if let Some(t) = &section.header_read_timeout {
        limits.header_read_timeout = duration(
            "limits.header_read_timeout",
            t,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        )?;
    }
    if let Some(size) = &section.max_header_bytes {
        limits.max_header_bytes =
            bounded_bytes("limits.max_header_bytes", size, 8 * 1024, 1024 * 1024)?;
    }
    if let Some(n) = section.max_headers {
        if !(1..=10_000).contains(&n) {
            return Err(invalid("limits.max_headers", "must be between 1 and 10000"));
        }
        limits.max_headers = n as usize;
    }
    if let Some(size) = &section.max_uri_bytes {
        limits.max_uri_bytes = bounded_bytes("limits.max_uri_bytes", size, 256, 1024 * 1024)?;
    }
    if let Some(t) = &section.client_body_timeout {
        limits.client_body_timeout = duration(
            "limits.client_body_timeout",
            t,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        )?;
    }
    if let Some(rate) = &section.client_body_min_rate {
        limits.client_body_min_rate = match rate {
            SizeValue::Bytes(0) => 0,
            other => bytes("limits.client_body_min_rate", other)?,
        };
    }
    if let Some(t) = &section.shutdown_grace {
        limits.shutdown_grace = duration(
            "limits.shutdown_grace",
            t,
            Duration::ZERO,
            Duration::from_secs(3600),
        )?;
    }
    Ok(limits)
}
