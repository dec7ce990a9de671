//! Helpers shared by the planner's integration tests.

use std::path::Path;

/// Reads imports relative to the importing file, as the `stratum` binary does.
pub struct Loader;

impl stratum_lang::SourceLoader for Loader {
    fn load(&self, importer: &str, path: &str) -> Result<(String, Vec<u8>), stratum_core::Cause> {
        let joined = Path::new(importer).parent().unwrap_or(Path::new("")).join(path);
        std::fs::read(&joined)
            .map(|bytes| (joined.to_string_lossy().into_owned(), bytes))
            .map_err(stratum_core::Cause::from)
    }
}
