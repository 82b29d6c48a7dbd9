//! The kernel's IPVS schedulers (`net/netfilter/ipvs/ip_vs_*.c` of Linux 6.x), with no I/O:
//! given a service's destination list (in the kernel's order: the most recently added first),
//! the packet that opens a connection and the clock, each picks the destination the kernel
//! would pick, keeping the same state between calls (round-robin cursors, hash tables,
//! locality caches).
//!
//! Hooks as the kernel calls them: [`Scheduler::new`] when a service gets the scheduler
//! (`init_service`), [`Scheduler::dest_added`] / [`Scheduler::dest_removed`] /
//! [`Scheduler::dest_updated`] after the list changed (`add_dest`, `del_dest`, `upd_dest`; only
//! the schedulers that have the hook react), [`Scheduler::schedule`] per new connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipvs::flags;

use crate::dest::Dest;

/// The schedulers the kernel knows (and `none`).
pub const NAMES: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
];

/// What a scheduler sees of the first packet of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// The client's address and port.
    pub saddr: IpAddr,
    pub sport: u16,
    /// The virtual address the client connected to.
    pub daddr: IpAddr,
    /// IP protocol (6, 17, 132); ports are used only for these.
    pub protocol: u16,
}

/// One scheduler's state for one service.
#[derive(Debug)]
pub enum Scheduler {
    Rr(Rr),
    Wrr(Wrr),
    Lc,
    Wlc,
    Sed,
    Nq,
    Fo,
    Ovf,
    Sh(Table256),
    Dh(Table256),
    Mh(Mh),
    Lblc(Lblc),
    Lblcr(Lblcr),
}

impl Scheduler {
    /// `init_service`: `None` for an unknown name (and for `none`, which has no scheduler).
    pub fn new(name: &str, dests: &[Arc<Dest>]) -> Option<Scheduler> {
        Some(match name {
            "rr" => Scheduler::Rr(Rr { cursor: None }),
            "wrr" => Scheduler::Wrr(Wrr::new(dests)),
            "lc" => Scheduler::Lc,
            "wlc" => Scheduler::Wlc,
            "sed" => Scheduler::Sed,
            "nq" => Scheduler::Nq,
            "fo" => Scheduler::Fo,
            "ovf" => Scheduler::Ovf,
            "sh" => Scheduler::Sh(Table256::sh(dests)),
            "dh" => Scheduler::Dh(Table256::dh(dests)),
            "mh" => Scheduler::Mh(Mh::new(dests)),
            "lblc" => Scheduler::Lblc(Lblc::default()),
            "lblcr" => Scheduler::Lblcr(Lblcr::default()),
            _ => return None,
        })
    }

    /// `add_dest`, after the destination was put at the head of the list.
    pub fn dest_added(&mut self, dests: &[Arc<Dest>]) {
        match self {
            Scheduler::Wrr(w) => w.changed(dests),
            Scheduler::Sh(t) => *t = Table256::sh(dests),
            Scheduler::Dh(t) => *t = Table256::dh(dests),
            Scheduler::Mh(m) => m.changed(dests),
            _ => {}
        }
    }

    /// `del_dest`, after `removed` (which was at `index`) left the list.
    pub fn dest_removed(&mut self, dests: &[Arc<Dest>], removed: &Dest, index: usize) {
        match self {
            Scheduler::Rr(r) if r.cursor == Some(removed.id) => {
                r.cursor = index
                    .checked_sub(1)
                    .and_then(|i| dests.get(i))
                    .map(|d| d.id);
            }
            Scheduler::Wrr(w) => w.changed(dests),
            Scheduler::Sh(t) => *t = Table256::sh(dests),
            Scheduler::Dh(t) => *t = Table256::dh(dests),
            Scheduler::Mh(m) => m.changed(dests),
            _ => {}
        }
    }

    /// `upd_dest`, after a destination's settings changed (dh and rr have no such hook).
    pub fn dest_updated(&mut self, dests: &[Arc<Dest>]) {
        match self {
            Scheduler::Wrr(w) => w.changed(dests),
            Scheduler::Sh(t) => *t = Table256::sh(dests),
            Scheduler::Mh(m) => m.changed(dests),
            _ => {}
        }
    }

