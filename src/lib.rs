//! caching-proxy: a caching HTTP reverse proxy.
//!
//! # Layout
//!
//! - [`cli`] parses flags; [`config`] reads the TOML file, applies the
//!   flags over it and validates the result once into a [`config::Config`].
//! - [`app`] binds, restores the cache snapshot and starts the tasks;
//!   `main.rs` and the integration tests both use [`app::start`].
//! - [`server`] accepts connections (HTTP/1.1, h2 and h2c) and drains
//!   them; [`accept`] is what its accept loop and the admin API's share.
//! - [`proxy`] is the request path; [`runtime`] the configuration snapshot
//!   it reads ([`router`] picks the route); [`upstream`] the origin
//!   client; [`cache`] the keys, policy, store and snapshot; [`shared`]
//!   the second tier a fleet shares through Redis; [`breaker`] skips
//!   what keeps failing.
//! - [`reload`] applies config edits live (inotify, SIGHUP).
//! - [`admin`] is the admin API (health, metrics, purge, inspection, the
//!   dashboard page) and its client; [`metrics`] holds the counters;
//!   [`dashboard`] samples them once a second for the page and for
//!   [`top`], the terminal view; [`commands`] are the binary's one-shot
//!   commands (`--clear-cache`, `cache ...`, `top`).
//! - [`error`] holds the request path's errors and their statuses; the
//!   errors that end the process are typed where they arise and mapped to
//!   exit codes by [`app::StartupError`] and [`commands::CommandError`].
//! - [`clock`] is the only reader of the system clocks (`clippy.toml`
//!   enforces it).
//!
//! # Request lifecycle
//!
//! 1. Check the request (limits, one valid `Host`), pick the route by
//!    host and path (404 if none), build the [`cache::CacheKey`].
//! 2. GET/HEAD without a body: look the key up; [`cache::reuse`] judges the
//!    stored variant: fresh is a HIT (body shared, `Age` computed; 304 or
//!    206 when the client asks), stale may be served while it revalidates,
//!    or is revalidated with a conditional request.
//! 3. A GET miss joins the key's fill ([`cache::coalesce`]): the leader
//!    fetches (conditionally when a stale entry has validators; a 304
//!    refreshes it, a failure may be answered by it), followers wait
//!    (bounded) and are then served from the cache.
//! 4. The leader's response goes through [`cache::policy::decide`]; if
//!    storable, its body streams to the client and into the store at once.
//! 5. Other methods pass through and invalidate the URL's entry on success.
//! 6. Every response gets `Via`, `X-Cache` and `Cache-Status`; metrics
//!    are counted and one access-log line is written when its body is done.

// Tests make their own times; the crate reads the clocks in clock.rs.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod accept;
pub mod admin;
pub mod app;
pub mod breaker;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod router;
pub mod runtime;
pub mod server;
pub mod shared;
pub mod streams;
pub mod telemetry;
pub mod top;
pub mod upstream;
