//! lvs.cf on disk: reads, and serialised read-modify-write saves (an in-process mutex plus an
//! exclusive `flock` on `.NAME.lock` beside the file, so two GUIs or a GUI and a script using the
//! same lock never interleave). Every save re-reads the file under the lock, checks the serial
//! number the client edited, applies the change, validates, bumps `serial_no`, checks that the
//! new text parses back to the same config, and writes it atomically keeping `lvs.cf.bak`.

use crate::edit::FieldError;
use lvs_config::{Config, Diagnostic, LoadError, Resolver};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The config as read from disk.
#[derive(Debug, Clone)]
pub struct Current {
    pub config: Config,
    pub diagnostics: Vec<Diagnostic>,
    /// The file does not exist yet (a default config is shown).
    pub missing: bool,
}

/// Why a read failed.
#[derive(Debug, Clone)]
pub enum ReadError {
    /// The file exists but cannot be read.
    Io(String),
    /// Piranha's parser rejects the file (it must be fixed by hand).
    Syntax(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(s) | ReadError::Syntax(s) => f.write_str(s),
        }
    }
}

/// Why a save did not happen. Nothing was written in any case.
#[derive(Debug, Clone)]
pub enum SaveError {
    /// The file on disk cannot be used.
    Read(ReadError),
    /// The client edited another revision (`expected`, on disk `actual`).
    Conflict { expected: i64, actual: i64 },
    /// Values rejected: beside their fields, elsewhere in the config, warnings.
    Invalid {
        fields: Vec<FieldError>,
        general: Vec<String>,
        warnings: Vec<String>,
    },
    /// Writing failed.
    Write(String),
}

/// A successful save.
#[derive(Debug, Clone)]
pub struct Saved<T> {
    pub value: T,
    pub serial_no: i64,
    pub warnings: Vec<String>,
}

pub struct Store {
    path: PathBuf,
    lock_path: PathBuf,
    mutex: Mutex<()>,
    resolver: Box<dyn Resolver + Send + Sync>,
}

impl Store {
    pub fn new(path: PathBuf, resolver: Box<dyn Resolver + Send + Sync>) -> Store {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "lvs.cf".into());
        Store {
            lock_path: dir.join(format!(".{name}.lock")),
            path,
            mutex: Mutex::new(()),
            resolver,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn resolver(&self) -> &dyn Resolver {
        &*self.resolver
    }

    /// Reads and validates the file (a missing file is an empty default config).
    pub fn read(&self) -> Result<Current, ReadError> {
        match lvs_config::load(&self.path, &*self.resolver) {
            Ok(l) => Ok(Current {
                config: l.config,
                diagnostics: l.diagnostics,
                missing: false,
            }),
            Err(LoadError::Open(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(Current {
                config: Config::default(),
                diagnostics: Vec::new(),
                missing: true,
            }),
            Err(LoadError::Open(e)) => Err(ReadError::Io(format!(
                "cannot read {}: {e}",
                self.path.display()
            ))),
            Err(LoadError::Syntax(e)) => Err(ReadError::Syntax(format!(
                "{} cannot be parsed (line {}: {}); fix it by hand, the GUI will not overwrite it",
                self.path.display(),
                e.line,
                e.code.text()
            ))),
        }
    }

    /// The raw text of the file (empty if missing).
    pub fn text(&self) -> Result<String, ReadError> {
        match std::fs::read(&self.path) {
            Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(ReadError::Io(format!(
                "cannot read {}: {e}",
                self.path.display()
            ))),
        }
    }

    fn flock(&self) -> Result<std::fs::File, SaveError> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o660)
            .open(&self.lock_path)
            .map_err(|e| {
                SaveError::Write(format!(
                    "cannot open the lock file {}: {e} (the directory of {} must be writable \
                     by the GUI's group)",
                    self.lock_path.display(),
                    self.path.display()
                ))
            })?;
        loop {
            // SAFETY: flock on an open descriptor.
            let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                return Ok(f);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(SaveError::Write(format!(
                    "cannot lock {}: {e}",
                    self.lock_path.display()
                )));
            }
        }
    }

