//! `warren-bench topic --patterns FILE --keys FILE`: a topic workload read from the user's
//! own files instead of generated.
//!
//! - The patterns file has one binding per line: a binding key, then optionally whitespace
//!   and a destination name (a queue). Lines with the same destination name bind the same
//!   destination; a line without a name binds a destination of its own. Blank lines are
//!   skipped; there are no comments (`#` is a binding key).
//! - The keys file has one routing key per line (the whole line, without its line ending);
//!   blank lines are skipped. The keys are routed in file order, over and over.

use std::collections::HashMap;
use std::path::Path;

use crate::workload::Workload;

/// Reads a workload from a patterns file and a keys file.
pub(crate) fn read_workload(patterns_file: &Path, keys_file: &Path) -> Result<Workload, String> {
    let (patterns, destinations) = parse_patterns(&read(patterns_file)?);
    if patterns.is_empty() {
        return Err(format!("{}: no binding keys", patterns_file.display()));
    }
    let keys: Vec<String> = read(keys_file)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        return Err(format!("{}: no routing keys", keys_file.display()));
    }
    Ok(Workload {
        patterns,
        destinations,
        keys,
    })
}

/// Reads a whole file as UTF-8, with its path in the error.
fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Splits pattern lines into binding keys and destination numbers.
fn parse_patterns(text: &str) -> (Vec<String>, Vec<u64>) {
    let mut names: HashMap<&str, u64> = HashMap::new();
    let mut next = 0_u64;
    let mut patterns = Vec::new();
    let mut destinations = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let line = line.trim();
        let (pattern, name) = match line.split_once(char::is_whitespace) {
            Some((pattern, name)) => (pattern, Some(name.trim())),
            None => (line, None),
        };
        let destination = match name {
            Some(name) => *names.entry(name).or_insert_with(|| {
                next += 1;
                next - 1
            }),
            None => {
                next += 1;
                next - 1
            }
        };
        patterns.push(pattern.to_owned());
        destinations.push(destination);
    }
    (patterns, destinations)
}

#[cfg(test)]
mod tests {
    use super::parse_patterns;

    #[test]
    fn named_destinations_are_shared_and_unnamed_ones_are_not() {
        let (patterns, destinations) = parse_patterns("a.*  q1\n\n#\tq2\nb.#\nc.d q1\n*.e\n");
        assert_eq!(patterns, ["a.*", "#", "b.#", "c.d", "*.e"]);
        assert_eq!(destinations, [0, 1, 2, 0, 3]);
    }
}
