//! Authentication: the password file (Argon2id), sessions, CSRF tokens, login rate limits.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Default password file.
pub const DEFAULT_PASSWORD_FILE: &str = "/etc/sysconfig/ha/conf/piranha.passwd";
/// Longest password accepted (hashing cost is bounded).
pub const MAX_PASSWORD: usize = 1024;

/// `n` random bytes from the OS, hex-encoded.
pub fn random_hex(n: usize) -> Result<String, String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness from the OS: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Constant-time equality of two strings (length may leak, content does not).
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Hashes a password as an Argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
pub fn hash_password(password: &str) -> Result<String, String> {
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    if password.len() > MAX_PASSWORD {
        return Err(format!("the password is longer than {MAX_PASSWORD} bytes"));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness from the OS: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a password against a PHC string (constant time in the password).
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// Reads the password file: one Argon2 PHC string. Refuses a file others can read or write.
pub fn read_password_file(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        format!(
            "cannot read the password file {}: {e}\nset a password first: piranha-passwd \
             (or piranha-passwd --file {} for another file)",
            path.display(),
            path.display()
        )
    })?;
    if meta.permissions().mode() & 0o007 != 0 {
        return Err(format!(
            "the password file {} is accessible to others (mode {:o}); run: chmod 600 {}",
            path.display(),
            meta.permissions().mode() & 0o777,
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| {
            format!(
                "the password file {} holds no password; set one with piranha-passwd",
                path.display()
            )
        })?;
    let h = PasswordHash::new(line).map_err(|e| {
        format!(
            "the password file {} does not hold a password hash ({e}); set one with piranha-passwd",
            path.display()
        )
    })?;
    if h.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "the password file {} uses {}, not argon2id; set the password again with piranha-passwd",
            path.display(),
            h.algorithm
        ));
    }
    Ok(line.to_string())
}

/// Writes the password file atomically, mode 0600.
pub fn write_password_file(path: &Path, phc: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "piranha.passwd".into());
    let previous = std::fs::metadata(path).ok();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        random_hex(4).unwrap_or_default()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        if let Some(m) = &previous {
            use std::os::unix::fs::MetadataExt;
            let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
        }
        f.write_all(phc.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// One logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    pub created: Instant,
    pub last_seen: Instant,
}

/// Session lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle: Duration,
    pub absolute: Duration,
    pub max_sessions: usize,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
            max_sessions: 64,
        }
    }
}

