//! Why the proxy could not start, and the exit code each reason gives: 2
//! for a configuration that cannot be used (as for a usage error), 1 for
//! everything else.

use crate::accept::BindError;
use crate::config::ConfigError;
use crate::reload::WatchError;
use crate::runtime::BuildError;

/// A failure before the proxy serves (or while it stops).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Its origins cannot be set up.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A listener (or the admin API) cannot be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The config file's directory cannot be watched.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// The shared tier's client cannot be made (its URL was validated; a
    /// TLS setup may still fail).
    #[error("cache.shared: the Redis client cannot be set up")]
    SharedTier(#[source] redis::RedisError),
    /// Work on a blocking thread did not finish (a bug).
    #[error("a start-up task failed")]
    Task(#[from] tokio::task::JoinError),
}

impl StartupError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Config(_) | StartupError::Build(_) | StartupError::SharedTier(_) => 2,
            StartupError::Bind(_) | StartupError::Watch(_) | StartupError::Task(_) => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configuration_exits_2_and_a_taken_port_1() {
        let config = StartupError::from(ConfigError::invalid("cache.ttl", "too long"));
        assert_eq!(config.exit_code(), 2);
        let addr = "127.0.0.1:80".parse().unwrap();
        let taken = StartupError::from(BindError::new(
            addr,
            std::io::Error::from(std::io::ErrorKind::AddrInUse),
        ));
        assert_eq!(taken.exit_code(), 1);
        assert_eq!(taken.to_string(), "port 80 is already in use");
    }
}
