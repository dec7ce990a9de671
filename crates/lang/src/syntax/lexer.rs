//! The lossless lexer: every byte of the input belongs to exactly one token, trivia (spaces, line breaks,
//! comments) included, so the tokens concatenated give back the file. The formatter relies on this to keep comments.

use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Span};

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Spaces and tabs.
    Whitespace,
    /// A line break.
    Newline,
    /// `# …` to the end of the line.
    Comment,
    /// A name or keyword.
    Ident,
    /// A number (its unit, if any, is the next token).
    Number,
    /// `"…"` on one line, with escapes.
    String,
    /// `"""…"""`, possibly over many lines, taken as written.
    TripleString,
    /// `{`
    LeftBrace,
    /// `}`
    RightBrace,
    /// `(`
    LeftParen,
    /// `)`
    RightParen,
    /// `[`
    LeftBracket,
    /// `]`
    RightBracket,
    /// `=`
    Equals,
    /// `==`
    EqualsEquals,
    /// `!=`
    NotEquals,
    /// `<`
    Less,
    /// `<=`
    LessEquals,
    /// `>`
    Greater,
    /// `>=`
    GreaterEquals,
    /// `:`
    Colon,
    /// `,`
    Comma,
    /// `.`
    Dot,
    /// `..`
    DotDot,
    /// `->`
    Arrow,
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `*`
    Star,
    /// `/`
    Slash,
    /// `%`
    Percent,
    /// `?`
    Question,
    /// Anything the language has no use for; reported once per run of such characters.
    Unknown,
}

impl TokenKind {
    /// Spaces, line breaks and comments: what the parser skips and the formatter keeps.
    pub fn is_trivia(self) -> bool {
        matches!(self, TokenKind::Whitespace | TokenKind::Newline | TokenKind::Comment)
    }

    /// How the token is named in "expected …, found …" messages.
    pub fn describe(self) -> &'static str {
        match self {
            TokenKind::Whitespace => "white space",
            TokenKind::Newline => "end of line",
            TokenKind::Comment => "a comment",
            TokenKind::Ident => "a name",
            TokenKind::Number => "a number",
            TokenKind::String | TokenKind::TripleString => "a string",
            TokenKind::LeftBrace => "`{`",
            TokenKind::RightBrace => "`}`",
            TokenKind::LeftParen => "`(`",
            TokenKind::RightParen => "`)`",
            TokenKind::LeftBracket => "`[`",
            TokenKind::RightBracket => "`]`",
            TokenKind::Equals => "`=`",
            TokenKind::EqualsEquals => "`==`",
            TokenKind::NotEquals => "`!=`",
            TokenKind::Less => "`<`",
            TokenKind::LessEquals => "`<=`",
            TokenKind::Greater => "`>`",
            TokenKind::GreaterEquals => "`>=`",
            TokenKind::Colon => "`:`",
            TokenKind::Comma => "`,`",
            TokenKind::Dot => "`.`",
            TokenKind::DotDot => "`..`",
            TokenKind::Arrow => "`->`",
            TokenKind::Plus => "`+`",
            TokenKind::Minus => "`-`",
            TokenKind::Star => "`*`",
            TokenKind::Slash => "`/`",
            TokenKind::Percent => "`%`",
            TokenKind::Question => "`?`",
            TokenKind::Unknown => "an unexpected character",
        }
    }
}

/// One token: what it is and the bytes it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// The bytes it covers.
    pub span: Span,
}

