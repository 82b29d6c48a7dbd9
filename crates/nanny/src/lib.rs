//! nanny: health and weight monitor for one real server.
//!
//! `report` is the nanny -> lvsd line protocol (the one place it is encoded and decoded).

pub mod report;
