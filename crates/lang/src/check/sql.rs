//! Batch queries checked before they run: parsed with sqlparser in its generic dialect (the parser and dialect
//! DataFusion runs them with), their tables resolved against the application's datasets and file sinks, and —
//! for a plain `SELECT` over tables — their columns against those tables' schemas. Each problem points inside the
//! query string in the file. What only planning shows (types, functions) is still DataFusion's, at run time.

use super::{Checker, ItemKind, Lowered};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::source::Span;
use crate::suggest;
use crate::syntax::ast::{Expr, ExprKind};
use sqlparser::ast::{self as sql, Spanned, Visit, Visitor};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Span as SqlSpan, Token, Tokenizer};
use std::ops::ControlFlow;
use stratum_core::ir::SinkKind;
use stratum_core::sql::{offset_in_query, position_in_message};
use stratum_core::types::Field;

/// A table a query reads: its name as DataFusion looks it up, how many parts it was written with, where, and the
/// alias it is read under.
struct Relation {
    name: String,
    parts: usize,
    span: SqlSpan,
    alias: Option<String>,
}

/// What a query's statements name: the common tables they define, the tables they read, whether they read
/// anything else (a subquery, a table function), and how many queries they hold (one for a plain `SELECT`).
#[derive(Default)]
struct Names {
    common_tables: Vec<String>,
    relations: Vec<Relation>,
    other_sources: bool,
    queries: usize,
}

impl Visitor for Names {
    type Break = ();

    fn pre_visit_query(&mut self, query: &sql::Query) -> ControlFlow<()> {
        self.queries += 1;
        if let Some(with) = &query.with {
            self.common_tables.extend(with.cte_tables.iter().map(|cte| identifier(&cte.alias.name)));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &sql::TableFactor) -> ControlFlow<()> {
        match factor {
            sql::TableFactor::Table { name, alias, args: None, .. } => self.relations.push(Relation {
                name: name.0.last().and_then(sql::ObjectNamePart::as_ident).map(identifier).unwrap_or_default(),
                parts: name.0.len(),
                span: name.span(),
                alias: alias.as_ref().map(|alias| identifier(&alias.name)),
            }),
            _ => self.other_sources = true,
        }
        ControlFlow::Continue(())
    }
}

/// An identifier as DataFusion resolves it: unquoted ones in lower case, quoted ones as written.
fn identifier(ident: &sql::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// Where the query string's content starts in the file, and maps positions in it to spans of the file.
struct QueryText<'t> {
    query: &'t str,
    file: crate::source::FileId,
    content_start: usize,
    whole: Span,
}

impl QueryText<'_> {
    /// The file span of sqlparser's (1-based) line and column, `length` bytes long; the whole query string when
    /// the position is not in it.
    fn span(&self, line: u64, column: u64, length: usize) -> Span {
        match offset_in_query(self.query, line, column) {
            Some(offset) => {
                let start = self.content_start + offset;
                Span::new(self.file, start, start + length.max(1))
            }
            None => self.whole,
        }
    }

    fn span_of(&self, span: SqlSpan) -> Span {
        let length = match (
            offset_in_query(self.query, span.start.line, span.start.column),
            offset_in_query(self.query, span.end.line, span.end.column),
        ) {
            (Some(start), Some(end)) if end > start => end - start,
            _ => 1,
        };
        self.span(span.start.line, span.start.column, length)
    }
}