/// The sessions, by their secret id (the cookie's value).
pub struct Sessions {
    policy: SessionPolicy,
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub fn new(policy: SessionPolicy) -> Sessions {
        Sessions {
            policy,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// A new session: (id, csrf token). The oldest session goes when there are too many.
    pub fn create(&self) -> Result<(String, String), String> {
        let id = random_hex(32)?;
        let csrf = random_hex(32)?;
        let now = Instant::now();
        let mut map = self.map.lock().map_err(|_| "session lock poisoned")?;
        let policy = self.policy;
        map.retain(|_, s| {
            now.duration_since(s.last_seen) < policy.idle
                && now.duration_since(s.created) < policy.absolute
        });
        while map.len() >= self.policy.max_sessions {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    map.remove(&k);
                }
                None => break,
            }
        }
        map.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
            },
        );
        Ok((id, csrf))
    }

    /// The session of a cookie value, refreshed; `None` if unknown or expired.
    pub fn get(&self, id: &str) -> Option<Session> {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let now = Instant::now();
        let mut map = self.map.lock().ok()?;
        let s = map.get_mut(id)?;
        if now.duration_since(s.last_seen) >= self.policy.idle
            || now.duration_since(s.created) >= self.policy.absolute
        {
            map.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(id);
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Failed-login limits: per client address and for the whole server, over a sliding window.
#[derive(Debug, Clone, Copy)]
pub struct RatePolicy {
    pub window: Duration,
    pub per_client: usize,
    pub global: usize,
}

impl Default for RatePolicy {
    fn default() -> Self {
        RatePolicy {
            window: Duration::from_secs(60),
            per_client: 5,
            global: 20,
        }
    }
}

pub struct RateLimiter {
    policy: RatePolicy,
    state: Mutex<RateState>,
}

#[derive(Default)]
struct RateState {
    clients: HashMap<IpAddr, VecDeque<Instant>>,
    global: VecDeque<Instant>,
}

impl RateLimiter {
    pub fn new(policy: RatePolicy) -> RateLimiter {
        RateLimiter {
            policy,
            state: Mutex::new(RateState::default()),
        }
    }

    fn prune(q: &mut VecDeque<Instant>, now: Instant, window: Duration) {
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
    }

    /// `Err(retry after)` when `client` (or everyone) failed too often within the window.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut st) = self.state.lock() else {
            return Err(self.policy.window);
        };
        let w = self.policy.window;
        Self::prune(&mut st.global, now, w);
        if st.global.len() >= self.policy.global {
            let first = st.global.front().copied().unwrap_or(now);
            return Err(w.saturating_sub(now.duration_since(first)));
        }
        if let Some(q) = st.clients.get_mut(&client) {
            Self::prune(q, now, w);
            if q.len() >= self.policy.per_client {
                let first = q.front().copied().unwrap_or(now);
                return Err(w.saturating_sub(now.duration_since(first)));
            }
        }
        Ok(())
    }

    /// Records a failed attempt.
    pub fn failed(&self, client: IpAddr, now: Instant) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let w = self.policy.window;
        st.global.push_back(now);
        if st.clients.len() > 10_000 {
            st.clients.retain(|_, q| {
                Self::prune(q, now, w);
                !q.is_empty()
            });
        }
        st.clients.entry(client).or_default().push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_roundtrip() {
        let h = hash_password("s3cret pass").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("s3cret pass", &h));
        assert!(!verify_password("s3cret pasS", &h));
        assert!(!verify_password("", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(hash_password("").is_err());
        let h2 = hash_password("s3cret pass").unwrap();
        assert_ne!(h, h2, "salts differ");
    }

    #[test]
    fn password_file_mode_and_content() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        assert!(read_password_file(&p)
            .unwrap_err()
            .contains("piranha-passwd"));
        let h = hash_password("abc").unwrap();
        write_password_file(&p, &h).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_password_file(&p).unwrap(), h);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_password_file(&p).unwrap_err().contains("chmod 600"));
        std::fs::write(&p, "plain\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_password_file(&p).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn sessions_expire_and_are_bounded() {
        let s = Sessions::new(SessionPolicy {
            idle: Duration::from_millis(100),
            absolute: Duration::from_secs(10),
            max_sessions: 3,
        });
        let (id, csrf) = s.create().unwrap();
        assert_eq!(id.len(), 64);
        assert_eq!(s.get(&id).unwrap().csrf, csrf);
        assert!(s.get("zz").is_none());
        assert!(s.get(&"0".repeat(64)).is_none());
        for _ in 0..5 {
            s.create().unwrap();
        }
        assert!(s.len() <= 3);
        let (id2, _) = s.create().unwrap();
        std::thread::sleep(Duration::from_millis(150));
        assert!(s.get(&id2).is_none(), "idle session expired");
        let (id3, _) = s.create().unwrap();
        s.remove(&id3);
        assert!(s.get(&id3).is_none());
    }

    #[test]
    fn rate_limit_per_client_and_global() {
        let r = RateLimiter::new(RatePolicy {
            window: Duration::from_secs(60),
            per_client: 3,
            global: 5,
        });
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let c: IpAddr = "127.0.0.4".parse().unwrap();
        let t = Instant::now();
        for _ in 0..3 {
            assert!(r.check(a, t).is_ok());
            r.failed(a, t);
        }
        let retry = r.check(a, t).unwrap_err();
        assert!(retry > Duration::from_secs(50));
        assert!(r.check(b, t).is_ok());
        r.failed(b, t);
        r.failed(b, t);
        assert!(r.check(c, t).is_err(), "global limit");
        assert!(
            r.check(c, t + Duration::from_secs(61)).is_ok(),
            "window slides"
        );
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "abcd"));
        assert_eq!(random_hex(16).unwrap().len(), 32);
    }
}
