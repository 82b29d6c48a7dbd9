//! Linux IPVS: the table model, the [`Backend`] interface, the generic-netlink kernel backend and
//! the client of the userspace forwarding daemon `ipvsd` ([`userspace`]).

pub mod backend;
pub mod error;
pub mod kernel;
pub mod model;
pub mod netlink;
pub mod sockopt;
pub mod userspace;

pub use backend::{Backend, Change, ServiceEntry};
pub use error::{Error, Operation, Result};
pub use model::*;

/// The environment variable that chooses the backend: `kernel`, `userspace`, or `auto` (the
/// default, also when unset or empty).
pub const BACKEND_ENV: &str = "IPVS_BACKEND";

/// Which IPVS [`open`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The kernel's IPVS when the kernel has it (the generic netlink family "IPVS" exists,
    /// after loading `ip_vs` as ipvsadm does), otherwise the userspace daemon if its control
    /// socket exists.
    Auto,
    Kernel,
    Userspace,
}

impl Choice {
    /// `$IPVS_BACKEND`.
    pub fn from_env() -> Result<Choice> {
        match std::env::var(BACKEND_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(Choice::Auto),
            Ok(v) => Choice::parse(&v),
            Err(std::env::VarError::NotUnicode(_)) => Choice::parse("?"),
        }
    }

    pub fn parse(s: &str) -> Result<Choice> {
        match s {
            "" | "auto" => Ok(Choice::Auto),
            "kernel" => Ok(Choice::Kernel),
            "userspace" => Ok(Choice::Userspace),
            other => Err(Error {
                operation: Operation::Init,
                errno: error::EIO,
                detail: Some(format!(
                    "{BACKEND_ENV}={other}: must be kernel, userspace or auto"
                )),
            }),
        }
    }
}

/// Opens IPVS as `$IPVS_BACKEND` says ([`Choice`]); the userspace daemon is reached at
/// `$IPVSD_SOCKET` (default `/run/ipvsd.sock`).
pub fn open() -> Result<Box<dyn Backend>> {
    open_with(Choice::from_env()?, &userspace::socket_path())
}

/// Opens the IPVS `choice` names, the userspace daemon at `socket`.
pub fn open_with(choice: Choice, socket: &std::path::Path) -> Result<Box<dyn Backend>> {
    match choice {
        Choice::Kernel => Ok(Box::new(kernel::KernelBackend::open()?)),
        Choice::Userspace => Ok(Box::new(userspace::UserspaceBackend::connect(socket)?)),
        Choice::Auto => match kernel::KernelBackend::open() {
            Ok(k) => Ok(Box::new(k)),
            // No IPVS in this kernel: the daemon, when it runs; otherwise the kernel's error
            // (what ipvsadm always said).
            Err(e) => {
                if std::fs::symlink_metadata(socket).is_ok() {
                    Ok(Box::new(userspace::UserspaceBackend::connect(socket)?))
                } else {
                    Err(e)
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_choice() {
        assert_eq!(Choice::parse("").unwrap(), Choice::Auto);
        assert_eq!(Choice::parse("auto").unwrap(), Choice::Auto);
        assert_eq!(Choice::parse("kernel").unwrap(), Choice::Kernel);
        assert_eq!(Choice::parse("userspace").unwrap(), Choice::Userspace);
        let e = Choice::parse("Kernel").unwrap_err();
        assert_eq!(
            e.message(),
            "IPVS_BACKEND=Kernel: must be kernel, userspace or auto"
        );
    }

    #[test]
    fn userspace_without_a_daemon() {
        let path = std::path::Path::new("/nonexistent/ipvsd.sock");
        let e = match open_with(Choice::Userspace, path) {
            Err(e) => e,
            Ok(_) => panic!("connected to nothing"),
        };
        assert_eq!(e.operation, Operation::Init);
        assert_eq!(
            e.message(),
            "userspace IPVS (ipvsd, /nonexistent/ipvsd.sock): No such file or directory"
        );
    }
}
