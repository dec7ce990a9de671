//! The syntax tree. The surface syntax is uniform: a file and every `{ … }` block hold statements of five shapes
//! (attribute, field, bound, section, expression), and what a statement means is decided later by the checker.
//! Keeping the grammar uniform is what makes error recovery, formatting and new item kinds cheap.

use crate::source::Span;
use stratum_core::ir::{BinaryOp, UnaryOp};

/// A name as written, with where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    /// The name.
    pub text: String,
    /// Where it is written.
    pub span: Span,
}

/// A string as written: its value with escapes resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct StringLiteral {
    /// The string, escapes resolved.
    pub value: String,
    /// Written as `"""…"""`.
    pub triple: bool,
    /// From the opening quote to the closing one.
    pub span: Span,
}

/// A parsed file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct File {
    /// Its statements in order.
    pub statements: Vec<Statement>,
}

/// `{ … }`: the statements of an item or a section.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// Its statements in order.
    pub statements: Vec<Statement>,
    /// From `{` to `}` inclusive.
    pub span: Span,
}

/// One statement: a line of a file or a block (a section spans its block).
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// Which of the five shapes it has.
    pub kind: StatementKind,
    /// The whole statement.
    pub span: Span,
}

/// The five shapes of a statement; the checker decides what each means where it stands.
#[derive(Clone, Debug, PartialEq)]
pub enum StatementKind {
    /// `name = value`
    Attribute {
        /// What is set.
        name: Ident,
        /// Its value.
        value: Expr,
    },
    /// `name: type modifiers…`, as in schemas: `plate: string private`
    Field {
        /// The field's name.
        name: Ident,
        /// Its type.
        data_type: TypeExpr,
        /// The words after the type (`private`).
        modifiers: Vec<Ident>,
    },
    /// `name <= value`, as in objectives: `p99 <= 20 ms`
    Bound {
        /// What is bounded.
        name: Ident,
        /// The comparison (`<=`, `<`, `>=`, `>`, `==`).
        op: BinaryOp,
        /// Where the comparison is written.
        op_span: Span,
        /// The bound.
        value: Expr,
    },
    /// `keyword header… { … }` or `keyword header…` alone on its line: items and nested sections.
    Section(Section),
    /// A bare expression, as in dashboard panels: `line(counts.vehicles) by camera`
    Expr(Expr),
}

/// `keyword header… { … }`: an item (`node cam { … }`) or a nested section (`select { … }`).
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    /// The first word: `node`, `source`, `select` …
    pub keyword: Ident,
    /// What follows the keyword before the block: names, strings, `->`, `: kind`.
    pub header: Vec<HeaderPart>,
    /// The block, when it has one.
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

    /// The statements of its block (none without one).
    pub fn statements(&self) -> &[Statement] {
        self.body.as_ref().map(|body| body.statements.as_slice()).unwrap_or(&[])
    }
}

/// One part of a section's header.
#[derive(Clone, Debug, PartialEq)]
pub enum HeaderPart {
    /// A name: `cam` in `node cam`, `edge` and `cloud` in `link edge -> cloud`.
    Name(Ident),
    /// A string: the title in `app traffic "Smart traffic"`.
    Text(StringLiteral),
    /// `->`, between a link's ends.
    Arrow(Span),
    /// `: kind`: `mqtt` in `source detections: mqtt`.
    Kind(Ident),
}

impl HeaderPart {
    /// Where it is written.
    pub fn span(&self) -> Span {
        match self {
            HeaderPart::Name(ident) | HeaderPart::Kind(ident) => ident.span,
            HeaderPart::Text(text) => text.span,
            HeaderPart::Arrow(span) => *span,
        }
    }
}

/// A type as written in a field: `string`, `list<float>`, `int?`.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeExpr {
    /// Its shape.
    pub kind: TypeKind,
    /// The whole type.
    pub span: Span,
}

/// The shapes a type is written in.
#[derive(Clone, Debug, PartialEq)]
pub enum TypeKind {
    /// A plain type name: `string`, `timestamp`.
    Named(Ident),
    /// `list<float>`, `optional<string>`
    Generic {
        /// `list`, `optional`.
        name: Ident,
        /// The type in the angle brackets.
        argument: Box<TypeExpr>,
    },
    /// `string?`
    Optional(Box<TypeExpr>),
}

