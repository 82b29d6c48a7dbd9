//! nanny: Piranha-compatible health and weight monitor for one real server. See the library.

fn main() {
    std::process::exit(nanny::cli::main(std::env::args_os().collect()));
}