impl<'a> Checker<'a> {
    /// Parses a batch's query and checks what it names, and that its result has the columns of the dataset it
    /// fills (`into`: its name and fields); returns the tables it reads (datasets and file sinks).
    pub(super) fn check_query(&mut self, query: &str, expr: &Expr, into: Option<&(String, Vec<Field>)>) -> Vec<String> {
        let opening = match &expr.kind {
            ExprKind::String(literal) if literal.triple => 3,
            _ => 1,
        };
        let text = QueryText {
            query,
            file: expr.span.file,
            content_start: expr.span.start as usize + opening,
            whole: expr.span,
        };
        // A chain of operators parses in a loop but makes a tree as deep as the chain is long, which recursion over
        // it (visiting, dropping) cannot take: refuse what no hand-written query reaches, rather than crash.
        let operators = Tokenizer::new(&GenericDialect {}, query)
            .tokenize()
            .map_or(0, |tokens| tokens.iter().filter(|token| is_operator(token)).count());
        if operators > MAX_OPERATORS {
            self.report(
                Diagnostic::new(
                    Code::QueryError,
                    text.whole,
                    format!(
                        "the query chains {operators} operators; Stratum checks queries of at most {MAX_OPERATORS}"
                    ),
                )
                .label("too long a query")
                .help("split it: compute parts in common tables (`WITH part AS (…)`) or in a batch of their own"),
            );
            return Vec::new();
        }
        let statements = match Parser::parse_sql(&GenericDialect {}, query) {
            Ok(statements) => statements,
            Err(error) => {
                // sqlparser says where in its message: `… at Line: 2, Column: 9`.
                let message = error.to_string();
                let (line, column) = position_in_message(&message);
                let span = match (line, column) {
                    (Some(line), Some(column)) => text.span(line, column, word_length(query, line, column)),
                    _ => text.whole,
                };
                let message = message.trim_start_matches("sql parser error: ");
                let message = message.split(" at Line: ").next().unwrap_or(message);
                self.report(
                    Diagnostic::new(Code::QueryError, span, format!("the query does not parse: {message}"))
                        .label("here")
                        .help(SQL_HELP),
                );
                return Vec::new();
            }
        };
        let mut names = Names::default();
        let _ = statements.visit(&mut names);
        let mut tables: Vec<String> = Vec::new();
        let mut read: Vec<(String, Option<String>, Vec<Field>)> = Vec::new();
        for relation in &names.relations {
            if names.common_tables.contains(&relation.name) {
                continue;
            }
            let span = text.span_of(relation.span);
            if relation.parts > 1 {
                self.report(
                    Diagnostic::new(Code::QueryError, span, "a table in a batch query has one name")
                        .label("a dataset or file sink is named alone")
                        .help("write the dataset's or sink's name without a schema or catalogue before it"),
                );
                continue;
            }
            let Some(id) =
                self.resolve(&relation.name, span, &[ItemKind::Dataset, ItemKind::Sink], "a table in the query")
            else {
                continue;
            };
            let fields = self.output_of(id, span).map(|output| output.fields).unwrap_or_default();
            // A sink is a table only when it writes files: the others' records are not kept anywhere to read.
            if let Lowered::Sink(sink) = &self.lowered[id]
                && !matches!(sink.kind, SinkKind::File { .. })
            {
                self.report(
                    Diagnostic::new(
                        Code::QueryError,
                        span,
                        format!("sink `{}` writes no files, so a query cannot read it", relation.name),
                    )
                    .label("not a table")
                    .help("tables are datasets and file sinks (parquet, csv, jsonl): read those, or add a file sink"),
                );
                continue;
            }
            if !tables.contains(&relation.name) {
                tables.push(relation.name.clone());
            }
            read.push((relation.name.clone(), relation.alias.clone(), fields));
        }
        // Columns are checked where every name a query uses is a column of the tables it reads or an alias of its
        // own: one `SELECT` over tables, with no common tables, subqueries or table functions.
        let plain = statements.len() == 1
            && names.queries == 1
            && names.common_tables.is_empty()
            && !names.other_sources
            && read.len() == names.relations.len();
        if plain {
            self.check_columns(&statements[0], &read, &text);
        }
        if let (Some((dataset, fields)), [statement]) = (into, statements.as_slice()) {
            self.check_result(statement, dataset, fields, &text);
        }
        tables
    }

    /// The run writes the dataset's columns from the result's columns of the same names: each must be there.
    /// Known only when every item of the outer `SELECT` has a name (an alias, or a column read as it is).
    fn check_result(&mut self, statement: &sql::Statement, dataset: &str, fields: &[Field], text: &QueryText) {
        let sql::Statement::Query(query) = statement else { return };
        let sql::SetExpr::Select(select) = query.body.as_ref() else { return };
        let mut names = Vec::new();
        for item in &select.projection {
            names.push(match item {
                sql::SelectItem::ExprWithAlias { alias, .. } => identifier(alias),
                sql::SelectItem::UnnamedExpr(sql::Expr::Identifier(ident)) => identifier(ident),
                sql::SelectItem::UnnamedExpr(sql::Expr::CompoundIdentifier(parts)) => {
                    parts.last().map(identifier).unwrap_or_default()
                }
                // `*` or an expression DataFusion names after itself (`sum(counts.vehicles)`): not known here.
                _ => return,
            });
        }
        let missing: Vec<&str> = fields
            .iter()
            .map(|field| field.name.as_str())
            .filter(|name| !names.iter().any(|known| known == name))
            .collect();
        if missing.is_empty() {
            return;
        }
        let listed = missing.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ");
        let first = missing[0];
        let help = match suggest::nearest(first, names.iter().map(String::as_str)) {
            Some(close) => format!("if the result's `{close}` is meant, name it `… AS {first}`"),
            None => format!("name a result column as in `… AS {first}`; the result has: {}", names.join(", ")),
        };
        self.report(
            Diagnostic::new(
                Code::QueryError,
                text.whole,
                format!("the result has no column {listed}, which dataset `{dataset}` needs"),
            )
            .label(format!("the query's columns: {}", names.join(", ")))
            .help(help),
        );
    }

