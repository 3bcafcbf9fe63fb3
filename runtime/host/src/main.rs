//! `tern`: the host CLI.
fn main() {}
