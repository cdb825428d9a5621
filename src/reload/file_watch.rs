//! Watches the config file's directory (editors and Kubernetes ConfigMaps
//! replace files by rename or symlink swap) and reloads when the file's
//! content changed.
//!
//! Only events that concern the config file wake the watcher: its own
//! name, a directory entry its symlink chain passes through (a ConfigMap's
//! `..data`), or a lost event queue. The cache snapshot, a log file or
//! anything else written beside it neither triggers nor delays a reload.
//! Wake-ups are debounced (an editor's write, rename and chmod are one
//! change), but never for longer than [`MAX_DELAY`] after the first one,
//! so an edit applies within a second however often the file is touched.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ReloadError;
use super::Reloader;

/// Quiet time after the last event before the file is read.
const QUIET: Duration = Duration::from_millis(150);
/// The longest a change waits for quiet, counted from its first event.
pub const MAX_DELAY: Duration = Duration::from_millis(500);
/// Symlinks followed when finding the entries a config path depends on.
const MAX_LINKS: usize = 8;
/// The entry a Kubernetes ConfigMap volume swaps atomically.
const CONFIGMAP_DATA: &str = "..data";

/// The directory entries whose change may change the config file's content.
type Relevant = Arc<Mutex<HashSet<OsString>>>;

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
    let relevant: Relevant = Arc::new(Mutex::new(entries_concerning(&path, &dir)));
    let (wake, mut woken) = mpsc::channel::<()>(1);
    let filter = relevant.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let concerns = match &event {
            Ok(event) => concerns_config(event, &filter),
            // An error may mean lost events: look at the file.
            Err(_) => true,
        };
        if concerns {
            // A full channel already holds a wake-up: nothing is lost.
            let _ = wake.try_send(());
        }
    })
    .map_err(|source| WatchError {
        path: path.clone(),
        source,
    })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| WatchError {
            path: dir.clone(),
            source,
        })?;
    let mut last = std::fs::read(&path).ok().map(|b| content_hash(&b));
    Ok(tokio::spawn(async move {
        // The watcher stops when dropped: keep it for the task's lifetime.
        let _watcher = watcher;
        let mut missing = false;
        loop {
            tokio::select! {
                got = woken.recv() => if got.is_none() { return },
                () = cancel.cancelled() => return,
            }
            let first = Instant::now();
            loop {
                let until = (Instant::now() + QUIET).min(first + MAX_DELAY);
                tokio::select! {
                    () = tokio::time::sleep_until(until) => break,
                    got = woken.recv() => if got.is_none() { return },
                    () = cancel.cancelled() => return,
                }
                if first.elapsed() >= MAX_DELAY {
                    break;
                }
            }
            // A swapped symlink may now point through other entries.
            let entries = entries_concerning(&path, &dir);
            *relevant.lock().unwrap_or_else(PoisonError::into_inner) = entries;
            let bytes = match tokio::fs::read(&path).await {
                Ok(bytes) => bytes,
                Err(source) => {
                    if !missing {
                        missing = true;
                        let unreadable = ReloadError::Unreadable {
                            path: path.clone(),
                            source,
                        };
                        let _ = reloader.refuse("file changed", unreadable);
                    }
                    continue;
                }
            };
            missing = false;
            let hash = content_hash(&bytes);
            if last == Some(hash) {
                continue;
            }
            last = Some(hash);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let _ = reloader.reload_text("file changed", text).await;
        }
    }))
}

/// The config file's directory cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}", path.display())]
pub struct WatchError {
    /// The file or directory.
    pub path: PathBuf,
    /// What notify said.
    #[source]
    pub source: notify::Error,
}

/// Whether a watcher event may have changed the config file.
fn concerns_config(event: &notify::Event, relevant: &Relevant) -> bool {
    if event.need_rescan() {
        return true;
    }
    if matches!(event.kind, EventKind::Access(_)) {
        return false;
    }
    let names = relevant.lock().unwrap_or_else(PoisonError::into_inner);
    event
        .paths
        .iter()
        .filter_map(|p| p.file_name())
        .any(|name| names.contains(name))
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

    fn event(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_the_config_file_and_its_links_concern_it() {
        let relevant: Relevant = Arc::new(Mutex::new(entries_concerning(
            Path::new("/etc/cp/proxy.toml"),
            Path::new("/etc/cp"),
        )));
        let modify = EventKind::Modify(notify::event::ModifyKind::Any);
        assert!(concerns_config(
            &event(modify, "/etc/cp/proxy.toml"),
            &relevant
        ));
        assert!(concerns_config(&event(modify, "/etc/cp/..data"), &relevant));
        for other in ["/etc/cp/cache.json", "/etc/cp/proxy.log", "/etc/cp/x.toml"] {
            assert!(
                !concerns_config(&event(modify, other), &relevant),
                "{other}"
            );
        }
        let open = EventKind::Access(notify::event::AccessKind::Any);
        assert!(!concerns_config(
            &event(open, "/etc/cp/proxy.toml"),
            &relevant
        ));
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
}
