//! piranha-gui: the web configuration and monitoring tool of the LVS cluster suite, rebuilt from
//! Piranha's PHP GUI (spec §7) without its holes: no default password (CVE-2000-0248), every
//! method of every route authenticated (CVE-2013-6492), CSRF tokens on every state-changing
//! request, rate-limited logins, atomic and serialised writes of lvs.cf.
//!
//! | Module | What |
//! |---|---|
//! | [`http`] | a small HTTP/1.1 server with strict limits, optional TLS |
//! | [`auth`] | Argon2id password file, sessions, CSRF tokens, login rate limits |
//! | [`forms`] | urlencoded form bodies |
//! | [`edit`] | panel fields to lvs.cf (strict parsing, per-field errors) |
//! | [`store`] | lvs.cf read-modify-write under a lock, serial_no, .bak |
//! | [`state`] | status files of pulse and lvsd, /proc/net/ip_vs, processes, apply (SIGHUP) |
//! | [`metrics`] | Prometheus text |
//! | [`pages`] | the HTML panels |
//! | [`app`] | routing, authentication, the JSON API |
//! | [`tls`] | rustls configuration from PEM files |

pub mod app;
pub mod auth;
pub mod edit;
pub mod forms;
pub mod http;
pub mod metrics;
pub mod pages;
pub mod state;
pub mod store;
pub mod tls;
