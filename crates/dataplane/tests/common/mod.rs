//! Helpers shared by the data plane's integration tests: checking a `.stratum` file into its IR.
#![allow(dead_code)]

use stratum_core::ir::Application;
use stratum_lang::Severity;

/// The IR of a test application in `tests/apps/`, which must check without errors.
pub fn application(name: &str) -> Application {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    application_from_text(name, &text)
}

/// The IR of an application given as text, which must check without errors.
pub fn application_from_text(name: &str, text: &str) -> Application {
    let checked = stratum_lang::check_text(name, text);
    let errors: Vec<&str> =
        checked.diagnostics.iter().filter(|d| d.severity() == Severity::Error).map(|d| d.message.as_str()).collect();
    assert!(errors.is_empty(), "{name} has errors: {errors:?}");
    checked.application
}