/// Splits `text` into tokens. Lexical problems (stray characters, unterminated strings) are reported and the
/// offending text still becomes a token, so lexing never fails and never loses a byte.
pub fn lex(file: FileId, text: &str) -> (Vec<Token>, Vec<Diagnostic>) {
    let bytes = text.as_bytes();
    let mut tokens = Vec::with_capacity(text.len() / 3);
    let mut diagnostics = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let start = position;
        let byte = bytes[position];
        let kind = match byte {
            b'\n' => {
                position += 1;
                TokenKind::Newline
            }
            b'\r' if bytes.get(position + 1) == Some(&b'\n') => {
                position += 2;
                TokenKind::Newline
            }
            b' ' | b'\t' | b'\r' => {
                while position < bytes.len() && matches!(bytes[position], b' ' | b'\t' | b'\r') {
                    if bytes[position] == b'\r' && bytes.get(position + 1) == Some(&b'\n') {
                        break;
                    }
                    position += 1;
                }
                TokenKind::Whitespace
            }
            b'#' => {
                while position < bytes.len() && bytes[position] != b'\n' {
                    position += 1;
                }
                TokenKind::Comment
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                while position < bytes.len() && (bytes[position].is_ascii_alphanumeric() || bytes[position] == b'_') {
                    position += 1;
                }
                TokenKind::Ident
            }
            b'0'..=b'9' => {
                position = lex_number(bytes, position);
                TokenKind::Number
            }
            b'"' if bytes[position..].starts_with(b"\"\"\"") => {
                match text[position + 3..].find("\"\"\"") {
                    Some(end) => position += 3 + end + 3,
                    None => {
                        position = bytes.len();
                        diagnostics.push(
                            Diagnostic::new(
                                Code::UnterminatedString,
                                Span::new(file, start, start + 3),
                                "unterminated multi-line string",
                            )
                            .label("this `\"\"\"` is never closed")
                            .help("close the string with `\"\"\"`"),
                        );
                    }
                }
                TokenKind::TripleString
            }
            b'"' => {
                position += 1;
                let mut closed = false;
                while position < bytes.len() {
                    match bytes[position] {
                        b'\\' if position + 1 < bytes.len() && bytes[position + 1] != b'\n' => position += 2,
                        b'"' => {
                            position += 1;
                            closed = true;
                            break;
                        }
                        b'\n' => break,
                        _ => position += 1,
                    }
                }
                if !closed {
                    diagnostics.push(
                        Diagnostic::new(
                            Code::UnterminatedString,
                            Span::new(file, start, start + 1),
                            "unterminated string",
                        )
                        .label("this string has no closing `\"` on its line")
                        .help("add the closing `\"`; for text over several lines use `\"\"\"…\"\"\"`"),
                    );
                }
                TokenKind::String
            }
            _ => {
                let (kind, length) = punctuation(&bytes[position..]);
                if kind == TokenKind::Unknown {
                    // Swallow a whole run of unknown characters (at char boundaries) so one bad paste is one error.
                    let mut end = position;
                    while end < bytes.len() {
                        let (next_kind, _) = punctuation(&bytes[end..]);
                        let is_start_of_token = next_kind != TokenKind::Unknown
                            || bytes[end].is_ascii_alphanumeric()
                            || matches!(bytes[end], b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'#' | b'_');
                        if is_start_of_token {
                            break;
                        }
                        end += 1;
                        while end < bytes.len() && !text.is_char_boundary(end) {
                            end += 1;
                        }
                    }
                    position = end;
                    let found = &text[start..end];
                    let shown: String = found.chars().take(8).flat_map(char::escape_debug).collect();
                    let message = if found.contains('\u{1a}') {
                        "the file is not valid UTF-8 here".to_string()
                    } else {
                        format!("unexpected character `{shown}`")
                    };
                    diagnostics.push(
                        Diagnostic::new(Code::InvalidCharacter, Span::new(file, start, end), message)
                            .label("not part of the language")
                            .help(unknown_character_help(found)),
                    );
                } else {
                    position += length;
                }
                kind
            }
        };
        tokens.push(Token { kind, span: Span::new(file, start, position) });
    }
    (tokens, diagnostics)
}

fn unknown_character_help(found: &str) -> String {
    if found.starts_with("//") {
        "comments start with `#`".to_string()
    } else if found.starts_with('\'') {
        "strings use double quotes: \"like this\"".to_string()
    } else if found.contains('\u{1a}') {
        "save the file as UTF-8".to_string()
    } else {
        "remove it; names use letters, digits and `_`".to_string()
    }
}

fn lex_number(bytes: &[u8], mut position: usize) -> usize {
    let digits = |bytes: &[u8], mut position: usize| {
        while position < bytes.len() && (bytes[position].is_ascii_digit() || bytes[position] == b'_') {
            position += 1;
        }
        position
    };
    position = digits(bytes, position);
    // A dot belongs to the number only when a digit follows: `4..16` is a range, `counts.x` a member.
    if bytes.get(position) == Some(&b'.') && bytes.get(position + 1).is_some_and(u8::is_ascii_digit) {
        position = digits(bytes, position + 1);
    }
    if matches!(bytes.get(position), Some(b'e' | b'E')) {
        let after_sign = if matches!(bytes.get(position + 1), Some(b'+' | b'-')) { position + 2 } else { position + 1 };
        if bytes.get(after_sign).is_some_and(u8::is_ascii_digit) {
            position = digits(bytes, after_sign);
        }
    }
    position
}

