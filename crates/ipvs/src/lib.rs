//! Linux IPVS: the table model, the [`Backend`] interface, and the generic-netlink kernel backend.

pub mod backend;
pub mod error;
pub mod kernel;
pub mod model;
pub mod netlink;
pub mod sockopt;

pub use backend::{Backend, Change, ServiceEntry};
pub use error::{Error, Operation, Result};
pub use model::*;

/// Opens the kernel's IPVS (generic netlink family "IPVS").
pub fn open() -> Result<Box<dyn Backend>> {
    Ok(Box::new(kernel::KernelBackend::open()?))
}