    fn check_columns(
        &mut self,
        statement: &sql::Statement,
        read: &[(String, Option<String>, Vec<Field>)],
        text: &QueryText,
    ) {
        let sql::Statement::Query(query) = statement else { return };
        let sql::SetExpr::Select(select) = query.body.as_ref() else { return };
        let aliases: Vec<String> = select
            .projection
            .iter()
            .filter_map(|item| match item {
                sql::SelectItem::ExprWithAlias { alias, .. } => Some(identifier(alias)),
                _ => None,
            })
            .collect();
        let columns: Vec<&str> =
            read.iter().flat_map(|(_, _, fields)| fields.iter().map(|field| field.name.as_str())).collect();
        // Each problem: its message, where, its label and its help.
        let mut unknown: Vec<(String, SqlSpan, &str, String)> = Vec::new();
        let _ = sql::visit_expressions(statement, |expr| {
            match expr {
                sql::Expr::Identifier(ident) => {
                    let name = identifier(ident);
                    if !columns.contains(&name.as_str()) && !aliases.contains(&name) {
                        let known = columns.iter().copied().chain(aliases.iter().map(String::as_str));
                        let help = suggest::did_you_mean(&name, known)
                            .unwrap_or_else(|| format!("the tables' columns are: {}", columns.join(", ")));
                        let message = format!("no column `{name}` in the tables the query reads");
                        unknown.push((message, ident.span, "not a column", help));
                    }
                }
                sql::Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
                    let (table, column) = (identifier(&parts[0]), identifier(&parts[1]));
                    let table_fields = read
                        .iter()
                        .find(|(name, alias, _)| alias.as_ref().map_or(*name == table, |alias| *alias == table));
                    match table_fields {
                        Some((name, _, fields)) if !fields.iter().any(|field| field.name == column) => {
                            let names: Vec<&str> = fields.iter().map(|field| field.name.as_str()).collect();
                            let help = suggest::did_you_mean(&column, names.iter().copied())
                                .unwrap_or_else(|| format!("`{name}` has: {}", names.join(", ")));
                            let message = format!("no column `{column}` in `{table}`");
                            unknown.push((message, parts[1].span, "not a column", help));
                        }
                        Some(_) => {}
                        None => {
                            let names: Vec<String> = read
                                .iter()
                                .map(|(name, alias, _)| match alias {
                                    Some(alias) => format!("`{alias}` ({name})"),
                                    None => format!("`{name}`"),
                                })
                                .collect();
                            let message = format!("no table `{table}` in the query");
                            let help = format!("the query reads {}", names.join(", "));
                            unknown.push((message, parts[0].span, "not a table or alias of this query", help));
                        }
                    }
                }
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
        for (message, span, label, help) in unknown {
            self.report(Diagnostic::new(Code::QueryError, text.span_of(span), message).label(label).help(help));
        }
    }
}

/// The most operators one query may chain (see `check_query`).
const MAX_OPERATORS: usize = 1_000;

fn is_operator(token: &Token) -> bool {
    match token {
        Token::Plus
        | Token::Minus
        | Token::Mul
        | Token::Div
        | Token::Mod
        | Token::StringConcat
        | Token::Eq
        | Token::Neq
        | Token::Lt
        | Token::Gt
        | Token::LtEq
        | Token::GtEq => true,
        Token::Word(word) => {
            word.quote_style.is_none()
                && (word.value.eq_ignore_ascii_case("and") || word.value.eq_ignore_ascii_case("or"))
        }
        _ => false,
    }
}

const SQL_HELP: &str = "the SQL is DataFusion's (https://datafusion.apache.org/user-guide/sql/); tables are the \
                        datasets and file sinks the query names";

/// How long the word at a (1-based) line and column is, to underline it.
fn word_length(query: &str, line: u64, column: u64) -> usize {
    offset_in_query(query, line, column)
        .map(|offset| {
            query[offset..].find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(query.len() - offset)
        })
        .unwrap_or(1)
}