fn punctuation(rest: &[u8]) -> (TokenKind, usize) {
    let two = |kind| (kind, 2);
    let one = |kind| (kind, 1);
    match rest {
        [b'=', b'=', ..] => two(TokenKind::EqualsEquals),
        [b'!', b'=', ..] => two(TokenKind::NotEquals),
        [b'<', b'=', ..] => two(TokenKind::LessEquals),
        [b'>', b'=', ..] => two(TokenKind::GreaterEquals),
        [b'.', b'.', ..] => two(TokenKind::DotDot),
        [b'-', b'>', ..] => two(TokenKind::Arrow),
        [b'{', ..] => one(TokenKind::LeftBrace),
        [b'}', ..] => one(TokenKind::RightBrace),
        [b'(', ..] => one(TokenKind::LeftParen),
        [b')', ..] => one(TokenKind::RightParen),
        [b'[', ..] => one(TokenKind::LeftBracket),
        [b']', ..] => one(TokenKind::RightBracket),
        [b'=', ..] => one(TokenKind::Equals),
        [b'<', ..] => one(TokenKind::Less),
        [b'>', ..] => one(TokenKind::Greater),
        [b':', ..] => one(TokenKind::Colon),
        [b',', ..] => one(TokenKind::Comma),
        [b'.', ..] => one(TokenKind::Dot),
        [b'+', ..] => one(TokenKind::Plus),
        [b'-', ..] => one(TokenKind::Minus),
        [b'*', ..] => one(TokenKind::Star),
        [b'/', ..] => one(TokenKind::Slash),
        [b'%', ..] => one(TokenKind::Percent),
        [b'?', ..] => one(TokenKind::Question),
        _ => (TokenKind::Unknown, 1),
    }
}

/// Decodes the escapes of a one-line string token (quotes included). Returns the value and, for each bad
/// escape, its byte range relative to the token.
pub fn decode_string(token_text: &str) -> (String, Vec<(usize, usize)>) {
    let inner_end =
        if token_text.len() >= 2 && token_text.ends_with('"') { token_text.len() - 1 } else { token_text.len() };
    let inner = &token_text[1.min(token_text.len())..inner_end.max(1)];
    let mut value = String::with_capacity(inner.len());
    let mut bad = Vec::new();
    let mut chars = inner.char_indices().peekable();
    while let Some((index, character)) = chars.next() {
        if character != '\\' {
            value.push(character);
            continue;
        }
        let Some((_, escaped)) = chars.next() else {
            bad.push((index + 1, index + 2));
            break;
        };
        match escaped {
            'n' => value.push('\n'),
            't' => value.push('\t'),
            'r' => value.push('\r'),
            '\\' => value.push('\\'),
            '"' => value.push('"'),
            '0' => value.push('\0'),
            'u' => {
                let mut digits = String::new();
                let mut closed = false;
                if chars.peek().map(|(_, c)| *c) == Some('{') {
                    chars.next();
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        digits.push(c);
                    }
                }
                match u32::from_str_radix(&digits, 16).ok().and_then(char::from_u32) {
                    Some(decoded) if closed => value.push(decoded),
                    _ => bad.push((index + 1, index + 3 + digits.len() + usize::from(closed) + 1)),
                }
            }
            other => bad.push((index + 1, index + 1 + 1 + other.len_utf8())),
        }
    }
    (value, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        lex(FileId(0), text).0.into_iter().filter(|token| !token.kind.is_trivia()).map(|token| token.kind).collect()
    }

    #[test]
    fn lexing_is_lossless() {
        let text = "node a { cpu = 4  memory = 4 GiB } # hi\nx = \"a\\\"b\" 1..2 \"\"\"\nSELECT\n\"\"\" @@ é";
        let (tokens, _) = lex(FileId(0), text);
        let joined: String =
            tokens.iter().map(|token| &text[token.span.start as usize..token.span.end as usize]).collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn numbers_stop_before_ranges_and_members() {
        use TokenKind::*;
        assert_eq!(kinds("4..16"), vec![Number, DotDot, Number]);
        assert_eq!(kinds("0.5 1e3 2.5e-3"), vec![Number, Number, Number]);
        assert_eq!(kinds("50/s"), vec![Number, Slash, Ident]);
    }

    #[test]
    fn unknown_characters_are_reported_once_per_run() {
        let (tokens, diagnostics) = lex(FileId(0), "a @@@ b");
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(tokens.iter().filter(|token| token.kind == TokenKind::Unknown).count(), 1);
    }

    #[test]
    fn strings_decode_escapes() {
        assert_eq!(decode_string(r#""a\n\"b\u{41}""#), ("a\n\"bA".to_string(), vec![]));
        assert_eq!(decode_string(r#""bad\q""#).1, vec![(4, 6)]);
    }
}
