//! Source files held in memory, byte spans into them, and line/column lookup for diagnostics.
//!
//! The front end never reads files itself: callers hand it text (and, for `import`, a [`SourceLoader`]).

use serde::Serialize;
use stratum_core::Cause;

/// Identifies a file within one [`SourceMap`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FileId(pub u32);

/// A byte range in one file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Span {
    /// The file it is in.
    pub file: FileId,
    /// The offset of its first byte.
    pub start: u32,
    /// The offset just past its last byte.
    pub end: u32,
}

impl Span {
    /// The bytes from `start` to just before `end` of `file`.
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span { file, start: start as u32, end: end as u32 }
    }

    /// The smallest span covering both (they must be in the same file).
    pub fn to(self, other: Span) -> Span {
        Span { file: self.file, start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    /// How many bytes it covers.
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    /// It covers no byte (a place, as for "missing `}`").
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// One file's name and text, with the offsets where its lines start.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// Its name as the caller gave it (relative to where `check` ran, or as imported).
    pub name: String,
    /// The text as the front end sees it: invalid UTF-8 bytes are replaced one for one by U+001A so that every
    /// byte offset still matches the file on disk.
    pub text: String,
    line_starts: Vec<usize>,
    /// Where the first invalid UTF-8 byte was, if any.
    pub invalid_utf8_at: Option<usize>,
}

impl SourceFile {
    /// A file named `name` holding `bytes` (invalid UTF-8 replaced, see [`SourceFile::text`]).
    pub fn new(name: impl Into<String>, bytes: &[u8]) -> SourceFile {
        let (text, invalid_utf8_at) = sanitize(bytes);
        let mut line_starts = vec![0];
        line_starts.extend(text.bytes().enumerate().filter(|(_, byte)| *byte == b'\n').map(|(index, _)| index + 1));
        SourceFile { name: name.into(), text, line_starts, invalid_utf8_at }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|start| *start <= offset) - 1;
        let start = self.line_starts[line];
        let column = self.text.get(start..offset).map(|part| part.chars().count()).unwrap_or(offset - start);
        (line + 1, column + 1)
    }

    /// The text of a 1-based line, without its line break.
    pub fn line_text(&self, line: usize) -> &str {
        let start = self.line_starts[line - 1];
        let end = self.line_starts.get(line).map(|next| next - 1).unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches('\r')
    }

    /// The byte offset where a 1-based line's text ends (before its line break).
    pub fn line_end(&self, line: usize) -> usize {
        self.line_starts[line - 1] + self.line_text(line).len()
    }

    /// The text a span of this file covers (empty when it is out of range).
    pub fn slice(&self, span: Span) -> &str {
        self.text.get(span.start as usize..span.end as usize).unwrap_or("")
    }
}

/// Replaces each byte of an invalid UTF-8 sequence with U+001A (one byte), keeping offsets intact.
fn sanitize(bytes: &[u8]) -> (String, Option<usize>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), None),
        Err(_) => {
            let mut text = String::with_capacity(bytes.len());
            let mut first_invalid = None;
            let mut rest = bytes;
            let mut consumed = 0;
            while !rest.is_empty() {
                match std::str::from_utf8(rest) {
                    Ok(valid) => {
                        text.push_str(valid);
                        break;
                    }
                    Err(error) => {
                        let valid_up_to = error.valid_up_to();
                        text.push_str(std::str::from_utf8(&rest[..valid_up_to]).unwrap_or_default());
                        let bad = error.error_len().unwrap_or(rest.len() - valid_up_to);
                        first_invalid.get_or_insert(consumed + valid_up_to);
                        text.extend(std::iter::repeat_n('\u{1a}', bad));
                        consumed += valid_up_to + bad;
                        rest = &rest[valid_up_to + bad..];
                    }
                }
            }
            (text, first_invalid)
        }
    }
}

/// All files of one check: the root file and everything it imports.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    /// Adds a file; its id from now on.
    pub fn add(&mut self, file: SourceFile) -> FileId {
        self.files.push(file);
        FileId(self.files.len() as u32 - 1)
    }

    /// The file with this id (ids come from [`SourceMap::add`] of this map).
    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// The id of the file named `name`, if it was added.
    pub fn find(&self, name: &str) -> Option<FileId> {
        self.files.iter().position(|file| file.name == name).map(|index| FileId(index as u32))
    }

    /// Every file with its id, in the order they were added.
    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files.iter().enumerate().map(|(index, file)| (FileId(index as u32), file))
    }
}

/// Reads imported files on behalf of the front end, which does no IO itself.
pub trait SourceLoader {
    /// Resolves `path` as written in an `import` of the file named `importer`, returning the canonical name
    /// (used to detect cycles and repeats) and the file's bytes, or why it could not be read (shown in the E0105
    /// diagnostic).
    fn load(&self, importer: &str, path: &str) -> Result<(String, Vec<u8>), Cause>;
}

/// Where `import "path"` in the file named `importer` points: relative to the importer's folder, with `.` and `..`
/// resolved lexically, so that one file has one name whichever way it is reached (cycles and repeats are found by
/// name). Pure: every loader that reads from disk resolves paths this way.
pub fn import_path(importer: &str, path: &str) -> std::path::PathBuf {
    let base = std::path::Path::new(importer).parent().unwrap_or(std::path::Path::new(""));
    normalize(&base.join(path))
}

/// Removes `.` and resolves `..` lexically (a leading `..` stays).
pub fn normalize(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut normal = std::path::PathBuf::new();
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

/// A loader for callers that allow no imports (tests, the web editor): every import is an error.
pub struct NoImports;

impl SourceLoader for NoImports {
    fn load(&self, _importer: &str, _path: &str) -> Result<(String, Vec<u8>), Cause> {
        Err("imports are not available here".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based() {
        let file = SourceFile::new("a", b"ab\ncd\n");
        assert_eq!(file.line_column(0), (1, 1));
        assert_eq!(file.line_column(4), (2, 2));
        assert_eq!(file.line_text(2), "cd");
    }

    #[test]
    fn invalid_utf8_keeps_offsets() {
        let file = SourceFile::new("a", b"ab\xff\xfecd");
        assert_eq!(file.text.len(), 6);
        assert_eq!(file.invalid_utf8_at, Some(2));
        assert_eq!(&file.text[4..], "cd");
    }
}

#[cfg(test)]
mod import_tests {
    use super::{import_path, normalize};
    use std::path::Path;

    #[test]
    fn imports_resolve_beside_the_importer_with_dots_resolved() {
        assert_eq!(normalize(Path::new("a/./b/../c.stratum")), Path::new("a/c.stratum"));
        assert_eq!(normalize(Path::new("../x.stratum")), Path::new("../x.stratum"));
        assert_eq!(import_path("app/main.stratum", "../shared/s.stratum"), Path::new("shared/s.stratum"));
    }
}
