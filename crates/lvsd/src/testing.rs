//! Unit-test seam only: an in-memory IPVS table with the kernel's errno semantics and request
//! counters, shared between a test and the code under test.

use ipvs::error::{EEXIST, ENOENT, ESRCH};
use ipvs::{
    Backend, Change, Daemon, Destination, Error, Info, Operation, Result, Service, ServiceId,
    Timeouts,
};
use std::cell::{Ref, RefCell, RefMut};
use std::rc::Rc;

#[derive(Debug, Default)]
pub struct FakeKernel {
    /// Services in creation order with their destinations.
    pub services: Vec<(Service, Vec<Destination>)>,
    pub timeouts: Timeouts,
    /// Every change received, in order.
    pub applied: Vec<Change>,
    pub service_list_reads: u64,
    pub service_reads: u64,
    pub dest_reads: u64,
    /// Make every read fail with this errno.
    pub fail_reads: Option<i32>,
}

/// A fake kernel shared by a test and a [`crate::kernel::Table`].
#[derive(Debug, Clone, Default)]
pub struct Shared(Rc<RefCell<FakeKernel>>);

impl Shared {
    pub fn borrow(&self) -> Ref<'_, FakeKernel> {
        self.0.borrow()
    }
    pub fn borrow_mut(&self) -> RefMut<'_, FakeKernel> {
        self.0.borrow_mut()
    }
}

impl FakeKernel {
    pub fn shared() -> Shared {
        Shared::default()
    }

    fn find(&self, id: &ServiceId) -> Option<usize> {
        self.services.iter().position(|(s, _)| s.id == *id)
    }

    /// The table as ipvsadm -Sn-like lines, sorted (for assertions).
    pub fn listing(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (s, ds) in &self.services {
            out.push(crate::reconcile::describe(&Change::AddService(s.clone())));
            for d in ds {
                out.push(crate::reconcile::describe(&Change::AddDestination(
                    s.id,
                    d.clone(),
                )));
            }
        }
        out.sort();
        out
    }

    /// Clears the request counters and the change log.
    pub fn reset_counters(&mut self) {
        self.applied.clear();
        self.service_list_reads = 0;
        self.service_reads = 0;
        self.dest_reads = 0;
    }

    fn read(&self, op: Operation) -> Result<()> {
        match self.fail_reads {
            Some(e) => Err(Error::new(op, e)),
            None => Ok(()),
        }
    }

    fn apply_one(&mut self, change: &Change) -> Result<()> {
        self.applied.push(change.clone());
        let e = |op, errno| Err(Error::new(op, errno));
        match change {
            Change::AddService(s) => {
                if self.find(&s.id).is_some() {
                    return e(Operation::AddService, EEXIST);
                }
                let mut s = s.clone();
                s.flags |= ipvs::flags::HASHED;
                self.services.push((s, Vec::new()));
            }
            Change::EditService(s) => match self.find(&s.id) {
                Some(i) => {
                    let mut s = s.clone();
                    s.flags |= ipvs::flags::HASHED;
                    self.services[i].0 = s;
                }
                None => return e(Operation::EditService, ESRCH),
            },
            Change::DeleteService(id) => match self.find(id) {
                Some(i) => {
                    self.services.remove(i);
                }
                None => return e(Operation::DeleteService, ESRCH),
            },
            Change::AddDestination(id, d) => {
                let Some(i) = self.find(id) else {
                    return e(Operation::AddDestination, ESRCH);
                };
                let ds = &mut self.services[i].1;
                if ds.iter().any(|x| x.addr == d.addr && x.port == d.port) {
                    return e(Operation::AddDestination, EEXIST);
                }
                ds.insert(0, d.clone());
            }
            Change::EditDestination(id, d) => {
                let Some(i) = self.find(id) else {
                    return e(Operation::EditDestination, ESRCH);
                };
                match self.services[i]
                    .1
                    .iter_mut()
                    .find(|x| x.addr == d.addr && x.port == d.port)
                {
                    Some(x) => *x = d.clone(),
                    None => return e(Operation::EditDestination, ENOENT),
                }
            }
            Change::DeleteDestination(id, d) => {
                let Some(i) = self.find(id) else {
                    return e(Operation::DeleteDestination, ESRCH);
                };
                let ds = &mut self.services[i].1;
                let before = ds.len();
                ds.retain(|x| !(x.addr == d.addr && x.port == d.port));
                if ds.len() == before {
                    return e(Operation::DeleteDestination, ENOENT);
                }
            }
            Change::SetTimeouts(t) => {
                if t.tcp != 0 {
                    self.timeouts.tcp = t.tcp;
                }
                if t.tcp_fin != 0 {
                    self.timeouts.tcp_fin = t.tcp_fin;
                }
                if t.udp != 0 {
                    self.timeouts.udp = t.udp;
                }
            }
            Change::Flush => self.services.clear(),
            _ => {}
        }
        Ok(())
    }
}

impl Backend for Shared {
    fn info(&mut self) -> Result<Info> {
        Ok(Info {
            version: 0x010201,
            conn_tab_size: 4096,
        })
    }

    fn services(&mut self) -> Result<Vec<Service>> {
        let mut k = self.0.borrow_mut();
        k.read(Operation::GetServices)?;
        k.service_list_reads += 1;
        Ok(k.services.iter().map(|(s, _)| s.clone()).collect())
    }

    fn service(&mut self, id: &ServiceId) -> Result<Service> {
        let mut k = self.0.borrow_mut();
        k.read(Operation::GetService)?;
        k.service_reads += 1;
        k.find(id)
            .map(|i| k.services[i].0.clone())
            .ok_or_else(|| Error::new(Operation::GetService, ESRCH))
    }

    fn destinations(&mut self, id: &ServiceId) -> Result<Vec<Destination>> {
        let mut k = self.0.borrow_mut();
        k.read(Operation::GetDestinations)?;
        k.dest_reads += 1;
        k.find(id)
            .map(|i| k.services[i].1.clone())
            .ok_or_else(|| Error::new(Operation::GetDestinations, ESRCH))
    }

    fn timeouts(&mut self) -> Result<Timeouts> {
        Ok(self.0.borrow().timeouts)
    }

    fn daemons(&mut self) -> Result<Vec<Daemon>> {
        Ok(Vec::new())
    }

    fn apply(&mut self, change: &Change) -> Result<()> {
        self.0.borrow_mut().apply_one(change)
    }
}
