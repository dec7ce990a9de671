//! The Stratum modelling language front end: lexer, parser, checker, diagnostics and formatter.
//!
//! Pure: no IO, no async. Callers hand in bytes (and a [`SourceLoader`] for imports) and get back the checked
//! application ([`stratum_core::ir::Application`]) with every diagnostic. Checking never stops at the first
//! error and never panics, whatever bytes it is given.

#![warn(missing_docs)]

mod check;
pub mod codes;
mod diagnostic;
pub mod format;
pub mod source;
mod suggest;
pub mod syntax;

pub use check::{Checked, SpanIndex, check};
pub use codes::Code;
pub use diagnostic::{Diagnostic, Severity, render};
pub use source::{NoImports, SourceLoader, SourceMap};

/// The algorithms a `model` may list as candidates (docs/language.md documents each).
pub fn algorithm_names() -> impl Iterator<Item = &'static str> {
    check::algorithm_names()
}

/// The functions expressions may call (docs/language.md documents each).
pub fn function_names() -> impl Iterator<Item = &'static str> {
    check::function_names()
}

/// Checks one file that imports nothing (tests, benchmarks, editors).
pub fn check_text(name: &str, text: &str) -> Checked {
    check(name, text.as_bytes(), &NoImports)
}
