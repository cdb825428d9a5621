//! What is wrong with a configuration, with where it is: the file, the
//! line and column, and the key path (`routes[1].origin`). Start-up exits
//! 2 on it; a reload refuses the edit and keeps the old configuration.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A cause from a lower layer (an I/O or TLS error, a parser's).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Where in the configuration a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The file (`<flags>` when the value came from a flag).
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        Ok(())
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("invalid configuration: {}: cannot read", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Not TOML, or a field that does not exist or has the wrong type.
    #[error("invalid configuration: {at}: {message}")]
    Syntax {
        /// Where the parser stopped.
        at: Place,
        /// The parser's explanation.
        message: String,
    },
    /// A value out of range or inconsistent with another.
    #[error(transparent)]
    Invalid(Box<InvalidKey>),
    /// `--origin` is not an absolute http(s) URL.
    #[error(transparent)]
    Origin(#[from] InvalidOrigin),
}

/// A value out of range or inconsistent with another, at its key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {}{key}: {why}", at.as_ref().map(|at| format!("{at}: ")).unwrap_or_default())]
pub struct InvalidKey {
    /// Where the key is written, when it is in a file.
    pub at: Option<Place>,
    /// The key path, as `section[index].field`.
    pub key: String,
    /// What is wrong with it.
    pub why: Problem,
    /// The lower-layer error behind it, if any.
    #[source]
    pub source: Option<Cause>,
}

/// An origin URL that is not an absolute http(s) URL.
#[derive(Debug, thiserror::Error)]
#[error("invalid origin URL '{value}': {why}")]
pub struct InvalidOrigin {
    /// What the user gave.
    pub value: String,
    /// Why it was refused.
    pub why: String,
    /// The URL parser's error, when it could not read it at all.
    #[source]
    pub source: Option<http::uri::InvalidUri>,
}

/// What is wrong with a key's value.
#[derive(Debug)]
pub enum Problem {
    /// Said in words.
    Text(String),
    /// An origin URL that cannot be used.
    Origin(InvalidOrigin),
    /// A size that cannot be used.
    Size(SizeError),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Text(text) => f.write_str(text),
            Problem::Origin(origin) => write!(f, "{origin}"),
            Problem::Size(size) => write!(f, "{size}"),
        }
    }
}

impl From<String> for Problem {
    fn from(text: String) -> Self {
        Problem::Text(text)
    }
}

impl From<&str> for Problem {
    fn from(text: &str) -> Self {
        Problem::Text(text.to_owned())
    }
}

impl From<SizeError> for Problem {
    fn from(size: SizeError) -> Self {
        Problem::Size(size)
    }
}

impl From<InvalidOrigin> for Problem {
    fn from(origin: InvalidOrigin) -> Self {
        Problem::Origin(origin)
    }
}

impl ConfigError {
    /// A problem with the value at `key`.
    pub fn invalid(key: impl Into<String>, why: impl Into<Problem>) -> Self {
        ConfigError::Invalid(Box::new(InvalidKey {
            at: None,
            key: key.into(),
            why: why.into(),
            source: None,
        }))
    }

    /// A problem with the value at `key`, caused by `source`.
    pub fn invalid_because(
        key: impl Into<String>,
        why: impl Into<String>,
        source: impl Into<Cause>,
    ) -> Self {
        ConfigError::Invalid(Box::new(InvalidKey {
            at: None,
            key: key.into(),
            why: Problem::Text(why.into()),
            source: Some(source.into()),
        }))
    }

    /// The key path the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid(invalid) => Some(&invalid.key),
            ConfigError::Unreadable { .. }
            | ConfigError::Syntax { .. }
            | ConfigError::Origin(_) => None,
        }
    }

    /// Places a key error in its file.
    pub(super) fn placed(self, place: impl FnOnce(&str) -> Place) -> Self {
        match self {
            ConfigError::Invalid(mut invalid) => {
                if invalid.at.is_none() {
                    invalid.at = Some(place(&invalid.key));
                }
                ConfigError::Invalid(invalid)
            }
            other => other,
        }
    }
}

/// A byte size that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// Not a number of bytes, with or without a unit.
    #[error("'{text}' is not a size like 8MiB: {why}")]
    NotASize {
        /// What was given.
        text: String,
        /// The size parser's explanation (it gives only text).
        why: String,
    },
    /// Zero bytes.
    #[error("size must be greater than 0")]
    Zero,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_error_names_its_place_and_key() {
        let err = ConfigError::invalid("routes[0].ttl", "too long").placed(|_| Place {
            file: "proxy.toml".into(),
            position: Some((7, 1)),
        });
        assert_eq!(
            err.to_string(),
            "invalid configuration: proxy.toml:7:1: routes[0].ttl: too long"
        );
        assert_eq!(err.key(), Some("routes[0].ttl"));
        let flags = ConfigError::invalid("cache.max_size", "must be greater than 0");
        assert_eq!(
            flags.to_string(),
            "invalid configuration: cache.max_size: must be greater than 0"
        );
    }
}
