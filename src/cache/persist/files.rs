//! The snapshot's files: atomic writes (a temp file in the same directory,
//! mode 0600, fsynced, renamed over the old one), the temp files a killed
//! process left behind, and moving a bad snapshot aside.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::clock::unix_millis;

/// What temp file names start with after the snapshot's own name.
const TEMP_INFIX: &str = ".tmp-";

/// Writes `bytes` to `path` atomically: a temp file in the same directory,
/// mode 0600, fsynced, renamed over `path`, then the directory fsynced.
/// On any failure the temp file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |writer| writer.write_all(bytes))
}

/// Like [`write_atomic`], with the content produced by `write`.
pub fn write_atomic_with<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<T>,
) -> io::Result<T> {
    let tmp = temp_path(path, std::process::id());
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let file = options.open(&tmp)?;
        let mut writer = BufWriter::with_capacity(1 << 16, file);
        let produced = write(&mut writer)?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(produced)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `<file>.tmp-<pid>`: the temp file process `pid` writes `path` through.
fn temp_path(path: &Path, pid: u32) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!("{TEMP_INFIX}{pid}"));
    path.with_file_name(name)
}

/// Removes the temp files of `path` that processes no longer running left
/// (a `kill -9` during a write); returns how many. Those of a live process
/// (another instance on the same file) are left alone.
pub fn remove_stale_temps(path: &Path) -> usize {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir,
        None => Path::new("."),
    };
    let mut prefix: OsString = path.file_name().unwrap_or_default().to_os_string();
    prefix.push(TEMP_INFIX);
    let Some(prefix) = prefix.to_str().map(str::to_owned) else {
        return 0;
    };
    let Ok(listing) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for item in listing.flatten() {
        let name = item.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && is_running(pid) {
            continue;
        }
        match fs::remove_file(item.path()) {
            Ok(()) => removed += 1,
            Err(err) => tracing::warn!(
                path = %item.path().display(), error = %err,
                "cannot remove a temp file an earlier process left"
            ),
        }
    }
    removed
}

/// Whether a process with this id runs (signal 0 asks without sending).
fn is_running(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Some(pid) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return false;
        };
        // EPERM: it runs, as another user.
        !matches!(
            rustix::process::test_kill_process(pid),
            Err(rustix::io::Errno::SRCH)
        )
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Renames a snapshot that cannot be used to `<file>.corrupt-<unix
/// seconds>` (a directory too; `-2`, `-3` ... if that name is taken), so
/// that the next write does not fail on it and nothing is lost; returns
/// where it went.
pub fn move_aside(path: &Path, now: SystemTime) -> io::Result<PathBuf> {
    let seconds = unix_millis(now) / 1000;
    for attempt in 1..=100 {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".corrupt-{seconds}"));
        if attempt > 1 {
            name.push(format!("-{attempt}"));
        }
        let aside = path.with_file_name(name);
        if fs::symlink_metadata(&aside).is_ok() {
            continue;
        }
        fs::rename(path, &aside)?;
        return Ok(aside);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "a hundred set-aside snapshots of this second already exist",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn written_atomically_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        write_atomic(&path, b"{}").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        write_atomic(&path, b"old").unwrap();
        let failed = write_atomic_with(&path, |w| {
            w.write_all(b"half")?;
            Err::<(), _>(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn only_the_temp_files_of_dead_processes_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let dead = temp_path(&path, u32::MAX - 1);
        let alive = temp_path(&path, 1); // init runs
        let other = dir.path().join("other.json.tmp-12");
        for file in [&dead, &alive, &other] {
            fs::write(file, b"x").unwrap();
        }
        assert_eq!(remove_stale_temps(&path), 1);
        assert!(!dead.exists());
        assert!(alive.exists() && other.exists());
    }
}
