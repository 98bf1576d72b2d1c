//! End-to-end tests against a real Dovecot (being written).
fn main() {}