    /// Validates a config without writing: (errors, warnings).
    pub fn check(&self, config: &Config) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
        let diags = lvs_config::validate(config, None);
        diags.into_iter().partition(crate::edit::blocks_save)
    }

    /// Read-modify-write under the lock. `change` edits a copy of the config and returns a value
    /// and the diagnostics mapper's view: on `Err` nothing is written.
    pub fn modify<T>(
        &self,
        expected_serial: Option<i64>,
        change: impl FnOnce(&mut Config, &dyn Resolver) -> Result<T, Vec<FieldError>>,
        map_errors: impl FnOnce(
            &Config,
            &T,
            &[Diagnostic],
        ) -> (Vec<FieldError>, Vec<String>, Vec<String>),
    ) -> Result<Saved<T>, SaveError> {
        let _guard = self
            .mutex
            .lock()
            .map_err(|_| SaveError::Write("lock poisoned".into()))?;
        let _file_lock = self.flock()?;
        let current = self.read().map_err(SaveError::Read)?;
        let on_disk = current.config.serial_no;
        if let Some(expected) = expected_serial {
            if expected != on_disk {
                return Err(SaveError::Conflict {
                    expected,
                    actual: on_disk,
                });
            }
        }
        let mut config = current.config.clone();
        let value = change(&mut config, &*self.resolver).map_err(|fields| SaveError::Invalid {
            fields,
            general: Vec::new(),
            warnings: Vec::new(),
        })?;
        let diags = lvs_config::validate(&config, None);
        let (fields, general, warnings) = map_errors(&config, &value, &diags);
        if !fields.is_empty() || !general.is_empty() {
            return Err(SaveError::Invalid {
                fields,
                general,
                warnings,
            });
        }
        config.serial_no = on_disk.saturating_add(1);
        let text = lvs_config::to_string(&config).map_err(|e| SaveError::Invalid {
            fields: Vec::new(),
            general: vec![e.to_string()],
            warnings: warnings.clone(),
        })?;
        // The text must read back as the same config before it replaces the file.
        match lvs_config::load_bytes(text.as_bytes(), &*self.resolver) {
            Ok(back) if back.config == config => {}
            Ok(_) => {
                return Err(SaveError::Write(
                    "internal error: the new file would not read back as edited; nothing written"
                        .into(),
                ))
            }
            Err(e) => {
                return Err(SaveError::Write(format!(
                    "internal error: the new file would not parse ({e}); nothing written"
                )))
            }
        }
        lvs_config::writer::save_text(&self.path, &text)
            .map_err(|e| SaveError::Write(format!("cannot write {}: {e}", self.path.display())))?;
        log::info!(
            "{} saved, serial_no {}",
            self.path.display(),
            config.serial_no
        );
        Ok(Saved {
            value,
            serial_no: config.serial_no,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_config::StaticResolver;

    fn store(dir: &Path) -> Store {
        Store::new(dir.join("lvs.cf"), Box::new(StaticResolver::standard()))
    }

    fn no_errors<T>(
        c: &Config,
        _: &T,
        d: &[Diagnostic],
    ) -> (Vec<FieldError>, Vec<String>, Vec<String>) {
        let (general, warnings) = crate::edit::describe_all(c, d);
        (Vec::new(), general, warnings)
    }

    #[test]
    fn save_bumps_serial_keeps_backup_and_checks_revision() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        assert!(s.read().unwrap().missing);
        let saved = s
            .modify(
                Some(0),
                |c, _| {
                    c.primary = Some("192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap().into());
                    Ok(())
                },
                no_errors,
            )
            .unwrap();
        assert_eq!(saved.serial_no, 1);
        let saved = s
            .modify(
                Some(1),
                |c, _| {
                    c.keepalive = std::time::Duration::from_secs(6);
                    Ok(())
                },
                no_errors,
            )
            .unwrap();
        assert_eq!(saved.serial_no, 2);
        let bak = std::fs::read_to_string(dir.path().join("lvs.cf.bak")).unwrap();
        assert!(bak.contains("serial_no = 1"), "{bak}");
        let now = s.read().unwrap();
        assert_eq!(now.config.serial_no, 2);
        assert_eq!(now.config.keepalive.as_secs(), 6);
        match s.modify(Some(1), |_, _| Ok(()), no_errors) {
            Err(SaveError::Conflict {
                expected: 1,
                actual: 2,
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_change_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.modify(None, |_, _| Ok(()), no_errors).unwrap();
        let before = std::fs::read(dir.path().join("lvs.cf")).unwrap();
        let r = s.modify(
            None,
            |c, _| {
                let mut vs = lvs_config::VirtualServer::new("x");
                vs.active = true; // no address: an error
                c.virtual_servers.push(std::sync::Arc::new(vs));
                Ok(())
            },
            no_errors,
        );
        assert!(matches!(r, Err(SaveError::Invalid { .. })), "{r:?}");
        let r = s.modify(
            None,
            |_, _| Err::<(), _>(vec![FieldError::new("port", "bad")]),
            no_errors,
        );
        assert!(matches!(r, Err(SaveError::Invalid { .. })));
        assert_eq!(std::fs::read(dir.path().join("lvs.cf")).unwrap(), before);
    }

    #[test]
    fn concurrent_saves_are_serialised() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(store(dir.path()));
        let mut threads = Vec::new();
        for i in 0..8u32 {
            let s = s.clone();
            threads.push(std::thread::spawn(move || {
                s.modify(
                    None,
                    move |c, _| {
                        c.tcp_timeout = 100 + i;
                        Ok(())
                    },
                    no_errors,
                )
                .unwrap();
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.read().unwrap().config.serial_no, 8);
    }

    #[test]
    fn unparsable_file_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        std::fs::write(dir.path().join("lvs.cf"), "port=80\n").unwrap();
        assert!(matches!(s.read(), Err(ReadError::Syntax(_))));
        let r = s.modify(None, |_, _| Ok(()), no_errors);
        assert!(matches!(r, Err(SaveError::Read(_))));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("lvs.cf")).unwrap(),
            "port=80\n"
        );
    }
}
