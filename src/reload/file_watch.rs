//! Watches the config file's directory (editors and Kubernetes ConfigMaps
//! replace files by rename or symlink swap) and reloads when the file's
//! content changed.
//!
//! Only events that concern the config file wake the watcher: its own
//! name, a directory entry its symlink chain passes through (a ConfigMap's
//! `..data`), or a lost event queue. On Linux the directory is watched with
//! inotify for entries created, removed, renamed or closed after writing,
//! and nothing else: a log file or the cache snapshot written beside the
//! config (each `write` an `IN_MODIFY`, each open an `IN_OPEN`) costs the
//! writer no wake-up of this process. Where inotify is not available (other
//! systems, or the per-user inotify limit reached) the file is read every
//! [`POLL_EVERY`]. Wake-ups are debounced (an editor's write, rename and
//! chmod are one change), but never for longer than [`MAX_DELAY`] after
//! the first one, so an edit applies within a second however often the
//! file is touched.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ReloadError;
use super::Reloader;

/// Quiet time after the last event before the file is read.
const QUIET: Duration = Duration::from_millis(150);
/// The longest a change waits for quiet, counted from its first event.
pub const MAX_DELAY: Duration = Duration::from_millis(500);
/// How often the file is read when it cannot be watched.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// Symlinks followed when finding the entries a config path depends on.
const MAX_LINKS: usize = 8;
/// The entry a Kubernetes ConfigMap volume swaps atomically.
const CONFIGMAP_DATA: &str = "..data";

