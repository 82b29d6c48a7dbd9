//! `ipvsd`: IPVS in userspace.
pub mod control;
pub mod dest;
pub mod engine;
pub mod sched;
pub mod stats;
pub mod sys;
pub mod table;
pub mod tcpstate;
