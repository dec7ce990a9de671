//! Reads imported files from disk for the (IO-free) language front end.

use std::path::{Component, Path, PathBuf};

/// Resolves `import "x"` relative to the importing file's directory.
pub(crate) struct FileLoader;

impl stratum_lang::SourceLoader for FileLoader {
    fn load(&self, importer: &str, path: &str) -> Result<(String, Vec<u8>), stratum_core::Cause> {
        let base = Path::new(importer).parent().unwrap_or(Path::new(""));
        let joined = normalize(&base.join(path));
        let name = joined.to_string_lossy().into_owned();
        Ok((name, std::fs::read(&joined)?))
    }
}

/// Removes `.` and resolves `..` lexically, so that one file has one name whichever way it is reached.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !normal.pop() {
                    normal.push("..");
                }
            }
            other => normal.push(other),
        }
    }
    normal
}
