//! The heartbeat on the wire: the one place that knows its bytes.
//!
//! **Piranha's format** (spec §2.4): a UDP datagram of exactly 4 bytes, one C `unsigned int`
//! magic number in the sender's host byte order. Piranha ran on x86, so the bytes on the wire are
//! little-endian: RUNNING `0xBDADDBDA` travels as `DA DB AD BD`. This pulse always sends
//! little-endian and accepts both byte orders (a big-endian Piranha build sent them reversed).
//!
//! **Authenticated heartbeats** (an extension, off unless `heartbeat_key_file` is set, and then
//! required on both routers): 48 bytes.
//!
//! | Bytes | Content |
//! |---|---|
//! | 0-3 | the magic, as above |
//! | 4 | format version, 1 |
//! | 5 | sender's role: 1 = primary, 2 = backup (a reflected packet is refused) |
//! | 6-7 | zero |
//! | 8-15 | sequence number, big-endian; strictly increasing per sender (wall-clock nanoseconds at start, so a restarted sender continues above its old numbers) |
//! | 16-47 | HMAC-SHA256 over `DOMAIN` followed by bytes 0-15 |
//!
//! The receiver accepts a sequence number once, within a 64-packet window below the highest seen
//! (the public and private paths may reorder).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// Piranha's magic numbers.
pub const HEARTBEAT_RUNNING: u32 = 0xBDAD_DBDA;
pub const HEARTBEAT_STOPPED: u32 = 0xADBD_DABD;
pub const HEARTBEAT_HOLD: u32 = 0xDEAF_BABE;
pub const HEARTBEAT_HELD: u32 = 0xDEAF_DADA;
pub const FOS_HEARTBEAT_RUNNING: u32 = 0xBEEF_BABE;
pub const FOS_HEARTBEAT_STOPPED: u32 = 0xDEAD_BEEF;
pub const FOS_HEARTBEAT_STOPME: u32 = 0xDEAD_DADA;

/// Length of Piranha's heartbeat.
pub const PLAIN_LEN: usize = 4;
/// Length of an authenticated heartbeat.
pub const AUTH_LEN: usize = 48;
const AUTH_VERSION: u8 = 1;
const DOMAIN: &[u8] = b"piranha-rs pulse heartbeat v1\0";
/// Shortest key accepted from `heartbeat_key_file`.
pub const MIN_KEY_LEN: usize = 16;

/// A heartbeat's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Magic {
    Running,
    Stopped,
    /// Defined by Piranha; its handling was compiled out (`if (0)`).
    Hold,
    Held,
    /// FOS mode (`service = fos`): a peer running failover services, not LVS.
    FosRunning,
    FosStopped,
    FosStopMe,
}

impl Magic {
    pub const ALL: [Magic; 7] = [
        Magic::Running,
        Magic::Stopped,
        Magic::Hold,
        Magic::Held,
        Magic::FosRunning,
        Magic::FosStopped,
        Magic::FosStopMe,
    ];

    pub fn value(self) -> u32 {
        match self {
            Magic::Running => HEARTBEAT_RUNNING,
            Magic::Stopped => HEARTBEAT_STOPPED,
            Magic::Hold => HEARTBEAT_HOLD,
            Magic::Held => HEARTBEAT_HELD,
            Magic::FosRunning => FOS_HEARTBEAT_RUNNING,
            Magic::FosStopped => FOS_HEARTBEAT_STOPPED,
            Magic::FosStopMe => FOS_HEARTBEAT_STOPME,
        }
    }

    pub fn from_value(v: u32) -> Option<Magic> {
        Magic::ALL.into_iter().find(|m| m.value() == v)
    }
}

/// The byte order a heartbeat arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// x86 Piranha, and this pulse.
    Little,
    Big,
}

/// Why a datagram is not a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Piranha: "bad heartbeat packet".
    Length(usize),
    /// Piranha: "Incompatible heartbeat received" (neither byte order is a known magic).
    Unknown(u32),
    /// Authenticated mode: the datagram is not a valid authenticated heartbeat.
    Auth(AuthError),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Length(n) => write!(f, "bad heartbeat packet ({n} bytes)"),
            DecodeError::Unknown(v) => write!(f, "unknown magic 0x{v:08x}"),
            DecodeError::Auth(e) => write!(f, "{e}"),
        }
    }
}

/// Piranha's 4 bytes for `m`, in x86 order.
pub fn encode(m: Magic) -> [u8; PLAIN_LEN] {
    m.value().to_le_bytes()
}

fn magic_of(b: [u8; 4]) -> Result<(Magic, ByteOrder), DecodeError> {
    let le = u32::from_le_bytes(b);
    if let Some(m) = Magic::from_value(le) {
        return Ok((m, ByteOrder::Little));
    }
    let be = u32::from_be_bytes(b);
    if let Some(m) = Magic::from_value(be) {
        return Ok((m, ByteOrder::Big));
    }
    Err(DecodeError::Unknown(le))
}

