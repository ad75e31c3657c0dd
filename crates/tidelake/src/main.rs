//! The `tidelake` command. The SQL shell lands with the storage engine
//! (issue 2); until then the binary says so instead of pretending.

fn main() {
    eprintln!("tidelake: the SQL shell is not built yet (storage engine in progress, see docs/architecture.md)");
    std::process::exit(2);
}
