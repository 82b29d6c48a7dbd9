//! lvsd: turns lvs.cf into kernel IPVS state, one nanny per real server, and keeps it true.
//!
//! The binary (`main.rs`) is thin; the work is done here, split so that every decision is a pure
//! function tested without a kernel or processes:
//!
//! | Module | Pure? | What |
//! |---|---|---|
//! | [`plan`] | yes | the desired IPVS table from the config, each real server's health and the sorry-server state |
//! | [`reconcile`] | yes | desired vs actual (one service or all owned ones) → the minimal list of [`ipvs::Change`]s |
//! | [`health`] | yes | a real server's state from its nanny's reports, settling deadlines, the sorry-server rule |
//! | [`monitor`] | yes | nanny argument vectors (Piranha's exact argv) and their keys |
//! | [`reload`] | yes | which nannies to keep, restart, stop or start, which services a reload touches, log lines |
//! | [`priority`] | no | nannies some nice levels below lvsd; lvsd's bursts of kernel work at a low real-time priority; its memory locked |
//! | [`poller`] | no | the main loop's wait: one epoll set of the signal pipe and every report pipe (a pass costs what is ready) |
//! | [`supervisor`] | no | spawning nannies with their report pipe, reading reports, reaping, signalling |
//! | [`kernel`] | no | the IPVS table lvsd works on: the kernel (through [`ipvs::Backend`]) or, with `-t`, a dry run |
//! | [`signals`] | no | SIGTERM/SIGINT/SIGHUP/SIGCHLD/SIGUSR1/SIGUSR2 as flags plus a wake-up pipe |
//! | [`controller`] | no | the daemon: start, main loop, reports, nanny deaths, reload, repair, shutdown |

pub mod controller;
pub mod health;
pub mod kernel;
pub mod monitor;
pub mod plan;
pub mod poller;
pub mod priority;
pub mod reconcile;
pub mod reload;
pub mod signals;
pub mod status;
pub mod supervisor;

#[cfg(test)]
pub(crate) mod testing;
