//! One interface to an IPVS table, whatever holds it: the kernel (generic netlink) or the
//! userspace forwarding daemon `ipvsd` (control socket, [`crate::userspace`]). Callers (ipvsadm,
//! lvsd, pulse) see only this trait.

use crate::error::Result;
use crate::model::*;
use serde::{Deserialize, Serialize};

/// A change to the table, for batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    AddService(Service),
    EditService(Service),
    DeleteService(ServiceId),
    AddDestination(ServiceId, Destination),
    EditDestination(ServiceId, Destination),
    DeleteDestination(ServiceId, Destination),
    Flush,
    Zero(Option<ServiceId>),
    SetTimeouts(Timeouts),
    StartDaemon(Daemon),
    StopDaemon(DaemonState),
}

/// A service with its destinations, as one listing returns them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    pub service: Service,
    pub destinations: Vec<Destination>,
}

pub trait Backend {
    /// Version and connection table size.
    fn info(&mut self) -> Result<Info>;
    /// Every service, in the backend's order (ipvsadm sorts for display).
    fn services(&mut self) -> Result<Vec<Service>>;
    /// One service; `No such service` when absent.
    fn service(&mut self, id: &ServiceId) -> Result<Service>;
    /// The destinations of a service, in the backend's order.
    fn destinations(&mut self, id: &ServiceId) -> Result<Vec<Destination>>;
    fn timeouts(&mut self) -> Result<Timeouts>;
    fn daemons(&mut self) -> Result<Vec<Daemon>>;
    /// Applies one change.
    fn apply(&mut self, change: &Change) -> Result<()>;

    /// Applies many changes, in order, as few round trips as the backend allows; one result per
    /// change (a failed change does not stop the others).
    fn apply_all(&mut self, changes: &[Change]) -> Vec<Result<()>> {
        changes.iter().map(|c| self.apply(c)).collect()
    }

    /// Every service with its destinations.
    fn table(&mut self) -> Result<Vec<ServiceEntry>> {
        let services = self.services()?;
        let mut out = Vec::with_capacity(services.len());
        for service in services {
            let destinations = self.destinations(&service.id)?;
            out.push(ServiceEntry {
                service,
                destinations,
            });
        }
        Ok(out)
    }

    /// Like [`table`](Self::table), for listings that print no destination statistics: a
    /// backend may leave destinations' `stats` zero if that makes the listing faster. Every
    /// other field is as `table` gives it.
    fn table_brief(&mut self) -> Result<Vec<ServiceEntry>> {
        self.table()
    }

    /// The connection table (`ipvsadm -c`) of a backend that keeps it itself, as
    /// `/proc/net/ip_vs_conn` would list it (see [`proc_conn_text`]); `None` for the kernel,
    /// whose table ipvsadm reads from `/proc/net/ip_vs_conn`.
    fn connections(&mut self) -> Option<Result<Vec<Connection>>> {
        None
    }

    /// One line naming a backend that is not the kernel's IPVS (`ipvsadm -v` prints it after
    /// the version); `None` for the kernel.
    fn description(&mut self) -> Option<String> {
        None
    }
}
