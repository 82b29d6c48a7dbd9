//! Links the `nanny` executable as non-PIE on Linux/glibc.
//!
//! A position-independent executable has its relocated read-only data (`.data.rel.ro`: vtables
//! and the regex crate's Unicode tables, ~230 KiB here) written by the dynamic loader at start,
//! so every process holds a private copy. lvsd runs one nanny per real server (a thousand on a
//! big director); linked at a fixed address that data stays shared, clean and file-backed, and a
//! nanny costs ~135 KiB of Pss instead of ~370 KiB (docs/performance.md, "nanny"). Shared
//! libraries, the heap and the stack are still randomised. Set `NANNY_PIE=1` to keep PIE.
fn main() {
    println!("cargo:rerun-if-env-changed=NANNY_PIE");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let keep_pie = std::env::var_os("NANNY_PIE").is_some_and(|v| v == "1");
    if os == "linux" && env == "gnu" && !keep_pie {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
