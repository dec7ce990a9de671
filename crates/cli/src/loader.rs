//! Reads imported files from disk for the (IO-free) language front end, which says where an import points.

pub(crate) use stratum_lang::source::normalize;

/// Resolves `import "x"` relative to the importing file's directory.
pub(crate) struct FileLoader;

impl stratum_lang::SourceLoader for FileLoader {
    fn load(&self, importer: &str, path: &str) -> Result<(String, Vec<u8>), stratum_core::Cause> {
        let joined = stratum_lang::source::import_path(importer, path);
        let name = joined.to_string_lossy().into_owned();
        Ok((name, std::fs::read(&joined)?))
    }
}
