//! The hand-written, error-recovering parser. A statement that does not parse yields one diagnostic and the
//! parser skips to the next line that starts a statement, so the rest of the file is still parsed and checked.
//! Recursion is bounded, so no input (deep nesting, megabyte lines, binary garbage) can overflow the stack.

use super::ast::*;
use super::lexer::{Token, TokenKind, decode_string, lex};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Span};
use stratum_core::ir::{BinaryOp, UnaryOp};

/// How deeply blocks and expressions may nest before the parser gives up on that statement.
const MAX_DEPTH: usize = 128;

/// Parses one file. Always returns a syntax tree; problems are in the diagnostics.
pub fn parse(file: FileId, text: &str) -> (File, Vec<Diagnostic>) {
    let (tokens, mut diagnostics) = lex(file, text);
    let mut parser = Parser::new(file, text, &tokens);
    let statements = parser.statements(false);
    diagnostics.append(&mut parser.diagnostics);
    (File { statements }, diagnostics)
}

/// A significant token (no trivia, no unknown characters) and whether a line break came before it.
#[derive(Clone, Copy, Debug)]
struct Significant {
    kind: TokenKind,
    span: Span,
    newline_before: bool,
}

/// Raised when a statement cannot be parsed; the diagnostic has already been recorded.
struct Stop;

type ParseResult<T> = Result<T, Stop>;

