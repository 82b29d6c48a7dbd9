//! IPVS errors with the texts ipvsadm prints for them (libipvs `ipvs_strerror`: the operation's
//! own texts first, then the generic ones, then `strerror`).

use std::fmt;

/// The operation that failed: the same errno reads differently per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Init,
    GetInfo,
    AddService,
    EditService,
    DeleteService,
    ZeroService,
    Zero,
    Flush,
    GetServices,
    GetService,
    GetDestinations,
    AddDestination,
    EditDestination,
    DeleteDestination,
    SetTimeouts,
    GetTimeouts,
    StartDaemon,
    StopDaemon,
    GetDaemons,
}

/// A failed IPVS operation: the kernel's errno (positive), or a local transport problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub operation: Operation,
    pub errno: i32,
    /// Extra context for errors that did not come from the kernel (decode failures).
    pub detail: Option<String>,
}

pub type Result<T> = std::result::Result<T, Error>;

pub const EPERM: i32 = 1;
pub const ENOENT: i32 = 2;
pub const ESRCH: i32 = 3;
pub const EIO: i32 = 5;
pub const ENOMEM: i32 = 12;
pub const EEXIST: i32 = 17;
pub const ENODEV: i32 = 19;
pub const EINVAL: i32 = 22;
pub const ERANGE: i32 = 34;
pub const EMSGSIZE: i32 = 90;
pub const ENOPROTOOPT: i32 = 92;
pub const EOPNOTSUPP: i32 = 95;
pub const EAFNOSUPPORT: i32 = 97;

impl Error {
    pub fn new(operation: Operation, errno: i32) -> Error {
        Error {
            operation,
            errno,
            detail: None,
        }
    }

    /// A reply the codec could not decode.
    pub fn decode(operation: Operation, detail: impl Into<String>) -> Error {
        Error {
            operation,
            errno: EIO,
            detail: Some(detail.into()),
        }
    }

    /// The text ipvsadm prints for this error.
    pub fn message(&self) -> String {
        use Operation::*;
        let specific = match (self.operation, self.errno) {
            (AddService, EEXIST) => Some("Service already exists"),
            (AddService | EditService, ENOENT) => Some("Scheduler or persistence engine not found"),
            (
                EditService | DeleteService | ZeroService | GetServices | GetDestinations
                | GetService,
                ESRCH,
            ) => Some("No such service"),
            (AddDestination | EditDestination | DeleteDestination, ESRCH) => {
                Some("Service not defined")
            }
            (AddDestination, EEXIST) => Some("Destination already exists"),
            (EditDestination | DeleteDestination, ENOENT) => Some("No such destination"),
            (StartDaemon, EEXIST) => Some("Daemon has already run"),
            (StopDaemon, ESRCH) => Some("No daemon is running"),
            _ => None,
        };
        if let Some(s) = specific {
            return s.to_string();
        }
        let generic = match self.errno {
            EPERM => Some("Permission denied (you must be root)"),
            EINVAL => {
                Some("Invalid operation.  Possibly wrong module version, address not unicast, ...")
            }
            ENOPROTOOPT => Some("Protocol not available"),
            ENOMEM => Some("Memory allocation problem"),
            EOPNOTSUPP => Some("Operation not supported with IPv6"),
            EAFNOSUPPORT => Some("Operation not supported with specified address family"),
            EMSGSIZE => Some("Module is wrong version"),
            _ => None,
        };
        if let Some(s) = generic {
            return s.to_string();
        }
        if let Some(d) = &self.detail {
            return d.clone();
        }
        let text = std::io::Error::from_raw_os_error(self.errno).to_string();
        match text.rfind(" (os error ") {
            Some(i) => text[..i].to_string(),
            None => text,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_as_ipvsadm() {
        let m = |op, e| Error::new(op, e).message();
        assert_eq!(m(Operation::AddService, EEXIST), "Service already exists");
        assert_eq!(m(Operation::DeleteService, ESRCH), "No such service");
        assert_eq!(m(Operation::AddDestination, ESRCH), "Service not defined");
        assert_eq!(m(Operation::EditDestination, ENOENT), "No such destination");
        assert_eq!(
            m(Operation::EditService, ENOENT),
            "Scheduler or persistence engine not found"
        );
        assert_eq!(m(Operation::StartDaemon, EEXIST), "Daemon has already run");
        assert_eq!(m(Operation::StopDaemon, ESRCH), "No daemon is running");
        assert_eq!(m(Operation::StartDaemon, ENODEV), "No such device");
        assert_eq!(
            m(Operation::AddDestination, ERANGE),
            "Numerical result out of range"
        );
        assert_eq!(
            m(Operation::Flush, EPERM),
            "Permission denied (you must be root)"
        );
    }
}
