//! The Warren benchmark runner (work in progress).

fn main() {}