/// Decodes a Piranha heartbeat (exactly 4 bytes, either byte order).
pub fn decode(datagram: &[u8]) -> Result<(Magic, ByteOrder), DecodeError> {
    let b: [u8; 4] = datagram
        .try_into()
        .map_err(|_| DecodeError::Length(datagram.len()))?;
    magic_of(b)
}

/// A router's role, as carried in authenticated heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Backup,
}

impl Role {
    fn byte(self) -> u8 {
        match self {
            Role::Primary => 1,
            Role::Backup => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    Length(usize),
    Version(u8),
    /// The sender claims our own role (a reflected packet) or an unknown one.
    Role(u8),
    /// The HMAC does not match: another key, or a forged or damaged packet.
    Mac,
    Magic(u32),
    /// A sequence number seen before or too old.
    Replay(u64),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Length(n) => write!(
                f,
                "not an authenticated heartbeat ({n} bytes; is heartbeat_key_file set on both routers?)"
            ),
            AuthError::Version(v) => write!(f, "authenticated heartbeat of unknown version {v}"),
            AuthError::Role(r) => write!(f, "authenticated heartbeat with the wrong sender role {r}"),
            AuthError::Mac => write!(f, "authenticated heartbeat with a wrong HMAC (another key?)"),
            AuthError::Magic(v) => write!(f, "authenticated heartbeat with unknown magic 0x{v:08x}"),
            AuthError::Replay(s) => write!(f, "replayed or stale authenticated heartbeat (sequence {s})"),
        }
    }
}

/// A heartbeat key (the contents of `heartbeat_key_file`).
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes)", self.0.len())
    }
}

impl Key {
    /// The file's bytes without trailing line ends and blanks; at least 16 bytes.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Key, String> {
        let mut end = bytes.len();
        while end > 0 && matches!(bytes[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
            end -= 1;
        }
        if end < MIN_KEY_LEN {
            return Err(format!(
                "the key is {end} bytes; at least {MIN_KEY_LEN} are needed (e.g. head -c 32 /dev/urandom | base64)"
            ));
        }
        Ok(Key(bytes[..end].to_vec()))
    }

    fn mac(&self, header: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length: new_from_slice cannot fail for it.
        let mut m = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        m.update(DOMAIN);
        m.update(header);
        m.finalize().into_bytes().into()
    }
}

/// An authenticated heartbeat.
pub fn seal(key: &Key, magic: Magic, sender: Role, seq: u64) -> [u8; AUTH_LEN] {
    let mut out = [0u8; AUTH_LEN];
    out[0..4].copy_from_slice(&encode(magic));
    out[4] = AUTH_VERSION;
    out[5] = sender.byte();
    out[8..16].copy_from_slice(&seq.to_be_bytes());
    let mac = key.mac(&out[..16]);
    out[16..].copy_from_slice(&mac);
    out
}

/// Checks an authenticated heartbeat from a partner whose role is `partner`; returns its magic
/// and sequence number (the caller checks the sequence with a [`ReplayWindow`]).
pub fn open(key: &Key, datagram: &[u8], partner: Role) -> Result<(Magic, u64), AuthError> {
    if datagram.len() != AUTH_LEN {
        return Err(AuthError::Length(datagram.len()));
    }
    let want = key.mac(&datagram[..16]);
    // Constant-time comparison.
    let diff = want
        .iter()
        .zip(&datagram[16..])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(AuthError::Mac);
    }
    if datagram[4] != AUTH_VERSION {
        return Err(AuthError::Version(datagram[4]));
    }
    if datagram[5] != partner.byte() {
        return Err(AuthError::Role(datagram[5]));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&datagram[8..16]);
    let seq = u64::from_be_bytes(seq);
    let mut b = [0u8; 4];
    b.copy_from_slice(&datagram[0..4]);
    match magic_of(b) {
        Ok((m, _)) => Ok((m, seq)),
        Err(_) => Err(AuthError::Magic(u32::from_le_bytes(b))),
    }
}

/// Anti-replay: each sequence number is accepted once; numbers more than 64 below the highest
/// accepted are refused.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    highest: Option<u64>,
    /// Bit i set: `highest - i` was accepted.
    seen: u64,
}

impl ReplayWindow {
    pub fn accept(&mut self, seq: u64) -> bool {
        let Some(h) = self.highest else {
            self.highest = Some(seq);
            self.seen = 1;
            return true;
        };
        if seq > h {
            let shift = seq - h;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = Some(seq);
            return true;
        }
        let back = h - seq;
        if back >= 64 || self.seen & (1 << back) != 0 {
            return false;
        }
        self.seen |= 1 << back;
        true
    }
}

/// The sender's sequence numbers: strictly increasing, starting from the wall clock in
/// nanoseconds so that a restarted pulse continues above what its previous run sent.
#[derive(Debug, Clone)]
pub struct Sequence {
    last: u64,
}

impl Sequence {
    pub fn starting_at(wall_clock_ns: u64) -> Sequence {
        Sequence {
            last: wall_clock_ns,
        }
    }

    pub fn from_clock() -> Sequence {
        let ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Sequence::starting_at(ns)
    }