    /// The periodic work of lblc/lblcr (their 60-second timer); `now_ms` on the daemon clock.
    pub fn periodic(&mut self, now_ms: u64) {
        match self {
            Scheduler::Lblc(l) => l.periodic(now_ms),
            Scheduler::Lblcr(l) => l.periodic(now_ms),
            _ => {}
        }
    }

    /// Picks the destination of a new connection; `None`: "no destination available".
    pub fn schedule(
        &mut self,
        svc_flags: u32,
        dests: &[Arc<Dest>],
        pkt: &Packet,
        now_ms: u64,
    ) -> Option<Arc<Dest>> {
        match self {
            Scheduler::Rr(r) => r.schedule(dests),
            Scheduler::Wrr(w) => w.schedule(dests),
            Scheduler::Lc => lc(dests),
            Scheduler::Wlc => wlc(dests),
            Scheduler::Sed => sed(dests),
            Scheduler::Nq => nq(dests),
            Scheduler::Fo => fo(dests),
            Scheduler::Ovf => ovf(dests),
            Scheduler::Sh(t) => t.sh_schedule(svc_flags, pkt),
            Scheduler::Dh(t) => t.dh_schedule(pkt),
            Scheduler::Mh(m) => m.schedule(svc_flags, pkt),
            Scheduler::Lblc(l) => l.schedule(dests, pkt, now_ms),
            Scheduler::Lblcr(l) => l.schedule(dests, pkt, now_ms),
        }
    }
}

fn position(dests: &[Arc<Dest>], id: Option<u64>) -> Option<usize> {
    id.and_then(|id| dests.iter().position(|d| d.id == id))
}

// ---------------------------------------------------------------------------------- rr

/// `ip_vs_rr.c`: the cursor is the last destination chosen (`None`: the list head).
#[derive(Debug, Default)]
pub struct Rr {
    cursor: Option<u64>,
}