/// Watches the directory of `path` and reloads when the file's content
/// changes, until `cancel` fires.
pub fn watch_file(
    reloader: Arc<Reloader>,
    path: PathBuf,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, WatchError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    if !dir.is_dir() {
        return Err(WatchError {
            path: dir,
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    let changes = match DirEvents::watch(&dir) {
        Ok(events) => Changes::Events(events),
        Err(err) => {
            tracing::warn!(
                dir = %dir.display(),
                error = %err,
                every_ms = POLL_EVERY.as_millis() as u64,
                "cannot watch the config directory (inotify limit?): reading the file periodically instead"
            );
            Changes::Polling(tokio::time::interval(POLL_EVERY))
        }
    };
    let watch = FileWatch {
        reloader,
        last: std::fs::read(&path).ok().map(|b| content_hash(&b)),
        relevant: entries_concerning(&path, &dir),
        path,
        dir,
        missing: false,
    };
    Ok(tokio::spawn(watch.run(changes, cancel)))
}

/// Where the wake-ups come from.
enum Changes {
    /// Directory events (Linux).
    Events(DirEvents),
    /// A timer: the file is read at every tick.
    Polling(tokio::time::Interval),
}

impl Changes {
    /// Waits for the next wake-up that may concern `relevant`; `false`
    /// when no more will come.
    async fn next(&mut self, relevant: &HashSet<OsString>) -> bool {
        match self {
            Changes::Events(events) => events.next_concerning(relevant).await,
            Changes::Polling(interval) => {
                interval.tick().await;
                true
            }
        }
    }
}

/// The watching task's state.
struct FileWatch {
    reloader: Arc<Reloader>,
    path: PathBuf,
    dir: PathBuf,
    /// The directory entries whose change may change the file's content.
    relevant: HashSet<OsString>,
    /// The content last applied (or found at start).
    last: Option<u64>,
    /// The file was missing at the last look (said once).
    missing: bool,
}

impl FileWatch {
    async fn run(mut self, mut changes: Changes, cancel: CancellationToken) {
        let debounced = matches!(changes, Changes::Events(_));
        loop {
            tokio::select! {
                more = changes.next(&self.relevant) => if !more { return },
                () = cancel.cancelled() => return,
            }
            if debounced {
                let first = Instant::now();
                loop {
                    let until = (Instant::now() + QUIET).min(first + MAX_DELAY);
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => break,
                        more = changes.next(&self.relevant) => if !more { return },
                        () = cancel.cancelled() => return,
                    }
                    if first.elapsed() >= MAX_DELAY {
                        break;
                    }
                }
            }
            self.look().await;
        }
    }

    /// Reads the file and reloads if its content changed.
    async fn look(&mut self) {
        // A swapped symlink may now point through other entries.
        self.relevant = entries_concerning(&self.path, &self.dir);
        let bytes = match tokio::fs::read(&self.path).await {
            Ok(bytes) => bytes,
            Err(source) => {
                if !self.missing {
                    self.missing = true;
                    let unreadable = ReloadError::Unreadable {
                        path: self.path.clone(),
                        source,
                    };
                    let _ = self.reloader.refuse("file changed", unreadable);
                }
                return;
            }
        };
        self.missing = false;
        let hash = content_hash(&bytes);
        if self.last == Some(hash) {
            return;
        }
        self.last = Some(hash);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let _ = self.reloader.reload_text("file changed", text).await;
    }
}

/// The config file's directory cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}", path.display())]
pub struct WatchError {
    /// The file or directory.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// The events of one directory: entries created, removed, renamed, closed
/// after writing, or the queue overflowing.
#[cfg(target_os = "linux")]
struct DirEvents(inotify::EventStream<Vec<u8>>);

#[cfg(target_os = "linux")]
impl DirEvents {
    /// What replaces, removes or rewrites an entry: never an open, a read
    /// or a single write.
    const MASK: inotify::WatchMask = inotify::WatchMask::CREATE
        .union(inotify::WatchMask::DELETE)
        .union(inotify::WatchMask::CLOSE_WRITE)
        .union(inotify::WatchMask::MOVED_FROM)
        .union(inotify::WatchMask::MOVED_TO);

    fn watch(dir: &Path) -> std::io::Result<Self> {
        let inotify = inotify::Inotify::init()?;
        inotify.watches().add(dir, Self::MASK)?;
        Ok(DirEvents(inotify.into_event_stream(vec![0; 4096])?))
    }

    async fn next_concerning(&mut self, relevant: &HashSet<OsString>) -> bool {
        use futures_util::StreamExt;
        loop {
            match self.0.next().await {
                None => return false,
                // A read error may mean lost events: look at the file.
                Some(Err(_)) => return true,
                Some(Ok(event)) => {
                    let overflow = event.mask.contains(inotify::EventMask::Q_OVERFLOW);
                    if concerns_config(overflow, event.name.as_deref(), relevant) {
                        return true;
                    }
                }
            }
        }
    }
}

/// Elsewhere the file is polled.
#[cfg(not(target_os = "linux"))]
struct DirEvents;

#[cfg(not(target_os = "linux"))]
impl DirEvents {
    fn watch(_dir: &Path) -> std::io::Result<Self> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    async fn next_concerning(&mut self, _relevant: &HashSet<OsString>) -> bool {
        false
    }
}

/// Whether an event (a lost queue, or one about the entry `name`) may
/// have changed the config file.
fn concerns_config(overflow: bool, name: Option<&OsStr>, relevant: &HashSet<OsString>) -> bool {
    overflow || name.is_some_and(|name| relevant.contains(name))
}

/// The names in `dir` whose change can change what `path` reads: its own,
/// `..data`, and the first entry under `dir` of each symlink it resolves
/// through.
fn entries_concerning(path: &Path, dir: &Path) -> HashSet<OsString> {
    let mut names = HashSet::from([OsString::from(CONFIGMAP_DATA)]);
    names.extend(path.file_name().map(ToOwned::to_owned));
    let mut current = path.to_owned();
    for _ in 0..MAX_LINKS {
        let Ok(target) = std::fs::read_link(&current) else {
            break;
        };
        let resolved = match current.parent() {
            Some(parent) if target.is_relative() => parent.join(&target),
            _ => target,
        };
        if let Ok(rest) = resolved.strip_prefix(dir) {
            if let Some(Component::Normal(first)) = rest.components().next() {
                names.insert(first.to_owned());
            }
        }
        current = resolved;
    }
    names
}

/// A stable hash of the file's content, to skip reloads of an unchanged file.
fn content_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_config_file_and_its_links_concern_it() {
        let relevant = entries_concerning(Path::new("/etc/cp/proxy.toml"), Path::new("/etc/cp"));
        let name = |n: &str| Some(OsString::from(n));
        assert!(concerns_config(
            false,
            name("proxy.toml").as_deref(),
            &relevant
        ));
        assert!(concerns_config(false, name("..data").as_deref(), &relevant));
        for other in ["cache.json", "proxy.log", "x.toml"] {
            assert!(
                !concerns_config(false, name(other).as_deref(), &relevant),
                "{other}"
            );
        }
        assert!(concerns_config(true, None, &relevant), "a lost queue");
        assert!(!concerns_config(false, None, &relevant));
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_config_depends_on_the_entries_it_points_through() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("v1")).unwrap();
        std::fs::write(root.join("v1/real.toml"), "").unwrap();
        symlink("v1", root.join("current")).unwrap();
        symlink("current/real.toml", root.join("proxy.toml")).unwrap();
        let names = entries_concerning(&root.join("proxy.toml"), root);
        for name in ["proxy.toml", "current", "..data"] {
            assert!(names.contains(&OsString::from(name)), "{name}: {names:?}");
        }
        assert!(!names.contains(&OsString::from("v1")));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn writes_to_other_files_beside_the_config_wake_nothing() {
        use futures_util::StreamExt;
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("proxy.toml");
        std::fs::write(&config, "a").unwrap();
        // A log file kept open and written line by line, as a server's is.
        let mut log = std::fs::File::create(dir.path().join("access.log")).unwrap();
        let inotify = inotify::Inotify::init().unwrap();
        inotify.watches().add(dir.path(), DirEvents::MASK).unwrap();
        let mut raw = inotify.into_event_stream(vec![0; 4096]).unwrap();
        for line in 0..200 {
            writeln!(log, "line {line}").unwrap();
        }
        let _ = std::fs::read(&config).unwrap();
        let woken = tokio::time::timeout(Duration::from_millis(200), raw.next()).await;
        assert!(
            woken.is_err(),
            "no event at all for opens, reads and writes"
        );

        // An editor's replace (a temp file renamed over it) concerns it.
        let relevant = entries_concerning(&config, dir.path());
        let mut events = DirEvents(raw);
        std::fs::write(dir.path().join(".proxy.toml.swp"), "b").unwrap();
        std::fs::rename(dir.path().join(".proxy.toml.swp"), &config).unwrap();
        let woken =
            tokio::time::timeout(Duration::from_secs(5), events.next_concerning(&relevant)).await;
        assert_eq!(woken, Ok(true));
        drop(log);
    }
}
