//! The IPVS table lvsd works on: the kernel through an [`ipvs::Backend`], or, with `-t`
//! (`--test-start`), a dry run that changes nothing and answers reads from what lvsd would have
//! done (starting from an empty table). Counts every request, so a reload can say how many
//! kernel requests it made.

use ipvs::error::ESRCH;
use ipvs::{Backend, Change, Error, Result, ServiceEntry, ServiceId};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Requests made so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Read requests (one per service list, service or destination list).
    pub reads: u64,
    /// Changes sent.
    pub changes: u64,
    /// Changes the kernel refused.
    pub failed: u64,
}

enum Inner {
    Real(Box<dyn Backend>),
    DryRun(HashMap<ServiceId, ServiceEntry>),
}

pub struct Table {
    inner: Inner,
    pub counters: Counters,
}

fn is_absent(e: &Error) -> bool {
    e.errno == ESRCH
}

impl Table {
    pub fn kernel(backend: Box<dyn Backend>) -> Table {
        Table {
            inner: Inner::Real(backend),
            counters: Counters::default(),
        }
    }

    pub fn dry_run() -> Table {
        Table {
            inner: Inner::DryRun(HashMap::default()),
            counters: Counters::default(),
        }
    }

    pub fn is_dry_run(&self) -> bool {
        matches!(self.inner, Inner::DryRun(_))
    }

    /// One service with its destinations (`None` if absent): two requests.
    pub fn read_one(&mut self, id: &ServiceId) -> Result<Option<ServiceEntry>> {
        match &mut self.inner {
            Inner::DryRun(t) => Ok(t.get(id).cloned()),
            Inner::Real(b) => {
                self.counters.reads += 1;
                let service = match b.service(id) {
                    Ok(s) => s,
                    Err(e) if is_absent(&e) => return Ok(None),
                    Err(e) => return Err(e),
                };
                self.counters.reads += 1;
                match b.destinations(id) {
                    Ok(destinations) => Ok(Some(ServiceEntry {
                        service,
                        destinations,
                    })),
                    Err(e) if is_absent(&e) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// The services among `ids` that exist, with their destinations: one service listing, then
    /// one destination listing per owned service present. Services that are not in `ids` are not
    /// looked at beyond the listing.
    pub fn read_owned(
        &mut self,
        ids: &HashSet<ServiceId>,
    ) -> Result<HashMap<ServiceId, ServiceEntry>> {
        match &mut self.inner {
            Inner::DryRun(t) => Ok(t
                .iter()
                .filter(|(id, _)| ids.contains(id))
                .map(|(id, e)| (*id, e.clone()))
                .collect()),
            Inner::Real(b) => {
                self.counters.reads += 1;
                let services = b.services()?;
                let mut out = HashMap::default();
                for service in services.into_iter().filter(|s| ids.contains(&s.id)) {
                    self.counters.reads += 1;
                    match b.destinations(&service.id) {
                        Ok(destinations) => {
                            out.insert(
                                service.id,
                                ServiceEntry {
                                    service,
                                    destinations,
                                },
                            );
                        }
                        // Deleted between the two requests.
                        Err(e) if is_absent(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(out)
            }
        }
    }

    /// Applies changes in order, batched; one result per change.
    pub fn apply(&mut self, changes: &[Change]) -> Vec<Result<()>> {
        if changes.is_empty() {
            return Vec::new();
        }
        self.counters.changes += changes.len() as u64;
        let results = match &mut self.inner {
            Inner::Real(b) => b.apply_all(changes),
            Inner::DryRun(t) => changes.iter().map(|c| dry_apply(t, c)).collect(),
        };
        self.counters.failed += results.iter().filter(|r| r.is_err()).count() as u64;
        results
    }
}

fn dry_apply(t: &mut HashMap<ServiceId, ServiceEntry>, change: &Change) -> Result<()> {
    match change {
        Change::AddService(s) | Change::EditService(s) => {
            let e = t.entry(s.id).or_insert_with(|| ServiceEntry {
                service: s.clone(),
                destinations: Vec::new(),
            });
            e.service = s.clone();
        }
        Change::DeleteService(id) => {
            t.remove(id);
        }
        Change::AddDestination(id, d) | Change::EditDestination(id, d) => {
            if let Some(e) = t.get_mut(id) {
                e.destinations
                    .retain(|x| !(x.addr == d.addr && x.port == d.port));
                e.destinations.push(d.clone());
            }
        }
        Change::DeleteDestination(id, d) => {
            if let Some(e) = t.get_mut(id) {
                e.destinations
                    .retain(|x| !(x.addr == d.addr && x.port == d.port));
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeKernel;
    use ipvs::{Destination, Service};

    fn id(port: u16) -> ServiceId {
        ServiceId::Address {
            protocol: ipvs::Protocol::Tcp,
            addr: "192.0.2.1".parse().unwrap(),
            port,
        }
    }

    #[test]
    fn reads_count_requests_and_absent_is_none() {
        let fake = FakeKernel::shared();
        let mut t = Table::kernel(Box::new(fake.clone()));
        assert_eq!(t.read_one(&id(80)).unwrap(), None);
        assert_eq!(t.counters.reads, 1);
        let r = t.apply(&[
            Change::AddService(Service::new(id(80))),
            Change::AddService(Service::new(id(81))),
            Change::AddDestination(
                id(80),
                Destination::new("198.51.100.1".parse().unwrap(), 80),
            ),
            Change::AddService(Service::new(id(80))),
        ]);
        assert!(r[..3].iter().all(|r| r.is_ok()));
        assert!(r[3].is_err());
        assert_eq!(t.counters.changes, 4);
        assert_eq!(t.counters.failed, 1);
        let e = t.read_one(&id(80)).unwrap().unwrap();
        assert_eq!(e.destinations.len(), 1);
        assert_eq!(t.counters.reads, 3);
        let owned: HashSet<ServiceId> = [id(80), id(99)].into_iter().collect();
        let m = t.read_owned(&owned).unwrap();
        assert_eq!(m.len(), 1);
        assert!(m.contains_key(&id(80)));
        // One listing plus one destination dump for the one owned service present.
        assert_eq!(t.counters.reads, 5);
        assert_eq!(fake.borrow().dest_reads, 2);
    }

    #[test]
    fn dry_run_keeps_what_it_would_have_done() {
        let mut t = Table::dry_run();
        assert!(t.is_dry_run());
        let d = Destination::new("198.51.100.1".parse().unwrap(), 80);
        let mut d2 = d.clone();
        d2.weight = 5;
        t.apply(&[
            Change::AddService(Service::new(id(80))),
            Change::AddDestination(id(80), d.clone()),
            Change::EditDestination(id(80), d2.clone()),
        ]);
        let e = t.read_one(&id(80)).unwrap().unwrap();
        assert_eq!(e.destinations, vec![d2]);
        t.apply(&[Change::DeleteDestination(id(80), d)]);
        assert!(t
            .read_one(&id(80))
            .unwrap()
            .unwrap()
            .destinations
            .is_empty());
        t.apply(&[Change::DeleteService(id(80))]);
        assert_eq!(t.read_one(&id(80)).unwrap(), None);
        assert_eq!(t.counters.reads, 0);
    }
}