/// An expression as written: values, names, calls, operators and clauses.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// Its shape.
    pub kind: ExprKind,
    /// The whole expression.
    pub span: Span,
}

/// The words that may follow an expression to qualify it: `by camera`, `per node`, `last 50` …
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClauseKeyword {
    /// `by camera`: a key.
    By,
    /// `per node`: once for each.
    Per,
    /// `last 50`: how many of the latest.
    Last,
    /// `within 2 s`: a time bound (joins).
    Within,
    /// `over 5 min`: a time span (policy conditions).
    Over,
    /// `for 1 min`: how long a condition holds.
    For,
}

impl ClauseKeyword {
    /// The keyword a word is, if any.
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

    /// The keyword as written.
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
    &["true", "false", "and", "or", "not", "in", "by", "per", "last", "within", "over", "for", "if", "else"];

/// The shapes of an expression.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A plain number; `text` is kept as written so formatting does not change it.
    Number {
        /// Its value.
        value: f64,
        /// Written without a fraction or exponent.
        integer: bool,
        /// As written.
        text: String,
    },
    /// A number with a unit: `4 GiB`, `50/s`, `80%`, `0.34 USD/h`.
    Quantity {
        /// The number's value, in the unit written.
        value: f64,
        /// The number is written without a fraction or exponent.
        integer: bool,
        /// The number as written.
        text: String,
        /// The unit as written.
        unit: String,
        /// Where the unit is written.
        unit_span: Span,
    },
    /// `1 x "nvidia-t4"`
    Accelerator {
        /// How many.
        count: f64,
        /// The count as written.
        count_text: String,
        /// Which accelerator.
        kind: StringLiteral,
    },
    /// A string.
    String(StringLiteral),
    /// `true` or `false`.
    Bool(bool),
    /// A plain name.
    Name(String),
    /// `counts.vehicles`
    Member {
        /// What the member is of.
        base: Box<Expr>,
        /// The member.
        member: Ident,
    },
    /// `count()`, `tumbling(1 min)`.
    Call {
        /// The function's name.
        function: Ident,
        /// Its arguments in order.
        arguments: Vec<Expr>,
    },
    /// `[a, b]`
    List(Vec<Expr>),
    /// `{ intersection: "5th-main" }`
    Map(Vec<MapEntry>),
    /// `mqtt { topic = "…" }`: a value that is itself configured by a block.
    Object {
        /// The word before the block: `mqtt`.
        kind: Ident,
        /// Its configuration.
        body: Block,
    },
    /// `not x`, `-x`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// What it applies to.
        operand: Box<Expr>,
    },
    /// `a + b`, `x > 3 and y`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// The left operand.
        left: Box<Expr>,
        /// The right operand.
        right: Box<Expr>,
    },
    /// `4..16`
    Range {
        /// The lower end.
        start: Box<Expr>,
        /// The upper end.
        end: Box<Expr>,
    },
    /// `if queue > 10 then 20 s else 0 s`.
    If {
        /// A bool.
        condition: Box<Expr>,
        /// The value when the condition holds.
        then: Box<Expr>,
        /// The value when it does not.
        otherwise: Box<Expr>,
    },
    /// An expression qualified by a clause: `tumbling(1 min) by camera`.
    Clause {
        /// What the clause qualifies.
        base: Box<Expr>,
        /// The clause's keyword.
        keyword: ClauseKeyword,
        /// Where the keyword is written.
        keyword_span: Span,
        /// What follows the keyword.
        argument: Box<Expr>,
    },
    /// Stands in for an expression that did not parse; already reported.
    Error,
}

/// `key: value` in a map.
#[derive(Clone, Debug, PartialEq)]
pub struct MapEntry {
    /// A name or a string.
    pub key: String,
    /// The key is written as a string (`"5th-main": …`), not a name.
    pub key_is_string: bool,
    /// Where the key is written.
    pub key_span: Span,
    /// Its value.
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