struct Parser<'a> {
    file: FileId,
    text: &'a str,
    tokens: Vec<Significant>,
    position: usize,
    depth: usize,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Parser<'a> {
    fn new(file: FileId, text: &'a str, tokens: &[Token]) -> Parser<'a> {
        let mut significant = Vec::with_capacity(tokens.len() / 2);
        let mut newline_before = true;
        for token in tokens {
            match token.kind {
                TokenKind::Newline => newline_before = true,
                TokenKind::Whitespace | TokenKind::Comment => {}
                // A triple-quoted string may span lines; what follows it is on a new line if the string ended one.
                TokenKind::Unknown => {}
                kind => {
                    significant.push(Significant { kind, span: token.span, newline_before });
                    newline_before = false;
                }
            }
        }
        Parser { file, text, tokens: significant, position: 0, depth: 0, diagnostics: Vec::new() }
    }

    // ---- token access -------------------------------------------------------------------------------------

    fn peek(&self) -> Option<Significant> {
        self.tokens.get(self.position).copied()
    }

    fn peek_kind(&self) -> Option<TokenKind> {
        self.peek().map(|token| token.kind)
    }

    fn peek_kind_at(&self, ahead: usize) -> Option<TokenKind> {
        self.tokens.get(self.position + ahead).map(|token| token.kind)
    }

    fn token_at(&self, ahead: usize) -> Option<Significant> {
        self.tokens.get(self.position + ahead).copied()
    }

    fn text_of(&self, span: Span) -> &'a str {
        &self.text[span.start as usize..span.end as usize]
    }

    fn peek_word(&self) -> Option<&'a str> {
        self.peek().filter(|token| token.kind == TokenKind::Ident).map(|token| self.text_of(token.span))
    }

    fn bump(&mut self) -> Significant {
        let token = self.tokens[self.position];
        self.position += 1;
        token
    }

    fn at(&self, kind: TokenKind) -> bool {
        self.peek_kind() == Some(kind)
    }

    fn eat(&mut self, kind: TokenKind) -> Option<Significant> {
        if self.at(kind) { Some(self.bump()) } else { None }
    }

    /// The span at the current token, or an empty span at the end of the file.
    fn here(&self) -> Span {
        match self.peek() {
            Some(token) => token.span,
            None => Span::new(self.file, self.text.len(), self.text.len()),
        }
    }

    fn describe_current(&self) -> String {
        match self.peek() {
            None => "the end of the file".to_string(),
            Some(token) if token.kind == TokenKind::Ident => format!("`{}`", self.text_of(token.span)),
            Some(token) if matches!(token.kind, TokenKind::Number) => format!("`{}`", self.text_of(token.span)),
            Some(token) => token.kind.describe().to_string(),
        }
    }

    fn error(
        &mut self,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) -> Stop {
        let diagnostic = Diagnostic::new(Code::SyntaxError, span, message).label(label).maybe_help(help);
        self.diagnostics.push(diagnostic);
        Stop
    }

    fn expected(&mut self, what: &str, help: Option<String>) -> Stop {
        let found = self.describe_current();
        let span = self.here();
        self.error(span, format!("expected {what}, found {found}"), format!("expected {what}"), help)
    }

    fn expect(&mut self, kind: TokenKind, help: Option<String>) -> ParseResult<Significant> {
        match self.eat(kind) {
            Some(token) => Ok(token),
            None => Err(self.expected(kind.describe(), help)),
        }
    }

    fn ident(&mut self, what: &str) -> ParseResult<Ident> {
        match self.peek() {
            Some(token) if token.kind == TokenKind::Ident => {
                self.bump();
                Ok(Ident { text: self.text_of(token.span).to_string(), span: token.span })
            }
            _ => Err(self.expected(what, None)),
        }
    }

    fn enter(&mut self) -> ParseResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let span = self.here();
            self.diagnostics.push(
                Diagnostic::new(Code::NestingTooDeep, span, format!("nesting deeper than {MAX_DEPTH} levels"))
                    .label("too deep here")
                    .help("flatten the structure: split it into named items that refer to each other"),
            );
            return Err(Stop);
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Counts one more link of a left-associative chain (`a + b + c`, `x by k within d`, `a.b.c`). Such chains
    /// are parsed in a loop but still build a tree as deep as they are long, which the checker, the formatter and
    /// even dropping the tree walk recursively; so each link counts toward the nesting limit.
    fn chain_link(&mut self, links: &mut usize) -> ParseResult<()> {
        *links += 1;
        if self.depth + *links > MAX_DEPTH {
            let span = self.here();
            self.diagnostics.push(
                Diagnostic::new(
                    Code::NestingTooDeep,
                    span,
                    format!("an expression chain longer than {MAX_DEPTH} links"),
                )
                .label("too long here")
                .help("split the expression into several computed fields"),
            );
            return Err(Stop);
        }
        Ok(())
    }

    // ---- statements --------------------------------------------------------------------------------------

    /// Statements until the end of the file, or until `}` when inside a block.
    fn statements(&mut self, inside_block: bool) -> Vec<Statement> {
        let mut statements = Vec::new();
        while let Some(token) = self.peek() {
            if token.kind == TokenKind::RightBrace {
                if inside_block {
                    break;
                }
                self.bump();
                self.error(
                    token.span,
                    "unmatched `}`",
                    "no `{` opens this",
                    Some("remove it, or add the missing `{`".into()),
                );
                continue;
            }
            let start = self.position;
            match self.statement() {
                Ok(statement) => statements.push(statement),
                Err(Stop) => self.recover(start),
            }
        }
        statements
    }

    /// Skips to the start of the next statement: a name at the start of a line, outside any brackets, or the `}`
    /// that closes the current block. Always moves past at least one token.
    fn recover(&mut self, statement_start: usize) {
        let mut depth = 0usize;
        if self.position == statement_start && self.peek().is_some() && !self.at(TokenKind::RightBrace) {
            let token = self.bump();
            depth =
                usize::from(matches!(token.kind, TokenKind::LeftBrace | TokenKind::LeftBracket | TokenKind::LeftParen));
        }
        while let Some(token) = self.peek() {
            match token.kind {
                TokenKind::LeftBrace | TokenKind::LeftBracket | TokenKind::LeftParen => depth += 1,
                TokenKind::RightBrace | TokenKind::RightBracket | TokenKind::RightParen => {
                    if depth == 0 {
                        if token.kind == TokenKind::RightBrace {
                            return;
                        }
                    } else {
                        depth -= 1;
                    }
                }
                // A name at the start of a line, or a name followed by `=`, starts the next statement.
                TokenKind::Ident
                    if depth == 0 && (token.newline_before || self.peek_kind_at(1) == Some(TokenKind::Equals)) =>
                {
                    return;
                }
                _ => {}
            }
            self.bump();
        }
    }

    fn statement(&mut self) -> ParseResult<Statement> {
        if !self.at(TokenKind::Ident) {
            let help = match self.peek_kind() {
                Some(TokenKind::String) => Some("a statement starts with a name, as in `name = value`".to_string()),
                Some(TokenKind::Slash) if self.peek_kind_at(1) == Some(TokenKind::Slash) => {
                    Some("comments start with `#`".to_string())
                }
                _ => None,
            };
            return Err(self.expected("a statement (a name such as `cpu = 4` or `node edge1 { … }`)", help));
        }
        if let Some(word) = self.peek_word().filter(|word| RESERVED_WORDS.contains(word)) {
            let span = self.here();
            return Err(self.error(
                span,
                format!("`{word}` is a reserved word and cannot start a statement"),
                "expected a name",
                Some(format!("reserved words are: {}", RESERVED_WORDS.join(", "))),
            ));
        }
        match self.peek_kind_at(1) {
            Some(TokenKind::Equals) => {
                let start = self.position;
                let name = self.ident("a name")?;
                self.bump();
                let value = if self.peek().is_none_or(|token| token.kind == TokenKind::RightBrace) {
                    Err(self.expected("a value after `=`", None))
                } else {
                    self.expr()
                };
                // A bad value still sets the attribute, so the checker does not also report it as missing.
                let value = value.unwrap_or_else(|Stop| {
                    self.recover(start);
                    Expr { kind: ExprKind::Error, span: name.span }
                });
                let span = name.span.to(value.span);
                Ok(Statement { kind: StatementKind::Attribute { name, value }, span })
            }
            Some(TokenKind::Colon) => {
                let name = self.ident("a name")?;
                self.bump();
                let data_type = self.type_expr()?;
                let mut modifiers = Vec::new();
                while let Some(token) = self.peek() {
                    let is_modifier = token.kind == TokenKind::Ident
                        && !token.newline_before
                        && !matches!(self.peek_kind_at(1), Some(TokenKind::Colon | TokenKind::Equals));
                    if !is_modifier {
                        break;
                    }
                    modifiers.push(self.ident("a modifier")?);
                }
                let end = modifiers.last().map(|modifier| modifier.span).unwrap_or(data_type.span);
                let span = name.span.to(end);
                Ok(Statement { kind: StatementKind::Field { name, data_type, modifiers }, span })
            }
            Some(kind @ (TokenKind::Less | TokenKind::LessEquals | TokenKind::Greater | TokenKind::GreaterEquals)) => {
                let name = self.ident("a name")?;
                let op_span = self.bump().span;
                let value = self.expr()?;
                let span = name.span.to(value.span);
                let op = comparison(kind).unwrap_or(BinaryOp::LessOrEqual);
                Ok(Statement { kind: StatementKind::Bound { name, op, op_span, value }, span })
            }
            Some(TokenKind::LeftParen) => {
                let value = self.expr()?;
                let span = value.span;
                Ok(Statement { kind: StatementKind::Expr(value), span })
            }
            _ => self.section(),
        }
    }

    fn section(&mut self) -> ParseResult<Statement> {
        let keyword_index = self.position;
        let keyword_token = self.peek().expect("section starts at a name");
        let keyword = self.ident("a name")?;
        let mut header = Vec::new();
        let mut body = None;
        while let Some(token) = self.peek() {
            if token.newline_before {
                break;
            }
            match token.kind {
                TokenKind::Ident => header.push(HeaderPart::Name(self.ident("a name")?)),
                TokenKind::String | TokenKind::TripleString => header.push(HeaderPart::Text(self.string_literal())),
                TokenKind::Arrow => header.push(HeaderPart::Arrow(self.bump().span)),
                TokenKind::Colon => {
                    self.bump();
                    header.push(HeaderPart::Kind(self.ident("a kind after `:`, as in `source detections: mqtt`")?));
                }
                TokenKind::LeftBrace => {
                    body = Some(self.block()?);
                    break;
                }
                _ => break,
            }
        }
        if body.is_none() {
            if let Some(next) = self.peek()
                && !next.newline_before
                && next.kind != TokenKind::RightBrace
            {
                let help = if next.kind == TokenKind::Equals {
                    Some("an attribute is `name = value`, with one name before `=`".to_string())
                } else {
                    Some(format!("put `{{` after `{}` to open its block, or start a new line", keyword.text))
                };
                return Err(self.expected("`{` or the end of the line", help));
            }
            let after_brace =
                keyword_index.checked_sub(1).is_some_and(|previous| self.tokens[previous].kind == TokenKind::LeftBrace);
            let alone_on_line = keyword_token.newline_before || after_brace;
            if header.is_empty() && !alone_on_line {
                let span = keyword.span;
                return Err(self.error(
                    span,
                    format!("unexpected `{}`", keyword.text),
                    "expected `=` after this name",
                    Some(format!("to set an attribute write `{} = value`", keyword.text)),
                ));
            }
        }
        let end = body
            .as_ref()
            .map(|block| block.span)
            .or_else(|| header.last().map(HeaderPart::span))
            .unwrap_or(keyword.span);
        let span = keyword.span.to(end);
        Ok(Statement { kind: StatementKind::Section(Section { keyword, header, body }), span })
    }

    fn block(&mut self) -> ParseResult<Block> {
        self.enter()?;
        let open = self.expect(TokenKind::LeftBrace, None)?;
        let statements = self.statements(true);
        let close = match self.eat(TokenKind::RightBrace) {
            Some(close) => close.span,
            None => {
                self.diagnostics.push(
                    Diagnostic::new(Code::UnclosedDelimiter, open.span, "unclosed `{`")
                        .label("this `{` is never closed")
                        .help("add `}` where the block ends"),
                );
                Span::new(self.file, self.text.len(), self.text.len())
            }
        };
        self.leave();
        Ok(Block { statements, span: open.span.to(close) })
    }

    fn type_expr(&mut self) -> ParseResult<TypeExpr> {
        self.enter()?;
        let name = self.ident("a type such as `string`, `float` or `list<int>`")?;
        let mut data_type = if self.at(TokenKind::Less) {
            self.bump();
            let argument = self.type_expr()?;
            let close =
                self.expect(TokenKind::Greater, Some(format!("close the type with `>`, as in `{}<int>`", name.text)))?;
            let span = name.span.to(close.span);
            TypeExpr { kind: TypeKind::Generic { name, argument: Box::new(argument) }, span }
        } else {
            TypeExpr { span: name.span, kind: TypeKind::Named(name) }
        };
        if let Some(question) = self.eat(TokenKind::Question) {
            let span = data_type.span.to(question.span);
            data_type = TypeExpr { kind: TypeKind::Optional(Box::new(data_type)), span };
        }
        self.leave();
        Ok(data_type)
    }

    // ---- expressions -------------------------------------------------------------------------------------

    fn expr(&mut self) -> ParseResult<Expr> {
        self.enter()?;
        let mut expr = self.range()?;
        let mut links = 0;
        while let Some(keyword) = self.peek_word().and_then(ClauseKeyword::from_word) {
            if self.peek_kind_at(1) == Some(TokenKind::Equals) {
                break;
            }
            self.chain_link(&mut links)?;
            let keyword_span = self.bump().span;
            let argument = self.range()?;
            let span = expr.span.to(argument.span);
            expr = Expr {
                kind: ExprKind::Clause { base: Box::new(expr), keyword, keyword_span, argument: Box::new(argument) },
                span,
            };
        }
        self.leave();
        Ok(expr)
    }

    fn range(&mut self) -> ParseResult<Expr> {
        let start = self.or()?;
        if self.eat(TokenKind::DotDot).is_some() {
            let end = self.or()?;
            let span = start.span.to(end.span);
            return Ok(Expr { kind: ExprKind::Range { start: Box::new(start), end: Box::new(end) }, span });
        }
        Ok(start)
    }

    fn binary(left: Expr, op: BinaryOp, right: Expr) -> Expr {
        let span = left.span.to(right.span);
        Expr { kind: ExprKind::Binary { op, left: Box::new(left), right: Box::new(right) }, span }
    }

    fn or(&mut self) -> ParseResult<Expr> {
        let mut left = self.and()?;
        let mut links = 0;
        while self.peek_word() == Some("or") {
            self.chain_link(&mut links)?;
            self.bump();
            let right = self.and()?;
            left = Self::binary(left, BinaryOp::Or, right);
        }
        Ok(left)
    }

    fn and(&mut self) -> ParseResult<Expr> {
        let mut left = self.not()?;
        let mut links = 0;
        while self.peek_word() == Some("and") {
            self.chain_link(&mut links)?;
            self.bump();
            let right = self.not()?;
            left = Self::binary(left, BinaryOp::And, right);
        }
        Ok(left)
    }

    fn not(&mut self) -> ParseResult<Expr> {
        if self.peek_word() == Some("not") {
            self.enter()?;
            let keyword = self.bump().span;
            let operand = self.not()?;
            self.leave();
            let span = keyword.to(operand.span);
            return Ok(Expr { kind: ExprKind::Unary { op: UnaryOp::Not, operand: Box::new(operand) }, span });
        }
        self.comparison()
    }

    fn comparison(&mut self) -> ParseResult<Expr> {
        let left = self.additive()?;
        if let Some(op) = self.peek_kind().and_then(comparison) {
            self.bump();
            let right = self.additive()?;
            return Ok(Self::binary(left, op, right));
        }
        if self.peek_word() == Some("in") {
            self.bump();
            let right = self.additive()?;
            return Ok(Self::binary(left, BinaryOp::In, right));
        }
        if self.peek_word() == Some("not") && self.token_at(1).is_some_and(|token| self.text_of(token.span) == "in") {
            let not_span = self.bump().span;
            self.bump();
            let right = self.additive()?;
            let inner = Self::binary(left, BinaryOp::In, right);
            let span = inner.span.to(not_span);
            return Ok(Expr { kind: ExprKind::Unary { op: UnaryOp::Not, operand: Box::new(inner) }, span });
        }
        Ok(left)
    }

    fn additive(&mut self) -> ParseResult<Expr> {
        let mut left = self.multiplicative()?;
        let mut links = 0;
        loop {
            let op = match self.peek_kind() {
                Some(TokenKind::Plus) => BinaryOp::Add,
                Some(TokenKind::Minus) => BinaryOp::Subtract,
                _ => return Ok(left),
            };
            self.chain_link(&mut links)?;
            self.bump();
            let right = self.multiplicative()?;
            left = Self::binary(left, op, right);
        }
    }

    fn multiplicative(&mut self) -> ParseResult<Expr> {
        let mut left = self.unary()?;
        let mut links = 0;
        loop {
            let op = match self.peek_kind() {
                Some(TokenKind::Star) => BinaryOp::Multiply,
                Some(TokenKind::Slash) => BinaryOp::Divide,
                _ => return Ok(left),
            };
            self.chain_link(&mut links)?;
            self.bump();
            let right = self.unary()?;
            left = Self::binary(left, op, right);
        }
    }

    fn unary(&mut self) -> ParseResult<Expr> {
        if let Some(minus) = self.eat(TokenKind::Minus) {
            self.enter()?;
            let operand = self.unary()?;
            self.leave();
            let span = minus.span.to(operand.span);
            return Ok(Expr { kind: ExprKind::Unary { op: UnaryOp::Negate, operand: Box::new(operand) }, span });
        }
        self.postfix()
    }

    fn postfix(&mut self) -> ParseResult<Expr> {
        let mut expr = self.primary()?;
        let mut links = 0;
        while self.at(TokenKind::Dot) {
            self.chain_link(&mut links)?;
            self.bump();
            let member = self.ident("a field name after `.`")?;
            let span = expr.span.to(member.span);
            expr = Expr { kind: ExprKind::Member { base: Box::new(expr), member }, span };
        }
        Ok(expr)
    }

    fn primary(&mut self) -> ParseResult<Expr> {
        let Some(token) = self.peek() else {
            return Err(self.expected("a value", None));
        };
        match token.kind {
            TokenKind::Number => self.number(),
            TokenKind::String | TokenKind::TripleString => {
                let literal = self.string_literal();
                Ok(Expr { span: literal.span, kind: ExprKind::String(literal) })
            }
            TokenKind::Ident => {
                let word = self.text_of(token.span);
                match word {
                    "true" | "false" => {
                        self.bump();
                        return Ok(Expr { kind: ExprKind::Bool(word == "true"), span: token.span });
                    }
                    "if" => return self.conditional(),
                    _ if RESERVED_WORDS.contains(&word) => {
                        return Err(self.error(
                            token.span,
                            format!("`{word}` is a reserved word and cannot stand here"),
                            "expected a value",
                            Some(format!("reserved words are: {}", RESERVED_WORDS.join(", "))),
                        ));
                    }
                    _ => {}
                }
                let name = self.ident("a name")?;
                match self.peek() {
                    Some(next) if next.kind == TokenKind::LeftParen => self.call(name),
                    Some(next) if next.kind == TokenKind::LeftBrace && !next.newline_before => {
                        let body = self.block()?;
                        let span = name.span.to(body.span);
                        Ok(Expr { kind: ExprKind::Object { kind: name, body }, span })
                    }
                    _ => Ok(Expr { kind: ExprKind::Name(name.text), span: name.span }),
                }
            }
            TokenKind::LeftBracket => self.list(),
            TokenKind::LeftBrace => self.map(),
            TokenKind::LeftParen => {
                self.enter()?;
                let open = self.bump();
                let inner = self.expr()?;
                self.close(TokenKind::RightParen, open.span)?;
                self.leave();
                Ok(inner)
            }
            _ => Err(self.expected("a value", None)),
        }
    }

    /// Expects the closing bracket of a list, call or group, reporting the opening one if it is missing.
    fn close(&mut self, kind: TokenKind, open: Span) -> ParseResult<Significant> {
        if let Some(token) = self.eat(kind) {
            return Ok(token);
        }
        if self.peek().is_none() {
            self.diagnostics.push(
                Diagnostic::new(Code::UnclosedDelimiter, open, format!("unclosed `{}`", self.text_of(open)))
                    .label("this is never closed")
                    .help(format!("add {} where it ends", kind.describe())),
            );
            return Err(Stop);
        }
        Err(self.expected(&format!("{} or `,`", kind.describe()), None))
    }

    /// `if CONDITION then A else B`; `else` is required, so every record gets a value. Each part reads up to the
    /// next keyword; the `else` part as far as it goes, so `else if …` chains.
    fn conditional(&mut self) -> ParseResult<Expr> {
        self.enter()?;
        let keyword = self.bump().span;
        let condition = self.or()?;
        self.word("then", "write `if CONDITION then VALUE else VALUE`")?;
        let then = self.or()?;
        self.word("else", "every record needs a value: add `else VALUE`")?;
        let otherwise = self.or()?;
        self.leave();
        let span = keyword.to(otherwise.span);
        let kind =
            ExprKind::If { condition: Box::new(condition), then: Box::new(then), otherwise: Box::new(otherwise) };
        Ok(Expr { kind, span })
    }

    /// Expects the keyword `word`.
    fn word(&mut self, word: &str, help: &str) -> ParseResult<()> {
        if self.peek_word() == Some(word) {
            self.bump();
            return Ok(());
        }
        Err(self.expected(&format!("`{word}`"), Some(help.to_string())))
    }

    fn call(&mut self, function: Ident) -> ParseResult<Expr> {
        self.enter()?;
        let open = self.bump();
        let mut arguments = Vec::new();
        while !self.at(TokenKind::RightParen) && self.peek().is_some() {
            arguments.push(self.expr()?);
            if self.eat(TokenKind::Comma).is_none() {
                break;
            }
        }
        let close = self.close(TokenKind::RightParen, open.span)?;
        self.leave();
        let span = function.span.to(close.span);
        Ok(Expr { kind: ExprKind::Call { function, arguments }, span })
    }

    fn list(&mut self) -> ParseResult<Expr> {
        self.enter()?;
        let open = self.bump();
        let mut items = Vec::new();
        while !self.at(TokenKind::RightBracket) && self.peek().is_some() {
            items.push(self.expr()?);
            if self.eat(TokenKind::Comma).is_none() {
                break;
            }
        }
        let close = self.close(TokenKind::RightBracket, open.span)?;
        self.leave();
        Ok(Expr { kind: ExprKind::List(items), span: open.span.to(close.span) })
    }

    fn map(&mut self) -> ParseResult<Expr> {
        self.enter()?;
        let open = self.bump();
        let mut entries = Vec::new();
        while !self.at(TokenKind::RightBrace) && self.peek().is_some() {
            let (key, key_is_string, key_span) = match self.peek_kind() {
                Some(TokenKind::Ident) => {
                    let ident = self.ident("a key")?;
                    (ident.text, false, ident.span)
                }
                Some(TokenKind::String) => {
                    let literal = self.string_literal();
                    (literal.value, true, literal.span)
                }
                _ => return Err(self.expected("a key (a name or a string) in `{ key: value }`", None)),
            };
            self.expect(TokenKind::Colon, Some("map entries are written `key: value`".into()))?;
            let value = self.expr()?;
            entries.push(MapEntry { key, key_is_string, key_span, value });
            self.eat(TokenKind::Comma);
        }
        let close = self.close(TokenKind::RightBrace, open.span)?;
        self.leave();
        Ok(Expr { kind: ExprKind::Map(entries), span: open.span.to(close.span) })
    }

    fn string_literal(&mut self) -> StringLiteral {
        let token = self.bump();
        let text = self.text_of(token.span);
        if token.kind == TokenKind::TripleString {
            let inner = text.strip_prefix("\"\"\"").unwrap_or(text);
            let inner = inner.strip_suffix("\"\"\"").unwrap_or(inner);
            return StringLiteral { value: inner.to_string(), triple: true, span: token.span };
        }
        let (value, bad_escapes) = decode_string(text);
        for (start, end) in bad_escapes {
            let offset = token.span.start as usize;
            let span = Span::new(self.file, offset + start, (offset + end).min(token.span.end as usize));
            self.diagnostics.push(
                Diagnostic::new(Code::InvalidEscape, span, format!("unknown escape `{}`", self.text_of(span)))
                    .label("not an escape the language knows")
                    .help("escapes are \\n \\t \\r \\\\ \\\" \\0 and \\u{…}; write \\\\ for a backslash"),
            );
        }
        StringLiteral { value, triple: false, span: token.span }
    }

    fn number(&mut self) -> ParseResult<Expr> {
        let token = self.bump();
        let text = self.text_of(token.span);
        let cleaned = text.replace('_', "");
        let integer = !cleaned.contains(['.', 'e', 'E']);
        let value: f64 = match cleaned.parse::<f64>() {
            Ok(value) if value.is_finite() => value,
            _ => {
                return Err(self.error(
                    token.span,
                    format!("`{text}` is not a number this language can hold"),
                    "invalid number",
                    Some("numbers must be finite: at most about 1.8e308".into()),
                ));
            }
        };
        let number_span = token.span;
        let text = text.to_string();

        // `80%`: a percent sign right after the number.
        if let Some(next) = self.peek()
            && next.kind == TokenKind::Percent
            && next.span.start == number_span.end
        {
            self.bump();
            let span = number_span.to(next.span);
            return Ok(Expr {
                kind: ExprKind::Quantity { value, integer, text, unit: "%".into(), unit_span: next.span },
                span,
            });
        }
        // `50/s`: a rate.
        if self.at(TokenKind::Slash)
            && let Some(after) = self.token_at(1)
            && after.kind == TokenKind::Ident
            && is_time_unit(self.text_of(after.span))
        {
            let slash = self.bump();
            let unit_token = self.bump();
            let unit = format!("/{}", self.text_of(unit_token.span));
            let unit_span = slash.span.to(unit_token.span);
            return Ok(Expr {
                kind: ExprKind::Quantity { value, integer, text, unit, unit_span },
                span: number_span.to(unit_span),
            });
        }
        // `4 GiB`, `100 Mbit/s`, `1 x "nvidia-t4"`: a name right after the number, on its line.
        if let Some(next) = self.peek()
            && next.kind == TokenKind::Ident
            && !next.newline_before
        {
            let word = self.text_of(next.span);
            let follower = self.peek_kind_at(1);
            if word == "x" && matches!(follower, Some(TokenKind::String)) {
                self.bump();
                let kind = self.string_literal();
                let span = number_span.to(kind.span);
                return Ok(Expr { kind: ExprKind::Accelerator { count: value, count_text: text, kind }, span });
            }
            let starts_statement = matches!(
                follower,
                Some(
                    TokenKind::Equals
                        | TokenKind::Colon
                        | TokenKind::LeftBrace
                        | TokenKind::LeftParen
                        | TokenKind::String
                        | TokenKind::Less
                        | TokenKind::LessEquals
                        | TokenKind::Greater
                        | TokenKind::GreaterEquals
                )
            );
            // `then` is no unit: it ends the condition of an `if` (it is not reserved, as policies have a
            // `then` attribute).
            if !starts_statement && !RESERVED_WORDS.contains(&word) && word != "then" {
                let unit_token = self.bump();
                let mut unit = word.to_string();
                let mut unit_span = unit_token.span;
                if let Some(slash) = self.peek()
                    && slash.kind == TokenKind::Slash
                    && slash.span.start == unit_span.end
                    && let Some(per) = self.token_at(1)
                    && per.kind == TokenKind::Ident
                    && per.span.start == slash.span.end
                {
                    self.bump();
                    self.bump();
                    unit = format!("{unit}/{}", self.text_of(per.span));
                    unit_span = unit_span.to(per.span);
                }
                return Ok(Expr {
                    kind: ExprKind::Quantity { value, integer, text, unit, unit_span },
                    span: number_span.to(unit_span),
                });
            }
        }
        Ok(Expr { kind: ExprKind::Number { value, integer, text }, span: number_span })
    }
}

