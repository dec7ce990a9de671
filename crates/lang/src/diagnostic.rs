//! Diagnostics: what is wrong, where, and how to fix it; rendered like rustc for people and as JSON for tools.

use crate::codes::Code;
pub use crate::codes::Severity;
use crate::source::{SourceMap, Span};
use serde::Serialize;
use std::fmt::Write;

/// A secondary place that explains the primary one ("first defined here").
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Label {
    /// What it points at.
    pub span: Span,
    /// What it says there.
    pub message: String,
}

/// One problem found in a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// Its stable code.
    pub code: Code,
    /// The problem, in one sentence.
    pub message: String,
    /// Where it is (the primary span).
    pub span: Span,
    /// Shown under the primary span.
    pub label: String,
    /// Other places that explain it (the first definition of a duplicate, say).
    pub secondary: Vec<Label>,
    /// The fix: a suggestion, a nearest name, the numbers that do not add up.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic of `code` at `span` saying `message`, with no label, secondary labels or help yet.
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic { code, message: message.into(), span, label: String::new(), secondary: Vec::new(), help: None }
    }

    /// With this text under the primary span.
    pub fn label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = label.into();
        self
    }

    /// With one more place that explains it.
    pub fn secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label { span, message: message.into() });
        self
    }

    /// With this fix.
    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// With this fix, when there is one.
    pub fn maybe_help(mut self, help: Option<String>) -> Diagnostic {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Its code's severity.
    pub fn severity(&self) -> Severity {
        self.code.severity()
    }

    /// The JSON shape of `--format json`: one object per diagnostic.
    pub fn to_json(&self, sources: &SourceMap) -> DiagnosticJson {
        let file = sources.get(self.span.file);
        let (line, column) = file.line_column(self.span.start as usize);
        let (end_line, end_column) = file.line_column(self.span.end as usize);
        DiagnosticJson {
            code: self.code,
            severity: self.severity(),
            file: file.name.clone(),
            line,
            column,
            end_line,
            end_column,
            byte_start: self.span.start,
            byte_end: self.span.end,
            message: self.message.clone(),
            label: self.label.clone(),
            labels: self
                .secondary
                .iter()
                .map(|label| {
                    let labelled = sources.get(label.span.file);
                    let (line, column) = labelled.line_column(label.span.start as usize);
                    LabelJson {
                        file: labelled.name.clone(),
                        line,
                        column,
                        byte_start: label.span.start,
                        byte_end: label.span.end,
                        message: label.message.clone(),
                    }
                })
                .collect(),
            help: self.help.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DiagnosticJson {
    pub code: Code,
    pub severity: Severity,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub byte_start: u32,
    pub byte_end: u32,
    pub message: String,
    pub label: String,
    pub labels: Vec<LabelJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LabelJson {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub byte_start: u32,
    pub byte_end: u32,
    pub message: String,
}

/// Terminal colours, used only when the caller says the output is a terminal that wants them.
struct Paint {
    enabled: bool,
}

impl Paint {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.enabled { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }
}

/// Renders a diagnostic the way rustc does: header, location, the source lines with markers, then help.
pub fn render(diagnostic: &Diagnostic, sources: &SourceMap, color: bool) -> String {
    let paint = Paint { enabled: color };
    let (severity, severity_color) = match diagnostic.severity() {
        Severity::Error => ("error", "1;31"),
        Severity::Warning => ("warning", "1;33"),
    };
    let mut out = String::new();
    let header = format!("{severity}[{}]", diagnostic.code.as_str());
    let _ = writeln!(
        out,
        "{}{}",
        paint.paint(severity_color, &header),
        paint.paint("1", &format!(": {}", diagnostic.message))
    );

    let file = sources.get(diagnostic.span.file);
    let (line, column) = file.line_column(diagnostic.span.start as usize);
    let mut marked: Vec<(Span, &str, bool)> = vec![(diagnostic.span, diagnostic.label.as_str(), true)];
    marked.extend(diagnostic.secondary.iter().map(|label| (label.span, label.message.as_str(), false)));
    let last_line = marked
        .iter()
        .map(|(span, _, _)| sources.get(span.file).line_column(span.start as usize).0)
        .max()
        .unwrap_or(line);
    let gutter = last_line.to_string().len();
    let pad = " ".repeat(gutter);
    let _ = writeln!(out, "{pad}{} {}:{line}:{column}", paint.paint("1;34", "-->"), file.name);
    let _ = writeln!(out, "{pad} {}", paint.paint("1;34", "|"));

    // Group the marks by file, keep the primary file first, then show each marked line once, in order.
    let mut files: Vec<_> = marked.iter().map(|(span, _, _)| span.file).collect();
    files.dedup();
    let mut seen_files = Vec::new();
    for file_id in files {
        if seen_files.contains(&file_id) {
            continue;
        }
        seen_files.push(file_id);
        let source = sources.get(file_id);
        if file_id != diagnostic.span.file {
            let first = marked.iter().find(|(span, _, _)| span.file == file_id).map(|(span, _, _)| span.start);
            let (line, column) = source.line_column(first.unwrap_or(0) as usize);
            let _ = writeln!(out, "{pad}{} {}:{line}:{column}", paint.paint("1;34", ":::"), source.name);
        }
        let mut lines: Vec<(usize, &(Span, &str, bool))> = marked
            .iter()
            .filter(|(span, _, _)| span.file == file_id)
            .map(|mark| (source.line_column(mark.0.start as usize).0, mark))
            .collect();
        lines.sort_by_key(|(line, mark)| (*line, !mark.2));
        let mut previous_line = None;
        for (line_number, (span, message, primary)) in lines {
            let text = source.line_text(line_number);
            if previous_line != Some(line_number) {
                if let Some(previous) = previous_line
                    && line_number > previous + 1
                {
                    let _ = writeln!(out, "{}", paint.paint("1;34", "..."));
                }
                let shown = shorten(text);
                let _ = writeln!(
                    out,
                    "{} {} {}",
                    paint.paint("1;34", &format!("{line_number:>gutter$}")),
                    paint.paint("1;34", "|"),
                    shown
                );
            }
            previous_line = Some(line_number);
            let (_, start_column) = source.line_column(span.start as usize);
            let end_offset = (span.end as usize).min(source.line_end(line_number));
            let (_, end_column) = source.line_column(end_offset.max(span.start as usize));
            let width = end_column.saturating_sub(start_column).max(1);
            let marker = if *primary { "^" } else { "-" }.repeat(width);
            let color = if *primary { severity_color } else { "1;34" };
            let underline = format!("{marker} {message}");
            let _ = writeln!(
                out,
                "{pad} {} {}{}",
                paint.paint("1;34", "|"),
                " ".repeat(start_column.saturating_sub(1).min(200)),
                paint.paint(color, underline.trim_end())
            );
        }
    }
    if let Some(help) = &diagnostic.help {
        let _ = writeln!(out, "{pad} {}", paint.paint("1;34", "|"));
        for (index, line) in help.lines().enumerate() {
            let prefix = if index == 0 { "= help:" } else { "       " };
            let _ = writeln!(out, "{pad} {} {line}", paint.paint("1;34", prefix));
        }
    }
    out
}

/// Keeps very long lines (a 1 MB line of garbage) readable in a terminal.
fn shorten(text: &str) -> String {
    const LIMIT: usize = 200;
    if text.chars().count() <= LIMIT {
        text.to_string()
    } else {
        let kept: String = text.chars().take(LIMIT).collect();
        format!("{kept}…")
    }
}