impl Rr {
    /// From the destination after the cursor round the list, the cursor itself last: the first
    /// that is not overloaded and has a positive weight.
    fn schedule(&mut self, dests: &[Arc<Dest>]) -> Option<Arc<Dest>> {
        let n = dests.len();
        let start = position(dests, self.cursor).map_or(0, |i| i + 1);
        for k in 0..n {
            let d = &dests[(start + k) % n];
            if !d.overloaded() && d.weight() > 0 {
                self.cursor = Some(d.id);
                return Some(d.clone());
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------- wrr

fn gcd(mut a: i32, mut b: i32) -> i32 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// `ip_vs_wrr.c`: cursor, current weight, maximum weight (lowered by di - 1) and the gcd of the
/// positive weights.
#[derive(Debug)]
pub struct Wrr {
    cl: Option<u64>,
    cw: i32,
    mw: i32,
    di: i32,
}

fn wrr_gcd(dests: &[Arc<Dest>]) -> i32 {
    let mut g = 0;
    for d in dests {
        let w = d.weight();
        if w > 0 {
            g = if g > 0 { gcd(w, g) } else { w };
        }
    }
    if g != 0 {
        g
    } else {
        1
    }
}

fn max_weight(dests: &[Arc<Dest>]) -> i32 {
    dests.iter().map(|d| d.weight()).fold(0, i32::max)
}

impl Wrr {
    fn new(dests: &[Arc<Dest>]) -> Wrr {
        let di = wrr_gcd(dests);
        let mw = max_weight(dests) - (di - 1);
        Wrr {
            cl: None,
            cw: mw,
            mw,
            di,
        }
    }

    /// `ip_vs_wrr_dest_changed`.
    fn changed(&mut self, dests: &[Arc<Dest>]) {
        self.cl = None;
        self.di = wrr_gcd(dests);
        self.mw = max_weight(dests) - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    fn schedule(&mut self, dests: &[Arc<Dest>]) -> Option<Arc<Dest>> {
        if self.mw == 0 {
            return None;
        }
        // Positions: -1 is the list head.
        let mut pos: isize = position(dests, self.cl).map_or(-1, |i| i as isize);
        let last = pos;
        let mut stop: Option<usize> = None;
        let (mut last_pass, mut restarted) = (false, false);
        loop {
            if pos == -1 && stop.is_none() {
                self.skip_empty_passes(dests);
            }
            for (i, d) in dests.iter().enumerate().skip((pos + 1) as usize) {
                if !d.overloaded() && d.weight() >= self.cw {
                    self.cl = Some(d.id);
                    return Some(d.clone());
                }
                if stop == Some(i) {
                    self.cl = Some(d.id);
                    return None;
                }
            }
            pos = -1;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last == -1 {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last != -1 {
                stop = Some(last as usize);
            }
        }
    }

    /// The kernel walks the whole list once per weight step, however large the weights: a walk
    /// from the head that cannot find a destination (every usable weight is below the current
    /// one) only lowers the current weight by di. Those walks are skipped here, as long as they
    /// leave the state exactly as the kernel's walks would (no wrap, not yet the last pass).
    fn skip_empty_passes(&mut self, dests: &[Arc<Dest>]) {
        let best = dests
            .iter()
            .filter(|d| !d.overloaded())
            .map(|d| d.weight())
            .fold(0, i32::max);
        if self.cw <= best {
            return;
        }
        let bound = best.max(self.di) as i64;
        let cw = self.cw as i64;
        let k = (cw - bound - 1) / self.di as i64;
        if k >= 1 {
            self.cw = (cw - k * self.di as i64) as i32;
        }
    }
}

// ---------------------------------------------------------------------------------- lc, wlc, sed, nq, fo, ovf

/// `ip_vs_lc.c`: the least overhead (active * 256 + inactive), weight not zero, not overloaded;
/// the first of equals.
fn lc(dests: &[Arc<Dest>]) -> Option<Arc<Dest>> {
    let mut least: Option<(&Arc<Dest>, u32)> = None;
    for d in dests {
        if d.overloaded() || d.weight() == 0 {
            continue;
        }
        let doh = d.conn_overhead() as u32;
        let better = match least {
            None => true,
            Some((_, loh)) => doh < loh,
        };
        if better {
            least = Some((d, doh));
        }
    }
    least.map(|(d, _)| d.clone())
}

/// The shape of wlc, sed (and the cache-miss path of lblc, lblcr): the first usable destination,
/// then any later one whose overhead / weight is strictly lower.
fn weighted_least(dests: &[Arc<Dest>], overhead: fn(&Dest) -> i32) -> Option<Arc<Dest>> {
    let first = dests
        .iter()
        .position(|d| !d.overloaded() && d.weight() > 0)?;
    let mut least = &dests[first];
    let mut loh = overhead(least) as i64;
    for d in &dests[first + 1..] {
        if d.overloaded() {
            continue;
        }
        let doh = overhead(d) as i64;
        if loh * d.weight() as i64 > doh * least.weight() as i64 {
            least = d;
            loh = doh;
        }
    }
    Some(least.clone())
}

/// `ip_vs_wlc.c`.
fn wlc(dests: &[Arc<Dest>]) -> Option<Arc<Dest>> {
    weighted_least(dests, Dest::conn_overhead)
}

fn expected_delay(d: &Dest) -> i32 {
    d.active().wrapping_add(1)
}

/// `ip_vs_sed.c`: overhead = active + 1 (inactive connections do not count).
fn sed(dests: &[Arc<Dest>]) -> Option<Arc<Dest>> {
    weighted_least(dests, expected_delay)
}

/// `ip_vs_nq.c`: an idle destination at once, otherwise as sed.
fn nq(dests: &[Arc<Dest>]) -> Option<Arc<Dest>> {
    let mut least: Option<(&Arc<Dest>, i64)> = None;
    for d in dests {
        if d.overloaded() || d.weight() == 0 {
            continue;
        }
        let doh = expected_delay(d) as i64;
        if d.active() == 0 {
            return Some(d.clone());
        }
        let better = match least {
            None => true,
            Some((l, loh)) => loh * d.weight() as i64 > doh * l.weight() as i64,
        };
        if better {
            least = Some((d, doh));
        }
    }
    least.map(|(d, _)| d.clone())
}

/// `ip_vs_fo.c`: the highest weight, the first of equals.
fn fo(dests: &[Arc<Dest>]) -> Option<Arc<Dest>> {
    let mut best: Option<&Arc<Dest>> = None;
    let mut hw = 0;
    for d in dests {
        if !d.overloaded() && d.weight() > hw {
            best = Some(d);
            hw = d.weight();
        }
    }
    best.cloned()
}

/// `ip_vs_ovf.c`: the highest weight among those with no more active connections than their
/// weight.
fn ovf(dests: &[Arc<Dest>]) -> Option<Arc<Dest>> {
    let mut best: Option<&Arc<Dest>> = None;
    let mut hw = 0;
    for d in dests {
        let w = d.weight();
        if d.overloaded() || d.active() > w || w == 0 {
            continue;
        }
        if best.is_none() || w > hw {
            best = Some(d);
            hw = w;
        }
    }
    best.cloned()
}

// ---------------------------------------------------------------------------------- hashes

/// `GOLDEN_RATIO_32`.
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// `hash_32(val, bits)` (generic version; x86 has no arch override).
pub fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// `ntohl(addr_fold)`: an IPv4 address as a number; an IPv6 address's four 32-bit words
/// XOR-ed.
pub fn addr_fold(addr: &IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(*a),
        IpAddr::V6(a) => {
            let o = a.octets();
            (0..4)
                .map(|i| u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]))
                .fold(0, |x, y| x ^ y)
        }
    }
}

fn port_of(pkt: &Packet) -> u16 {
    match pkt.protocol {
        6 | 17 | 132 => pkt.sport,
        _ => 0,
    }
}

fn unavailable(d: &Dest) -> bool {
    d.weight() <= 0 || d.overloaded()
}

// ---------------------------------------------------------------------------------- sh, dh

const TAB256: usize = 256;

/// The 256-bucket tables of sh and dh.
#[derive(Debug)]
pub struct Table256 {
    buckets: Vec<Option<Arc<Dest>>>,
}

impl Table256 {
    /// `ip_vs_sh_reassign`: the list in order, round and round, each destination taking as many
    /// consecutive buckets as its weight (at least one).
    fn sh(dests: &[Arc<Dest>]) -> Table256 {
        Self::fill(dests, true)
    }

    /// `ip_vs_dh_reassign`: the list in order, one bucket each, round and round.
    fn dh(dests: &[Arc<Dest>]) -> Table256 {
        Self::fill(dests, false)
    }

    fn fill(dests: &[Arc<Dest>], weighted: bool) -> Table256 {
        let mut buckets = Vec::with_capacity(TAB256);
        if dests.is_empty() {
            buckets.resize(TAB256, None);
            return Table256 { buckets };
        }
        let (mut p, mut count) = (0usize, 0i32);
        for _ in 0..TAB256 {
            if p == dests.len() {
                p = 0;
            }
            let d = &dests[p];
            buckets.push(Some(d.clone()));
            if weighted {
                count += 1;
                if count >= d.weight() {
                    p += 1;
                    count = 0;
                }
            } else {
                p += 1;
            }
        }
        Table256 { buckets }
    }

    /// Which destinations the buckets hold (tests).
    pub fn ids(&self) -> Vec<Option<u64>> {
        self.buckets
            .iter()
            .map(|b| b.as_ref().map(|d| d.id))
            .collect()
    }

    fn sh_key(addr: &IpAddr, port: u16, offset: u32) -> usize {
        (offset.wrapping_add(hash_32((port as u32).wrapping_add(addr_fold(addr)), 8))
            & (TAB256 as u32 - 1)) as usize
    }

    fn sh_schedule(&self, svc_flags: u32, pkt: &Packet) -> Option<Arc<Dest>> {
        let port = if svc_flags & flags::SH_PORT != 0 {
            port_of(pkt)
        } else {
            0
        };
        let ihash = Self::sh_key(&pkt.saddr, port, 0);
        let d = self.buckets[ihash].as_ref()?;
        if !unavailable(d) {
            return Some(d.clone());
        }
        if svc_flags & flags::SH_FALLBACK == 0 {
            return None;
        }
        for offset in 0..TAB256 as u32 {
            let roffset = (offset + ihash as u32) % TAB256 as u32;
            let d = self.buckets[Self::sh_key(&pkt.saddr, port, roffset)].as_ref()?;
            if !unavailable(d) {
                return Some(d.clone());
            }
        }
        None
    }

    fn dh_schedule(&self, pkt: &Packet) -> Option<Arc<Dest>> {
        let d = self.buckets[hash_32(addr_fold(&pkt.daddr), 8) as usize].as_ref()?;
        if !d.available() || unavailable(d) {
            return None;
        }
        Some(d.clone())
    }
}

// ---------------------------------------------------------------------------------- mh

/// SipHash with `c` compression and `d` finalisation rounds over `data`, 128-bit key; the
/// kernel's `hsiphash` on 64-bit machines is SipHash-1-3 truncated to 32 bits.
pub fn siphash(c: usize, d: usize, k0: u64, k1: u64, data: &[u8]) -> u64 {
    let mut v = [
        0x736f_6d65_7073_6575u64 ^ k0,
        0x646f_7261_6e64_6f6du64 ^ k1,
        0x6c79_6765_6e65_7261u64 ^ k0,
        0x7465_6462_7974_6573u64 ^ k1,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13);
        v[1] ^= v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16);
        v[3] ^= v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21);
        v[3] ^= v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17);
        v[1] ^= v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut chunks = data.chunks_exact(8);
    for ch in &mut chunks {
        let m = u64::from_le_bytes(ch.try_into().expect("8 bytes"));
        v[3] ^= m;
        for _ in 0..c {
            round(&mut v);
        }
        v[0] ^= m;
    }
    let mut b = (data.len() as u64) << 56;
    for (i, &byte) in chunks.remainder().iter().enumerate() {
        b |= (byte as u64) << (8 * i);
    }
    v[3] ^= b;
    for _ in 0..c {
        round(&mut v);
    }
    v[0] ^= b;
    v[2] ^= 0xff;
    for _ in 0..d {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// `hsiphash(&v, sizeof(v), key)` of a 32-bit value, key words both `k`.
fn hsiphash_u32(v: u32, k: u64) -> u32 {
    siphash(1, 3, k, k, &v.to_le_bytes()) as u32
}

/// `CONFIG_IP_VS_MH_TAB_INDEX` 12 (Debian's and the default): table size `primes[4]`, 6 bits.
const MH_TAB_SIZE: usize = 4093;
const MH_TAB_BITS: i32 = 6;
const MH_KEY1: u64 = 2654435761;
const MH_KEY2: u64 = 2654446892;

/// `ip_vs_mh_hashkey`.
fn mh_key(addr: &IpAddr, port: u16, key: u64, offset: u32) -> u32 {
    let v = offset
        .wrapping_add(port as u32)
        .wrapping_add(addr_fold(addr));
    hsiphash_u32(v, key)
}

fn fls(x: i32) -> i32 {
    if x == 0 {
        0
    } else {
        32 - (x as u32).leading_zeros() as i32
    }
}

/// `ip_vs_mh.c`: Maglev hashing over a 4093-entry lookup table, weights from `last_weight`.
#[derive(Debug)]
pub struct Mh {
    lookup: Vec<Option<Arc<Dest>>>,
}

impl Mh {
    fn new(dests: &[Arc<Dest>]) -> Mh {
        let mut m = Mh {
            lookup: vec![None; MH_TAB_SIZE],
        };
        m.changed(dests);
        m
    }

    /// Which destinations the lookup table holds (tests).
    pub fn ids(&self) -> Vec<Option<u64>> {
        self.lookup
            .iter()
            .map(|b| b.as_ref().map(|d| d.id))
            .collect()
    }

    /// gcd, shift, permutation and population (`ip_vs_mh_dest_changed`).
    fn changed(&mut self, dests: &[Arc<Dest>]) {
        if dests.len() > MH_TAB_SIZE {
            return; // -EINVAL: the kernel leaves the table as it was
        }
        let mut g = 0;
        for d in dests {
            let w = d.last_weight();
            if w > 0 {
                g = if g > 0 { gcd(w, g) } else { w };
            }
        }
        if g < 1 {
            self.lookup.iter_mut().for_each(|b| *b = None);
            return;
        }
        let mw = dests.iter().map(|d| d.last_weight()).fold(0, i32::max) / g;
        let rshift = (fls(mw) - MH_TAB_BITS).max(0);
        struct Setup {
            perm: usize,
            skip: usize,
            turns: i32,
        }
        let mut setup: Vec<Setup> = dests
            .iter()
            .map(|d| {
                let offset = mh_key(&d.addr, d.port, MH_KEY1, 0) as usize % MH_TAB_SIZE;
                let skip = mh_key(&d.addr, d.port, MH_KEY2, 0) as usize % (MH_TAB_SIZE - 1) + 1;
                let lw = d.last_weight();
                let t = (lw / g) >> rshift;
                Setup {
                    perm: offset,
                    skip,
                    turns: if t != 0 { t } else { (lw != 0) as i32 },
                }
            })
            .collect();
        let mut taken = vec![false; MH_TAB_SIZE];
        let (mut n, mut dt_count) = (0usize, 0i32);
        let mut p = 0usize;
        'fill: while n < MH_TAB_SIZE {
            if p == dests.len() {
                p = 0;
            }
            while p < dests.len() {
                let ds = &mut setup[p];
                if ds.turns < 1 {
                    p += 1;
                    continue;
                }
                let mut c = ds.perm;
                while taken[c] {
                    ds.perm += ds.skip;
                    if ds.perm >= MH_TAB_SIZE {
                        ds.perm -= MH_TAB_SIZE;
                    }
                    c = ds.perm;
                }
                taken[c] = true;
                self.lookup[c] = Some(dests[p].clone());
                n += 1;
                if n == MH_TAB_SIZE {
                    break 'fill;
                }
                dt_count += 1;
                if dt_count >= ds.turns {
                    dt_count = 0;
                    p += 1;
                }
            }
        }
    }

    fn schedule(&self, svc_flags: u32, pkt: &Packet) -> Option<Arc<Dest>> {
        let port = if svc_flags & flags::MH_PORT != 0 {
            port_of(pkt)
        } else {
            0
        };
        let ihash = mh_key(&pkt.saddr, port, MH_KEY1, 0) as usize % MH_TAB_SIZE;
        let d = self.lookup[ihash].as_ref()?;
        if !unavailable(d) {
            return Some(d.clone());
        }
        if svc_flags & flags::MH_FALLBACK == 0 {
            return None;
        }
        for offset in 0..MH_TAB_SIZE {
            let roffset = (offset + ihash) % MH_TAB_SIZE;
            let h = mh_key(&pkt.saddr, port, MH_KEY1, roffset as u32) as usize % MH_TAB_SIZE;
            let d = self.lookup[h].as_ref()?;
            if !unavailable(d) {
                return Some(d.clone());
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------- lblc, lblcr

/// The sysctls' default `lblc_expiration` / `lblcr_expiration`: 24 hours.
const LBLC_EXPIRATION_MS: u64 = 24 * 3600 * 1000;
const CHECK_EXPIRE_INTERVAL_MS: u64 = 60 * 1000;
const COUNT_FOR_FULL_EXPIRATION: u32 = 30;

/// lblc/lblcr's test of a cached server: more active connections than its weight while
/// another server has fewer than half its weight.
fn lblc_overloaded(d: &Dest, dests: &[Arc<Dest>]) -> bool {
    if d.active() > d.weight() {
        return dests
            .iter()
            .any(|o| (o.active() as i64) * 2 < o.weight() as i64);
    }
    false
}

/// The 60-second timer of lblc/lblcr: every 30th run a full check drops entries unused for the
/// expiration time. (The partial collection when a table holds more than 16384 entries cannot
/// happen here: the locality key is the virtual address, one per service.)
#[derive(Debug)]
struct Expiry {
    next_ms: Option<u64>,
    counter: u32,
}

impl Default for Expiry {
    fn default() -> Self {
        Expiry {
            next_ms: None,
            counter: 1,
        }
    }
}

impl Expiry {
    /// Whether a full check is due at `now_ms`.
    fn due(&mut self, now_ms: u64) -> bool {
        let next = *self
            .next_ms
            .get_or_insert(now_ms + CHECK_EXPIRE_INTERVAL_MS);
        if now_ms < next {
            return false;
        }
        self.next_ms = Some(now_ms + CHECK_EXPIRE_INTERVAL_MS);
        if self.counter % COUNT_FOR_FULL_EXPIRATION == 0 {
            self.counter = 1;
            true
        } else {
            self.counter += 1;
            false
        }
    }
}

#[derive(Debug)]
struct LblcEntry {
    dest: Arc<Dest>,
    lastuse: u64,
}

/// `ip_vs_lblc.c`: destination address → server cache.
#[derive(Debug, Default)]
pub struct Lblc {
    entries: HashMap<IpAddr, LblcEntry>,
    expiry: Expiry,
}

impl Lblc {
    fn schedule(&mut self, dests: &[Arc<Dest>], pkt: &Packet, now: u64) -> Option<Arc<Dest>> {
        if let Some(en) = self.entries.get_mut(&pkt.daddr) {
            en.lastuse = now;
            let d = &en.dest;
            if d.available() && d.weight() > 0 && !lblc_overloaded(d, dests) {
                return Some(d.clone());
            }
        }
        let d = wlc(dests)?;
        match self.entries.get_mut(&pkt.daddr) {
            Some(en) if Arc::ptr_eq(&en.dest, &d) => {}
            _ => {
                self.entries.insert(
                    pkt.daddr,
                    LblcEntry {
                        dest: d.clone(),
                        lastuse: now,
                    },
                );
            }
        }
        Some(d)
    }

    fn periodic(&mut self, now: u64) {
        if self.expiry.due(now) {
            self.entries
                .retain(|_, en| now < en.lastuse + LBLC_EXPIRATION_MS);
        }
    }
}

#[derive(Debug)]
struct LblcrEntry {
    /// Most recently inserted first.
    set: Vec<Arc<Dest>>,
    lastmod: u64,
    lastuse: u64,
}

/// `ip_vs_dest_set_min`.
fn set_min(set: &[Arc<Dest>]) -> Option<Arc<Dest>> {
    let first = set
        .iter()
        .position(|d| !d.overloaded() && d.weight() > 0 && d.available())?;
    let mut least = &set[first];
    let mut loh = least.conn_overhead() as i64;
    for d in &set[first + 1..] {
        if d.overloaded() {
            continue;
        }
        let doh = d.conn_overhead() as i64;
        if loh * d.weight() as i64 > doh * least.weight() as i64 && d.available() {
            least = d;
            loh = doh;
        }
    }
    Some(least.clone())
}

/// `ip_vs_dest_set_max`.
fn set_max(set: &[Arc<Dest>]) -> Option<usize> {
    let first = set.iter().position(|d| d.weight() > 0)?;
    let mut most = first;
    let mut moh = set[first].conn_overhead() as i64;
    for (i, d) in set.iter().enumerate().skip(first + 1) {
        let doh = d.conn_overhead() as i64;
        if moh * (d.weight() as i64) < doh * set[most].weight() as i64 && d.weight() > 0 {
            most = i;
            moh = doh;
        }
    }
    Some(most)
}

/// `ip_vs_lblcr.c`: destination address → set of servers.
#[derive(Debug, Default)]
pub struct Lblcr {
    entries: HashMap<IpAddr, LblcrEntry>,
    expiry: Expiry,
}

impl Lblcr {
    fn schedule(&mut self, dests: &[Arc<Dest>], pkt: &Packet, now: u64) -> Option<Arc<Dest>> {
        if let Some(en) = self.entries.get_mut(&pkt.daddr) {
            en.lastuse = now;
            let d = set_min(&en.set);
            if en.set.len() > 1 && now > en.lastmod + LBLC_EXPIRATION_MS {
                if let Some(m) = set_max(&en.set) {
                    en.set.remove(m);
                    en.lastmod = now;
                }
            }
            if let Some(d) = d {
                if !lblc_overloaded(&d, dests) {
                    return Some(d);
                }
            }
            let d = wlc(dests)?;
            if !en.set.iter().any(|x| Arc::ptr_eq(x, &d)) {
                en.set.insert(0, d.clone());
                en.lastmod = now;
            }
            return Some(d);
        }
        let d = wlc(dests)?;
        self.entries.insert(
            pkt.daddr,
            LblcrEntry {
                set: vec![d.clone()],
                lastmod: now,
                lastuse: now,
            },
        );
        Some(d)
    }

    fn periodic(&mut self, now: u64) {
        if self.expiry.due(now) {
            self.entries
                .retain(|_, en| en.lastuse + LBLC_EXPIRATION_MS > now);
        }
    }
}

#[cfg(test)]
mod tests;