fn comparison(kind: TokenKind) -> Option<BinaryOp> {
    Some(match kind {
        TokenKind::EqualsEquals => BinaryOp::Equal,
        TokenKind::NotEquals => BinaryOp::NotEqual,
        TokenKind::Less => BinaryOp::Less,
        TokenKind::LessEquals => BinaryOp::LessOrEqual,
        TokenKind::Greater => BinaryOp::Greater,
        TokenKind::GreaterEquals => BinaryOp::GreaterOrEqual,
        _ => return None,
    })
}

fn is_time_unit(word: &str) -> bool {
    matches!(word, "ms" | "s" | "min" | "h" | "d")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> File {
        let (file, diagnostics) = parse(FileId(0), text);
        assert!(diagnostics.is_empty(), "unexpected diagnostics: {diagnostics:#?}");
        file
    }

    fn attribute_value(statement: &Statement) -> &Expr {
        match &statement.kind {
            StatementKind::Attribute { value, .. } => value,
            other => panic!("not an attribute: {other:?}"),
        }
    }

    #[test]
    fn several_attributes_share_a_line() {
        let file = parse_ok("node cam { tier = edge  cpu = 4  memory = 4 GiB  arch = aarch64 }");
        let StatementKind::Section(section) = &file.statements[0].kind else { panic!() };
        assert_eq!(section.statements().len(), 4);
        let memory = attribute_value(&section.statements()[2]);
        assert!(matches!(&memory.kind, ExprKind::Quantity { unit, .. } if unit == "GiB"));
    }

    #[test]
    fn units_rates_and_accelerators() {
        let file = parse_ok("a = 50/s per node\nb = 100 Mbit/s\nc = 1 x \"nvidia-t4\"\nd = 80%\ne = 0.34 USD/h");
        let units: Vec<String> = file
            .statements
            .iter()
            .map(|statement| match &attribute_value(statement).split_clauses().0.kind {
                ExprKind::Quantity { unit, .. } => unit.clone(),
                ExprKind::Accelerator { kind, .. } => kind.value.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(units, ["/s", "Mbit/s", "nvidia-t4", "%", "USD/h"]);
    }

    #[test]
    fn clauses_attach_to_expressions() {
        let file = parse_ok("window = tumbling(1 min) by camera");
        let (base, clauses) = attribute_value(&file.statements[0]).split_clauses();
        assert!(matches!(&base.kind, ExprKind::Call { function, .. } if function.text == "tumbling"));
        assert_eq!(clauses.len(), 1);
        assert_eq!(clauses[0].0, ClauseKeyword::By);
    }

    #[test]
    fn one_bad_line_is_one_error_and_the_rest_parses() {
        let (file, diagnostics) = parse(FileId(0), "node a {\n  cpu = = 4\n  memory = 4 GiB\n}\nnode b { cpu = 2 }\n");
        assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
        assert_eq!(file.statements.len(), 2);
        let StatementKind::Section(section) = &file.statements[0].kind else { panic!() };
        // The bad attribute is kept with an error value, so nobody reports `cpu` as missing.
        assert_eq!(section.statements().len(), 2);
        assert!(
            matches!(&section.statements()[0].kind, StatementKind::Attribute { value, .. } if value.kind == ExprKind::Error)
        );
    }

    #[test]
    fn schema_fields_and_modifiers() {
        let file = parse_ok("schema D { camera: string  plate: string private  speeds: list<float>  note: string? }");
        let StatementKind::Section(section) = &file.statements[0].kind else { panic!() };
        assert_eq!(section.statements().len(), 4);
        let StatementKind::Field { modifiers, .. } = &section.statements()[1].kind else { panic!() };
        assert_eq!(modifiers[0].text, "private");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = format!("x = {}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let (_, diagnostics) = parse(FileId(0), &text);
        assert!(diagnostics.iter().any(|diagnostic| diagnostic.code == Code::NestingTooDeep));
    }

    #[test]
    fn unclosed_block_is_reported_at_its_opening() {
        let (_, diagnostics) = parse(FileId(0), "node a {\n cpu = 4\n");
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].code, Code::UnclosedDelimiter);
        assert_eq!(diagnostics[0].span.start, 7);
    }
}
