//! Counters and rates of a service or destination, as the kernel keeps them: monotonic counters
//! (`conns`, `inpkts`, `outpkts`, `inbytes`, `outbytes`), a zero point that `ipvsadm -Z` moves,
//! and the rate estimator of `ip_vs_est.c`: every 2 seconds each rate moves a quarter of the way
//! to the rate of the last 2 seconds (an EWMA), in fixed point (rates of packets and connections
//! scaled by 2^10, of bytes by 2^5), rounded when read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use ipvs::Stats;

/// The five counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl Counters {
    fn minus(&self, o: &Counters) -> Counters {
        Counters {
            conns: self.conns.wrapping_sub(o.conns),
            inpkts: self.inpkts.wrapping_sub(o.inpkts),
            outpkts: self.outpkts.wrapping_sub(o.outpkts),
            inbytes: self.inbytes.wrapping_sub(o.inbytes),
            outbytes: self.outbytes.wrapping_sub(o.outbytes),
        }
    }
}

/// `struct ip_vs_estimator`: the last counters seen and the scaled rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimator {
    last: Counters,
    cps: u64,
    inpps: u64,
    outpps: u64,
    inbps: u64,
    outbps: u64,
}

/// `e += (rate - e) >> 2` on signed 64-bit values, as the kernel computes it.
fn ewma(e: u64, rate: u64) -> u64 {
    (e as i64).wrapping_add((rate as i64).wrapping_sub(e as i64) >> 2) as u64
}

impl Estimator {
    /// One 2-second tick of `estimation_timer` with the current (absolute) counters.
    pub fn tick(&mut self, now: &Counters) {
        let rate = now.conns.wrapping_sub(self.last.conns) << 9;
        self.cps = ewma(self.cps, rate);
        let rate = now.inpkts.wrapping_sub(self.last.inpkts) << 9;
        self.inpps = ewma(self.inpps, rate);
        let rate = now.outpkts.wrapping_sub(self.last.outpkts) << 9;
        self.outpps = ewma(self.outpps, rate);
        let rate = now.inbytes.wrapping_sub(self.last.inbytes) << 4;
        self.inbps = ewma(self.inbps, rate);
        let rate = now.outbytes.wrapping_sub(self.last.outbytes) << 4;
        self.outbps = ewma(self.outbps, rate);
        self.last = *now;
    }

    /// `ip_vs_zero_estimator`: the rates restart from zero at the current counters.
    pub fn zero(&mut self, now: &Counters) {
        *self = Estimator {
            last: *now,
            ..Estimator::default()
        };
    }

    /// `ip_vs_read_estimator`: (cps, inpps, outpps, inbps, outbps).
    pub fn read(&self) -> (u64, u64, u64, u64, u64) {
        (
            (self.cps.wrapping_add(0x1FF)) >> 10,
            (self.inpps.wrapping_add(0x1FF)) >> 10,
            (self.outpps.wrapping_add(0x1FF)) >> 10,
            (self.inbps.wrapping_add(0xF)) >> 5,
            (self.outbps.wrapping_add(0xF)) >> 5,
        )
    }
}

#[derive(Debug, Default)]
struct Slow {
    zero: Counters,
    est: Estimator,
}

/// Counters updated by the forwarding threads (relaxed atomics) and the estimator state.
#[derive(Debug, Default)]
pub struct StatsCell {
    conns: AtomicU64,
    inpkts: AtomicU64,
    outpkts: AtomicU64,
    inbytes: AtomicU64,
    outbytes: AtomicU64,
    slow: Mutex<Slow>,
}

impl StatsCell {
    pub fn add_conn(&self) {
        self.conns.fetch_add(1, Relaxed);
    }

    pub fn add_in(&self, pkts: u64, bytes: u64) {
        if pkts != 0 {
            self.inpkts.fetch_add(pkts, Relaxed);
        }
        if bytes != 0 {
            self.inbytes.fetch_add(bytes, Relaxed);
        }
    }

