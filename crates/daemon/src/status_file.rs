//! Status files: how pulse and lvsd publish their state for an unprivileged reader (piranha-gui).
//!
//! A daemon's status file is `$PIRANHA_STATUS_DIR/NAME` (default `/run/piranha/NAME`; an empty
//! `PIRANHA_STATUS_DIR` turns publishing off), written atomically (a temporary file in the same
//! directory, then rename), mode 0640, group `PIRANHA_STATUS_GROUP` (default `piranha`) when that
//! group exists; the directory is created 0750 with the same group when it is missing.
//! Publishing never stops or fails a daemon: a failed write is logged once as a warning, and once
//! more when writing works again.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Environment variable naming the status directory (empty: no status files).
pub const ENV_DIR: &str = "PIRANHA_STATUS_DIR";
/// Environment variable: the group that may read the status files.
pub const ENV_GROUP: &str = "PIRANHA_STATUS_GROUP";
/// Default status directory.
pub const DEFAULT_DIR: &str = "/run/piranha";
/// Default reader group.
pub const DEFAULT_GROUP: &str = "piranha";

/// One daemon's status file.
#[derive(Debug)]
pub struct StatusFile {
    path: Option<PathBuf>,
    gid: Option<u32>,
    failing: bool,
}

impl StatusFile {
    /// `NAME` in the status directory and the reader group the environment names.
    pub fn from_env(file_name: &str) -> StatusFile {
        let dir = match std::env::var_os(ENV_DIR) {
            Some(d) if d.is_empty() => None,
            Some(d) => Some(PathBuf::from(d)),
            None => Some(PathBuf::from(DEFAULT_DIR)),
        };
        let group = std::env::var(ENV_GROUP).unwrap_or_else(|_| DEFAULT_GROUP.into());
        StatusFile::new(dir.map(|d| d.join(file_name)), group_id(&group))
    }

    /// A status file at `path` (`None`: publishing off), group `gid` when given.
    pub fn new(path: Option<PathBuf>, gid: Option<u32>) -> StatusFile {
        StatusFile {
            path,
            gid,
            failing: false,
        }
    }

    /// No status file.
    pub fn off() -> StatusFile {
        StatusFile::new(None, None)
    }

    pub fn is_on(&self) -> bool {
        self.path.is_some()
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Replaces the file's contents with `text` (nothing when off). A failure is logged, once.
    pub fn write(&mut self, text: &str) {
        self.write_bytes(text.as_bytes())
    }

    /// [`StatusFile::write`] for bytes.
    pub fn write_bytes(&mut self, text: &[u8]) {
        let Some(path) = self.path.as_deref() else {
            return;
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        match ensure_dir(dir, self.gid).and_then(|_| write_atomic(path, text, self.gid)) {
            Ok(()) => {
                if self.failing {
                    log::info!("status file {} written again", path.display());
                    self.failing = false;
                }
            }
            Err(e) => {
                if !self.failing {
                    log::warn!(
                        "cannot write the status file {}: {e} (set {ENV_DIR}; empty turns it off)",
                        path.display()
                    );
                    self.failing = true;
                }
            }
        }
    }
}

/// Writes `text` to `path` atomically (temporary file in the same directory, then rename), mode
/// 0640, group `gid` when given. The temporary file is removed when anything fails.
pub fn write_atomic(path: &Path, text: &[u8], gid: Option<u32>) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o640))?;
        if let Some(g) = gid {
            let _ = std::os::unix::fs::fchown(&f, None, Some(g));
        }
        f.write_all(text)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates the status directory if it is missing (mode 0750, group `gid`).
pub fn ensure_dir(dir: &Path, gid: Option<u32>) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
    if let Some(g) = gid {
        let _ = std::os::unix::fs::chown(dir, None, Some(g));
    }
    Ok(())
}

/// The gid of a group by name.
pub fn group_id(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: getgrnam with a valid C string; the result is read at once (the daemons call this
    // from their one thread, at start).
    let g = unsafe { libc::getgrnam(c.as_ptr()) };
    if g.is_null() {
        None
    } else {
        // SAFETY: non-null result of getgrnam.
        Some(unsafe { (*g).gr_gid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_group_readable_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("st");
        ensure_dir(&sub, None).unwrap();
        let mode = std::fs::metadata(&sub).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
        let p = sub.join("x.json");
        write_atomic(&p, b"{\"a\":1}\n", None).unwrap();
        write_atomic(&p, b"{\"a\":2}\n", None).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"a\":2}\n");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 1);
    }

    #[test]
    fn status_file_creates_its_directory_and_survives_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a").join("b.json");
        let mut f = StatusFile::new(Some(path.clone()), None);
        assert!(f.is_on());
        f.write("one\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\n");
        // A directory where the file should be: the write fails, nothing panics, the next
        // write after the obstacle is gone works again.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        f.write("two\n");
        assert!(f.failing);
        std::fs::remove_dir(&path).unwrap();
        f.write("three\n");
        assert!(!f.failing);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        let mut off = StatusFile::off();
        off.write("nothing");
        assert!(!off.is_on() && off.path().is_none());
    }
}
