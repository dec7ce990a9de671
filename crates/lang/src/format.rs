//! Canonical formatting (`stratum fmt`): one statement per line, two-space indentation, at most one blank line
//! in a row, comments kept. Formatting is idempotent and preserves meaning: the formatted file lowers to the
//! same IR (a property test checks both).

use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Span};
use crate::syntax::ast::*;
use crate::syntax::lexer::{TokenKind, lex};
use crate::syntax::parser::parse;
use stratum_core::ir::{BinaryOp, UnaryOp};

/// Formats a file. Files with syntax errors are not formatted: the errors are returned instead.
pub fn format(text: &str) -> Result<String, Vec<Diagnostic>> {
    let (file, diagnostics) = parse(FileId(0), text);
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    let comments: Vec<Span> = lex(FileId(0), text)
        .0
        .into_iter()
        .filter(|token| token.kind == TokenKind::Comment)
        .map(|token| token.span)
        .collect();
    let mut formatter = Formatter { text, comments, next_comment: 0, out: String::with_capacity(text.len() + 64) };
    formatter.statements(&file.statements, 0, text.len() as u32, 0);
    let mut out = formatter.out;
    while out.ends_with("\n\n") {
        out.pop();
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

struct Formatter<'t> {
    text: &'t str,
    comments: Vec<Span>,
    next_comment: usize,
    out: String,
}

impl Formatter<'_> {
    fn indent(&mut self, level: usize) {
        for _ in 0..level {
            self.out.push_str("  ");
        }
    }

    /// Whether the original text between two offsets holds a blank line.
    fn blank_between(&self, start: u32, end: u32) -> bool {
        let between = self.text.get(start as usize..end as usize).unwrap_or("");
        between.matches('\n').count() >= 2
    }

    fn comment_text(&self, span: Span) -> &str {
        self.text[span.start as usize..span.end as usize].trim_end()
    }

    /// Prints statements of one block (or the file) at `level`, with the comments between `start` and `end`.
    fn statements(&mut self, statements: &[Statement], start: u32, end: u32, level: usize) {
        // Where the last printed element ended in the original text (None before the first), for blank lines.
        let mut previous_end: Option<u32> = None;
        let mut cursor = start;
        for (index, statement) in statements.iter().enumerate() {
            let next_start = statements.get(index + 1).map(|next| next.span.start as usize).unwrap_or(usize::MAX);
            self.comment_lines_before(statement.span.start, level, &mut previous_end, &mut cursor);
            if previous_end.is_some() && self.blank_between(cursor, statement.span.start) {
                self.out.push('\n');
            }
            self.indent(level);
            self.statement(statement, level);
            // Comments inside the statement that no nested block took, and a comment on its last line, trail it.
            let line_end = self.text[statement.span.end as usize..]
                .find('\n')
                .map(|offset| statement.span.end as usize + offset)
                .unwrap_or(self.text.len());
            let limit = line_end.min(next_start).min(end as usize);
            let mut trailing = Vec::new();
            while let Some(comment) = self.next_comment_before(limit as u32) {
                trailing.push(comment);
            }
            for (position, comment) in trailing.iter().enumerate() {
                if position == 0 {
                    self.out.push_str("  ");
                } else {
                    self.out.push('\n');
                    self.indent(level);
                }
                let text = self.comment_text(*comment).to_string();
                self.out.push_str(&text);
            }
            cursor = trailing.last().map(|comment| comment.end).unwrap_or(statement.span.end);
            self.out.push('\n');
            previous_end = Some(cursor);
        }
        self.comment_lines_before(end, level, &mut previous_end, &mut cursor);
    }

    /// Takes the next comment if it starts before `limit`.
    fn next_comment_before(&mut self, limit: u32) -> Option<Span> {
        let comment = self.comments.get(self.next_comment).copied().filter(|comment| comment.start < limit)?;
        self.next_comment += 1;
        Some(comment)
    }

    /// Prints, each on its own line, the comments that start before `limit`, keeping one blank line where the
    /// original had any.
    fn comment_lines_before(&mut self, limit: u32, level: usize, previous_end: &mut Option<u32>, cursor: &mut u32) {
        while let Some(comment) = self.next_comment_before(limit) {
            if previous_end.is_some() && self.blank_between(*cursor, comment.start) {
                self.out.push('\n');
            }
            self.indent(level);
            let text = self.comment_text(comment).to_string();
            self.out.push_str(&text);
            self.out.push('\n');
            *previous_end = Some(comment.end);
            *cursor = comment.end;
        }
    }

    fn statement(&mut self, statement: &Statement, level: usize) {
        match &statement.kind {
            StatementKind::Attribute { name, value } => {
                self.out.push_str(&name.text);
                self.out.push_str(" = ");
                self.expr(value, 0, level);
            }
            StatementKind::Field { name, data_type, modifiers } => {
                self.out.push_str(&name.text);
                self.out.push_str(": ");
                self.data_type(data_type);
                for modifier in modifiers {
                    self.out.push(' ');
                    self.out.push_str(&modifier.text);
                }
            }
            StatementKind::Bound { name, op, value, .. } => {
                self.out.push_str(&name.text);
                self.out.push(' ');
                self.out.push_str(op.symbol());
                self.out.push(' ');
                self.expr(value, 0, level);
            }
            StatementKind::Section(section) => self.section(section, level),
            StatementKind::Expr(expr) => self.expr(expr, 0, level),
        }
    }

    fn section(&mut self, section: &Section, level: usize) {
        self.out.push_str(&section.keyword.text);
        for part in &section.header {
            match part {
                HeaderPart::Name(name) => {
                    self.out.push(' ');
                    self.out.push_str(&name.text);
                }
                HeaderPart::Text(text) => {
                    self.out.push(' ');
                    self.string(text);
                }
                HeaderPart::Arrow(_) => self.out.push_str(" ->"),
                HeaderPart::Kind(kind) => {
                    self.out.push_str(": ");
                    self.out.push_str(&kind.text);
                }
            }
        }
        if let Some(body) = &section.body {
            self.out.push(' ');
            self.block(body, level);
        }
    }

    fn block(&mut self, body: &Block, level: usize) {
        let has_comments = self.comments.get(self.next_comment).is_some_and(|comment| comment.start < body.span.end);
        if body.statements.is_empty() && !has_comments {
            self.out.push_str("{}");
            return;
        }
        self.out.push_str("{\n");
        self.statements(&body.statements, body.span.start + 1, body.span.end, level + 1);
        self.indent(level);
        self.out.push('}');
    }

    fn data_type(&mut self, data_type: &TypeExpr) {
        match &data_type.kind {
            TypeKind::Named(name) => self.out.push_str(&name.text),
            TypeKind::Generic { name, argument } => {
                self.out.push_str(&name.text);
                self.out.push('<');
                self.data_type(argument);
                self.out.push('>');
            }
            TypeKind::Optional(inner) => {
                self.data_type(inner);
                self.out.push('?');
            }
        }
    }

    fn string(&mut self, literal: &StringLiteral) {
        if literal.triple {
            self.out.push_str("\"\"\"");
            self.out.push_str(&literal.value);
            self.out.push_str("\"\"\"");
            return;
        }
        self.out.push('"');
        for character in literal.value.chars() {
            match character {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\t' => self.out.push_str("\\t"),
                '\r' => self.out.push_str("\\r"),
                '\0' => self.out.push_str("\\0"),
                other if other.is_control() => self.out.push_str(&format!("\\u{{{:x}}}", other as u32)),
                other => self.out.push(other),
            }
        }
        self.out.push('"');
    }

    /// Prints an expression, in parentheses when its precedence is below `minimum`.
    fn expr(&mut self, expr: &Expr, minimum: u8, level: usize) {
        let own = precedence(expr);
        let parenthesised = own < minimum;
        if parenthesised {
            self.out.push('(');
        }
        match &expr.kind {
            ExprKind::Number { text, .. } => self.out.push_str(text),
            ExprKind::Quantity { text, unit, .. } => {
                self.out.push_str(text);
                if !unit.starts_with('/') && unit != "%" {
                    self.out.push(' ');
                }
                self.out.push_str(unit);
            }
            ExprKind::Accelerator { count_text, kind, .. } => {
                self.out.push_str(count_text);
                self.out.push_str(" x ");
                self.string(kind);
            }
            ExprKind::String(literal) => self.string(literal),
            ExprKind::Bool(value) => self.out.push_str(if *value { "true" } else { "false" }),
            ExprKind::Name(name) => self.out.push_str(name),
            ExprKind::Member { base, member } => {
                self.expr(base, POSTFIX, level);
                self.out.push('.');
                self.out.push_str(&member.text);
            }
            ExprKind::Call { function, arguments } => {
                self.out.push_str(&function.text);
                self.out.push('(');
                self.comma_separated(arguments, level);
                self.out.push(')');
            }
            ExprKind::List(items) => {
                self.out.push('[');
                self.comma_separated(items, level);
                self.out.push(']');
            }
            ExprKind::Map(entries) => {
                if entries.is_empty() {
                    self.out.push_str("{}");
                } else {
                    self.out.push_str("{ ");
                    for (index, entry) in entries.iter().enumerate() {
                        if index > 0 {
                            self.out.push_str(", ");
                        }
                        if entry.key_is_string {
                            self.string(&StringLiteral {
                                value: entry.key.clone(),
                                triple: false,
                                span: entry.key_span,
                            });
                        } else {
                            self.out.push_str(&entry.key);
                        }
                        self.out.push_str(": ");
                        self.expr(&entry.value, 0, level);
                    }
                    self.out.push_str(" }");
                }
            }
            ExprKind::Object { kind, body } => {
                self.out.push_str(&kind.text);
                self.out.push(' ');
                let inline =
                    body.statements.iter().all(|statement| match &statement.kind {
                        StatementKind::Attribute { .. } | StatementKind::Bound { .. } => true,
                        StatementKind::Section(section) => section.body.is_some(),
                        _ => false,
                    }) && self.comments.get(self.next_comment).is_none_or(|comment| comment.start >= body.span.end);
                if inline && !body.statements.is_empty() {
                    self.out.push_str("{ ");
                    for (index, statement) in body.statements.iter().enumerate() {
                        if index > 0 {
                            self.out.push_str("  ");
                        }
                        self.statement(statement, level);
                    }
                    self.out.push_str(" }");
                } else {
                    self.block(body, level);
                }
            }
            ExprKind::Unary { op, operand } => match op {
                UnaryOp::Not => {
                    self.out.push_str("not ");
                    self.expr(operand, NOT, level);
                }
                UnaryOp::Negate => {
                    self.out.push('-');
                    self.expr(operand, UNARY, level);
                }
            },
            ExprKind::Binary { op, left, right } => {
                let own = binary_precedence(*op);
                let comparison = own == COMPARISON;
                self.expr(left, if comparison { own + 1 } else { own }, level);
                self.out.push(' ');
                self.out.push_str(op.symbol());
                self.out.push(' ');
                self.expr(right, own + 1, level);
            }
            ExprKind::Range { start, end } => {
                self.expr(start, OR, level);
                self.out.push_str("..");
                self.expr(end, OR, level);
            }
            ExprKind::If { condition, then, otherwise } => {
                // The else part reads as far as it goes, so a chained `else if` needs no parentheses.
                self.out.push_str("if ");
                self.expr(condition, OR, level);
                self.out.push_str(" then ");
                self.expr(then, OR, level);
                self.out.push_str(" else ");
                self.expr(otherwise, IF, level);
            }
            ExprKind::Clause { base, keyword, argument, .. } => {
                // Clauses chain to the left: `x by k within 5 min`.
                self.expr(base, CLAUSE, level);
                self.out.push(' ');
                self.out.push_str(keyword.word());
                self.out.push(' ');
                self.expr(argument, RANGE, level);
            }
            ExprKind::Error => {}
        }
        if parenthesised {
            self.out.push(')');
        }
    }

    fn comma_separated(&mut self, items: &[Expr], level: usize) {
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                self.out.push_str(", ");
            }
            self.expr(item, 0, level);
        }
    }
}

