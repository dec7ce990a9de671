//! Positions in SQL text: sqlparser (and DataFusion through it) says where a problem is as `… at Line: 2,
//! Column: 9`; these read that and turn it into a byte offset in the query, so that the checker and the batch
//! runner point into the query string in the `.stratum` file alike.

/// Parser errors say where in their message: `… at Line: 2, Column: 9`.
pub fn position_in_message(message: &str) -> (Option<u64>, Option<u64>) {
    let number_after = |label: &str| {
        message
            .find(label)
            .and_then(|at| message[at + label.len()..].split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|digits| digits.parse().ok())
    };
    (number_after("Line: "), number_after("Column: "))
}

/// The byte offset in `query` of a 1-based line and column.
pub fn offset_in_query(query: &str, line: u64, column: u64) -> Option<usize> {
    let mut offset = 0;
    for (index, text) in query.split_inclusive('\n').enumerate() {
        if index as u64 + 1 == line {
            let within = text.char_indices().nth(column.saturating_sub(1) as usize).map_or(text.len(), |(at, _)| at);
            return Some(offset + within);
        }
        offset += text.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_come_from_parser_messages_and_map_to_offsets() {
        assert_eq!(
            position_in_message("Expected: end of statement, found: FROMM at Line: 2, Column: 9"),
            (Some(2), Some(9))
        );
        assert_eq!(position_in_message("no position"), (None, None));
        assert_eq!(offset_in_query("SELECT 1\n  FROMM t", 2, 3), Some(11));
        assert_eq!(offset_in_query("SELECT é, x", 1, 11), Some(11), "columns count characters, not bytes");
    }
}
