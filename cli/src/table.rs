//! Plain tables for `ps`, `members` and `modules`: columns as wide as their
//! widest cell (names of any length line up), two spaces between columns,
//! no borders, never wrapped (one row stays one line, for grep and awk),
//! no trailing spaces.

use comfy_table::{CellAlignment, ContentArrangement, Table};

/// A table with these column titles; `right` names the columns aligned
/// to the right (numbers).
pub fn new(header: &[&str], right: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::NOTHING).set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(header.to_vec());
    let last = header.len().saturating_sub(1);
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i == last { 0 } else { 2 }));
        if right.contains(&header[i]) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// The table's lines, each ending in a newline.
pub fn render(table: &Table) -> String {
    let mut text = table.trim_fmt();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut table = super::new(&["RUN", "PID", "STATE"], &["PID"]);
        table.add_row(vec!["a-very-long-run-name", "7", "running"]);
        table.add_row(vec!["r1", "4242", "stopped"]);
        assert_eq!(
            super::render(&table),
            "RUN                    PID  STATE\na-very-long-run-name     7  running\nr1                    4242  stopped\n"
        );
    }
}