    pub fn next_number(&mut self) -> u64 {
        self.last = self.last.saturating_add(1);
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piranha_bytes_on_the_wire() {
        // Spec §2.4: RUNNING 0xBDADDBDA is sent as DA DB AD BD by x86 Piranha.
        assert_eq!(encode(Magic::Running), [0xDA, 0xDB, 0xAD, 0xBD]);
        assert_eq!(encode(Magic::Stopped), [0xBD, 0xDA, 0xBD, 0xAD]);
        assert_eq!(encode(Magic::Hold), [0xBE, 0xBA, 0xAF, 0xDE]);
        assert_eq!(encode(Magic::Held), [0xDA, 0xDA, 0xAF, 0xDE]);
        assert_eq!(encode(Magic::FosRunning), [0xBE, 0xBA, 0xEF, 0xBE]);
        assert_eq!(encode(Magic::FosStopped), [0xEF, 0xBE, 0xAD, 0xDE]);
        assert_eq!(encode(Magic::FosStopMe), [0xDA, 0xDA, 0xAD, 0xDE]);
    }

    #[test]
    fn both_byte_orders_decode() {
        for m in Magic::ALL {
            assert_eq!(decode(&encode(m)), Ok((m, ByteOrder::Little)));
            assert_eq!(
                decode(&m.value().to_be_bytes()),
                Ok((m, ByteOrder::Big)),
                "{m:?}"
            );
        }
        // No magic is another's byte swap, so the order is never ambiguous.
        for a in Magic::ALL {
            for b in Magic::ALL {
                assert_ne!(a.value(), b.value().swap_bytes());
            }
        }
    }

    #[test]
    fn bad_datagrams() {
        assert_eq!(decode(&[]), Err(DecodeError::Length(0)));
        assert_eq!(decode(&[0xDA, 0xDB, 0xAD]), Err(DecodeError::Length(3)));
        assert_eq!(
            decode(&[0xDA, 0xDB, 0xAD, 0xBD, 0]),
            Err(DecodeError::Length(5))
        );
        assert_eq!(
            decode(&[1, 2, 3, 4]),
            Err(DecodeError::Unknown(0x0403_0201))
        );
    }

    fn key(s: &str) -> Key {
        Key::from_file_bytes(s.as_bytes()).unwrap()
    }

    #[test]
    fn keys() {
        assert!(Key::from_file_bytes(b"short\n").is_err());
        assert!(Key::from_file_bytes(b"               \n").is_err());
        let k = key("0123456789abcdef\r\n");
        assert_eq!(k, key("0123456789abcdef"));
        assert_eq!(format!("{k:?}"), "Key(16 bytes)");
    }

    #[test]
    fn sealed_heartbeats_open_only_with_the_key_and_role() {
        let k = key("correct horse battery staple");
        let p = seal(&k, Magic::Running, Role::Primary, 77);
        assert_eq!(p.len(), AUTH_LEN);
        assert_eq!(&p[..4], &encode(Magic::Running));
        assert_eq!(p[4], 1);
        assert_eq!(p[5], 1);
        assert_eq!(&p[8..16], &77u64.to_be_bytes());
        assert_eq!(open(&k, &p, Role::Primary), Ok((Magic::Running, 77)));
        // A reflected packet: our own role.
        assert_eq!(open(&k, &p, Role::Backup), Err(AuthError::Role(1)));
        // Another key.
        assert_eq!(
            open(&key("another key, sixteen+"), &p, Role::Primary),
            Err(AuthError::Mac)
        );
        // Every single-bit change is caught.
        for i in 0..AUTH_LEN {
            let mut q = p;
            q[i] ^= 0x01;
            assert!(open(&k, &q, Role::Primary).is_err(), "byte {i}");
        }
        // A plain Piranha heartbeat is refused in authenticated mode.
        assert_eq!(
            open(&k, &encode(Magic::Stopped), Role::Primary),
            Err(AuthError::Length(4))
        );
        let s = seal(&k, Magic::Stopped, Role::Backup, u64::MAX);
        assert_eq!(open(&k, &s, Role::Backup), Ok((Magic::Stopped, u64::MAX)));
    }

    #[test]
    fn replay_window() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(1000));
        assert!(!w.accept(1000), "a replay");
        assert!(w.accept(1002));
        assert!(w.accept(1001), "reordered within the window");
        assert!(!w.accept(1001));
        assert!(w.accept(1070));
        assert!(!w.accept(1002), "more than 64 below the highest");
        assert!(w.accept(1007), "63 below: still in the window");
        assert!(!w.accept(1006), "64 below: outside");
        assert!(w.accept(u64::MAX));
        assert!(!w.accept(1071));
    }

    #[test]
    fn sequence_increases_from_the_clock() {
        let mut s = Sequence::starting_at(5);
        assert_eq!(s.next_number(), 6);
        assert_eq!(s.next_number(), 7);
        let mut c = Sequence::from_clock();
        let a = c.next_number();
        assert!(a > 1_600_000_000_000_000_000);
        assert!(c.next_number() > a);
    }
}
