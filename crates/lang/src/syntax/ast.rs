//! The syntax tree. The surface syntax is uniform: a file and every `{ … }` block hold statements of five shapes
//! (attribute, field, bound, section, expression), and what a statement means is decided later by the checker.
//! Keeping the grammar uniform is what makes error recovery, formatting and new item kinds cheap.

use crate::source::Span;
use stratum_core::ir::{BinaryOp, UnaryOp};

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StringLiteral {
    pub value: String,
    /// Written as `"""…"""`.
    pub triple: bool,
    pub span: Span,
}

/// A parsed file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct File {
    pub statements: Vec<Statement>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub statements: Vec<Statement>,
    /// From `{` to `}` inclusive.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub kind: StatementKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StatementKind {
    /// `name = value`
    Attribute { name: Ident, value: Expr },
    /// `name: type modifiers…`, as in schemas: `plate: string private`
    Field { name: Ident, data_type: TypeExpr, modifiers: Vec<Ident> },
    /// `name <= value`, as in objectives: `p99 <= 20 ms`
    Bound { name: Ident, op: BinaryOp, op_span: Span, value: Expr },
    /// `keyword header… { … }` or `keyword header…` alone on its line: items and nested sections.
    Section(Section),
    /// A bare expression, as in dashboard panels: `line(counts.vehicles) by camera`
    Expr(Expr),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    pub keyword: Ident,
    pub header: Vec<HeaderPart>,
    pub body: Option<Block>,
}

impl Section {
    /// The first plain name of the header: the item's name in `node cam { … }`.
    pub fn name(&self) -> Option<&Ident> {
        match self.header.first() {
            Some(HeaderPart::Name(name)) => Some(name),
            _ => None,
        }
    }

    /// The `: kind` part of the header: `mqtt` in `source detections: mqtt { … }`.
    pub fn kind(&self) -> Option<&Ident> {
        self.header.iter().find_map(|part| match part {
            HeaderPart::Kind(kind) => Some(kind),
            _ => None,
        })
    }

    /// The first string of the header: the title in `app traffic "Smart traffic"` or `panel "Vehicles" { … }`.
    pub fn text(&self) -> Option<&StringLiteral> {
        self.header.iter().find_map(|part| match part {
            HeaderPart::Text(text) => Some(text),
            _ => None,
        })
    }

    pub fn statements(&self) -> &[Statement] {
        self.body.as_ref().map(|body| body.statements.as_slice()).unwrap_or(&[])
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum HeaderPart {
    Name(Ident),
    Text(StringLiteral),
    Arrow(Span),
    Kind(Ident),
}

impl HeaderPart {
    pub fn span(&self) -> Span {
        match self {
            HeaderPart::Name(ident) | HeaderPart::Kind(ident) => ident.span,
            HeaderPart::Text(text) => text.span,
            HeaderPart::Arrow(span) => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TypeKind {
    Named(Ident),
    /// `list<float>`, `optional<string>`
    Generic {
        name: Ident,
        argument: Box<TypeExpr>,
    },
    /// `string?`
    Optional(Box<TypeExpr>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

/// The words that may follow an expression to qualify it: `by camera`, `per node`, `last 50` …
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClauseKeyword {
    By,
    Per,
    Last,
    Within,
    Over,
    For,
}

impl ClauseKeyword {
    pub fn from_word(word: &str) -> Option<ClauseKeyword> {
        Some(match word {
            "by" => ClauseKeyword::By,
            "per" => ClauseKeyword::Per,
            "last" => ClauseKeyword::Last,
            "within" => ClauseKeyword::Within,
            "over" => ClauseKeyword::Over,
            "for" => ClauseKeyword::For,
            _ => return None,
        })
    }

    pub fn word(self) -> &'static str {
        match self {
            ClauseKeyword::By => "by",
            ClauseKeyword::Per => "per",
            ClauseKeyword::Last => "last",
            ClauseKeyword::Within => "within",
            ClauseKeyword::Over => "over",
            ClauseKeyword::For => "for",
        }
    }
}

/// Words that cannot be names because expressions give them a meaning.
pub const RESERVED_WORDS: &[&str] =
    &["true", "false", "and", "or", "not", "in", "by", "per", "last", "within", "over", "for"];

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A plain number; `text` is kept as written so formatting does not change it.
    Number {
        value: f64,
        integer: bool,
        text: String,
    },
    /// A number with a unit: `4 GiB`, `50/s`, `80%`, `0.34 USD/h`.
    Quantity {
        value: f64,
        integer: bool,
        text: String,
        unit: String,
        unit_span: Span,
    },
    /// `1 x "nvidia-t4"`
    Accelerator {
        count: f64,
        count_text: String,
        kind: StringLiteral,
    },
    String(StringLiteral),
    Bool(bool),
    Name(String),
    /// `counts.vehicles`
    Member {
        base: Box<Expr>,
        member: Ident,
    },
    Call {
        function: Ident,
        arguments: Vec<Expr>,
    },
    List(Vec<Expr>),
    /// `{ intersection: "5th-main" }`
    Map(Vec<MapEntry>),
    /// `mqtt { topic = "…" }`: a value that is itself configured by a block.
    Object {
        kind: Ident,
        body: Block,
    },
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `4..16`
    Range {
        start: Box<Expr>,
        end: Box<Expr>,
    },
    Clause {
        base: Box<Expr>,
        keyword: ClauseKeyword,
        keyword_span: Span,
        argument: Box<Expr>,
    },
    /// Stands in for an expression that did not parse; already reported.
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MapEntry {
    /// A name or a string.
    pub key: String,
    pub key_is_string: bool,
    pub key_span: Span,
    pub value: Expr,
}

impl Expr {
    /// The name this expression is, if it is a plain name.
    pub fn as_name(&self) -> Option<&str> {
        match &self.kind {
            ExprKind::Name(name) => Some(name),
            _ => None,
        }
    }

    /// Splits off trailing clauses: `tumbling(1 min) by camera` gives `tumbling(1 min)` and `[(by, camera)]`.
    pub fn split_clauses(&self) -> (&Expr, Vec<(ClauseKeyword, Span, &Expr)>) {
        let mut clauses = Vec::new();
        let mut current = self;
        while let ExprKind::Clause { base, keyword, keyword_span, argument } = &current.kind {
            clauses.push((*keyword, *keyword_span, argument.as_ref()));
            current = base;
        }
        clauses.reverse();
        (current, clauses)
    }
}
