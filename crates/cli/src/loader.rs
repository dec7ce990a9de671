//! Reads imported files from disk for the (IO-free) language front end.

use std::path::{Component, Path, PathBuf};

/// Resolves `import "x"` relative to the importing file's directory.
pub struct FileLoader;

impl stratum_lang::SourceLoader for FileLoader {
    fn load(&self, importer: &str, path: &str) -> Result<(String, Vec<u8>), String> {
        let base = Path::new(importer).parent().unwrap_or(Path::new(""));
        let joined = normalize(&base.join(path));
        let name = joined.to_string_lossy().into_owned();
        std::fs::read(&joined).map(|bytes| (name, bytes)).map_err(|error| error.to_string())
    }
}

/// Removes `.` and resolves `..` lexically, so that one file has one name whichever way it is reached.
pub fn normalize(path: &Path) -> PathBuf {
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