const CLAUSE: u8 = 0;
const RANGE: u8 = 1;
/// An `if` stands alone or in parentheses: its `else` part would take in an operator that follows it.
const IF: u8 = 2;
const OR: u8 = 3;
const AND: u8 = 4;
const NOT: u8 = 5;
const COMPARISON: u8 = 6;
const ADDITIVE: u8 = 7;
const MULTIPLICATIVE: u8 = 8;
const UNARY: u8 = 9;
const POSTFIX: u8 = 10;

fn binary_precedence(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::Or => OR,
        BinaryOp::And => AND,
        BinaryOp::Add | BinaryOp::Subtract => ADDITIVE,
        BinaryOp::Multiply | BinaryOp::Divide => MULTIPLICATIVE,
        _ => COMPARISON,
    }
}

fn precedence(expr: &Expr) -> u8 {
    match &expr.kind {
        ExprKind::Clause { .. } => CLAUSE,
        ExprKind::Range { .. } => RANGE,
        ExprKind::If { .. } => IF,
        ExprKind::Binary { op, .. } => binary_precedence(*op),
        ExprKind::Unary { op: UnaryOp::Not, .. } => NOT,
        ExprKind::Unary { op: UnaryOp::Negate, .. } => UNARY,
        _ => POSTFIX,
    }
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn formats_one_statement_per_line_and_keeps_comments() {
        let input =
            "# the app\napp demo \"Demo\"\n\n\n\nnode a { tier = edge  cpu = 4  # four cores\n memory = 4 GiB }\n";
        let expected =
            "# the app\napp demo \"Demo\"\n\nnode a {\n  tier = edge\n  cpu = 4  # four cores\n  memory = 4 GiB\n}\n";
        let formatted = format(input).unwrap();
        assert_eq!(formatted, expected);
        assert_eq!(format(&formatted).unwrap(), formatted);
    }

    #[test]
    fn keeps_needed_parentheses_only() {
        let formatted = format("x = (a + b) * c\ny = a + (b * c)\nz = not (a and b)\n").unwrap();
        assert_eq!(formatted, "x = (a + b) * c\ny = a + b * c\nz = not (a and b)\n");
    }

    #[test]
    fn keeps_decisions_as_they_read() {
        let input = "x = if a > b then a else if b > 0 then b else 0\ny = (if a then 1 else 2) + 3\nz = 1 + (if a then 1 else 2)\n";
        let formatted = format(input).unwrap();
        assert_eq!(formatted, input);
    }

    #[test]
    fn refuses_files_with_syntax_errors() {
        assert!(format("node a { cpu = = 4 }").is_err());
    }
}
