//! Criterion benchmarks of topic matching (work in progress).

fn main() {}
