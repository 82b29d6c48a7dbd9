//! Daemonizing and pid files.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Detaches from the terminal: `fork` (parent exits 0) unless `nofork`, then `setsid`, `chdir /`,
/// stdin/stdout/stderr on /dev/null, umask 022. With `nofork` (Piranha's `--nofork`, used when a
/// supervisor wants the pid it started) the process only disassociates; `setsid` failing because
/// it already leads a group is not an error.
///
/// Call before any thread is started.
pub fn daemonize(nofork: bool) -> io::Result<()> {
    if !nofork {
        // SAFETY: single-threaded at this point (documented precondition); the parent only exits.
        match unsafe { libc::fork() } {
            -1 => return Err(io::Error::last_os_error()),
            0 => {}
            _ => unsafe { libc::_exit(0) },
        }
    }
    // SAFETY: plain syscalls.
    unsafe {
        libc::setsid();
        libc::umask(0o022);
    }
    std::env::set_current_dir("/")?;
    let null = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    use std::os::fd::AsRawFd;
    for fd in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A pid file, written atomically (temp file + rename) and removed on drop.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

impl PidFile {
    /// Writes this process's pid to `path`. Refuses when the file names a live process other than
    /// this one (another instance is running); a stale file is replaced.
    pub fn create(path: &Path) -> io::Result<PidFile> {
        let pid = std::process::id();
        if let Some(other) = read_pid(path) {
            if other != pid && process_alive(other) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} names running process {other}", path.display()),
                ));
            }
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.{pid}.tmp",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        {
            let mut f = fs::File::create(&tmp)?;
            writeln!(f, "{pid}")?;
            f.sync_all()?;
        }
        if let Err(e) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(PidFile {
            path: path.to_path_buf(),
            pid,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own file: a forked child dropping its copy must not remove it.
        if std::process::id() == self.pid && read_pid(&self.path) == Some(self.pid) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The pid in a pid file, if it holds one.
pub fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// True if a process with this pid exists (signal 0).
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_written_refused_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lvs.pid");
        let pf = PidFile::create(&path).unwrap();
        assert_eq!(read_pid(&path), Some(std::process::id()));
        // Our own pid in the file is not "another instance".
        drop(PidFile::create(&path).unwrap());
        assert!(!path.exists());
        drop(pf); // the file is already gone: no panic, nothing removed
                  // A live foreign pid (pid 1 always exists) is refused.
        fs::write(&path, "1\n").unwrap();
        let err = PidFile::create(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        // A stale pid is replaced.
        fs::write(&path, "999999999\n").unwrap();
        let pf = PidFile::create(&path).unwrap();
        assert_eq!(read_pid(&path), Some(std::process::id()));
        drop(pf);
        assert!(!path.exists());
    }
}