    pub fn add_out(&self, pkts: u64, bytes: u64) {
        if pkts != 0 {
            self.outpkts.fetch_add(pkts, Relaxed);
        }
        if bytes != 0 {
            self.outbytes.fetch_add(bytes, Relaxed);
        }
    }

    fn absolute(&self) -> Counters {
        Counters {
            conns: self.conns.load(Relaxed),
            inpkts: self.inpkts.load(Relaxed),
            outpkts: self.outpkts.load(Relaxed),
            inbytes: self.inbytes.load(Relaxed),
            outbytes: self.outbytes.load(Relaxed),
        }
    }

    fn slow(&self) -> std::sync::MutexGuard<'_, Slow> {
        self.slow.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The estimator's 2-second tick.
    pub fn tick(&self) {
        let now = self.absolute();
        self.slow().est.tick(&now);
    }

    /// `ipvsadm -Z`: counters restart from zero, so do the rates.
    pub fn zero(&self) {
        let now = self.absolute();
        let mut s = self.slow();
        s.zero = now;
        s.est.zero(&now);
    }

    /// What a listing shows.
    pub fn read(&self) -> Stats {
        let now = self.absolute();
        let s = self.slow();
        let c = now.minus(&s.zero);
        let (cps, inpps, outpps, inbps, outbps) = s.est.read();
        Stats {
            conns: c.conns,
            inpkts: c.inpkts,
            outpkts: c.outpkts,
            inbytes: c.inbytes,
            outbytes: c.outbytes,
            cps,
            inpps,
            outpps,
            inbps,
            outbps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimator_converges_like_the_kernel() {
        // 100 connections/s, 1000 packets/s in, 125000 bytes/s in, for 30 ticks of 2 s.
        let mut e = Estimator::default();
        let mut c = Counters::default();
        let mut seen = vec![];
        for _ in 0..100 {
            c.conns += 200;
            c.inpkts += 2000;
            c.inbytes += 250_000;
            e.tick(&c);
            seen.push(e.read());
        }
        // First tick: a quarter of the rate (rounded as ip_vs_read_estimator does).
        assert_eq!(seen[0].0, 25);
        assert_eq!(seen[0].1, 250);
        assert_eq!(seen[0].3, 31250);
        // Second: 25 + (100-25)/4 = 43.75 -> 44 (rounded).
        assert_eq!(seen[1].0, 44);
        let last = seen.last().unwrap();
        // The fixed point settles a few scaled units under the rate.
        assert_eq!((last.0, last.1), (100, 1000));
        assert!((124_999..=125_000).contains(&last.3), "{}", last.3);
        // No traffic: decays by a quarter per tick.
        e.tick(&c);
        assert_eq!(e.read().0, 75);
    }

    #[test]
    fn exact_fixed_point() {
        let mut e = Estimator::default();
        let c = Counters {
            conns: 3,
            inpkts: 7,
            outpkts: 5,
            inbytes: 1001,
            outbytes: 99,
        };
        e.tick(&c);
        // cps: (3<<9)>>2 = 384; (384+511)>>10 = 0.
        assert_eq!(e.cps, 384);
        assert_eq!(e.read().0, 0);
        // inbps: (1001<<4)>>2 = 4004; (4004+15)>>5 = 125.
        assert_eq!(e.inbps, 4004);
        assert_eq!(e.read().3, 125);
    }

    #[test]
    fn zero_moves_the_zero_point() {
        let s = StatsCell::default();
        s.add_conn();
        s.add_in(2, 100);
        s.add_out(3, 300);
        s.tick();
        let r = s.read();
        assert_eq!(
            (r.conns, r.inpkts, r.inbytes, r.outpkts, r.outbytes),
            (1, 2, 100, 3, 300)
        );
        assert!(r.inbps > 0);
        s.zero();
        assert_eq!(s.read(), Stats::default());
        s.add_conn();
        assert_eq!(s.read().conns, 1);
        s.tick();
        // The rates start again from the zero point.
        assert_eq!(s.read().cps, 0);
        assert_eq!(s.read().inbps, 0);
    }
}
