//! Plain-text tables for the runner's reports, shared by every subcommand.

use std::fmt::Write as _;

/// A table printed with aligned columns: text left-aligned, the rest right-aligned.
#[derive(Debug, Default)]
pub(crate) struct Table {
    /// Column titles.
    header: Vec<String>,
    /// Rows of cells, as many as there are titles.
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Starts a table with these column titles.
    pub(crate) fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; the first cell is a label, the others are usually numbers.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len(), "one cell per column");
        self.rows.push(cells);
    }

    /// Renders the table as Markdown-compatible text.
    pub(crate) fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| {
                let cells = self.rows.iter().map(|r| r[c].chars().count());
                cells
                    .chain([self.header[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut text = String::new();
        let line = |text: &mut String, cells: &[String]| {
            for (c, (cell, width)) in cells.iter().zip(&widths).enumerate() {
                let _ = if c == 0 {
                    write!(text, "| {cell:<width$} ")
                } else {
                    write!(text, "| {cell:>width$} ")
                };
            }
            text.push_str("|\n");
        };
        line(&mut text, &self.header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&mut text, &rule);
        for row in &self.rows {
            line(&mut text, row);
        }
        text
    }
}

/// Formats a rate per second with an SI prefix (`84.2/s`, `877 k/s`, `16.97 M/s`), or `-`.
pub(crate) fn rate(per_s: Option<f64>) -> String {
    match per_s {
        None => "-".to_string(),
        Some(r) if r >= 1e6 => format!("{:.2} M/s", r / 1e6),
        Some(r) if r >= 1e3 => format!("{:.1} k/s", r / 1e3),
        Some(r) => format!("{r:.1} /s"),
    }
}

/// Formats a ratio such as `12.3×`, or `-` when there is none.
pub(crate) fn ratio(r: Option<f64>) -> String {
    match r {
        None => "-".to_string(),
        Some(r) if r >= 100.0 => format!("{r:.0}×"),
        Some(r) => format!("{r:.2}×"),
    }
}

/// Formats a byte count in MiB.
pub(crate) fn mebibytes(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::{rate, Table};

    #[test]
    fn rates_read_well() {
        assert_eq!(rate(Some(84.25)), "84.2 /s");
        assert_eq!(rate(Some(877_000.0)), "877.0 k/s");
        assert_eq!(rate(Some(16_966_000.0)), "16.97 M/s");
        assert_eq!(rate(None), "-");
    }

    #[test]
    fn columns_line_up() {
        let mut table = Table::new(&["what", "n"]);
        table.row(vec!["long label".into(), "1".into()]);
        table.row(vec!["x".into(), "12345".into()]);
        let text = table.render();
        let widths: Vec<usize> = text.lines().map(str::len).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{text}");
        assert!(text.contains("|     1 |"), "{text}");
    }
}
