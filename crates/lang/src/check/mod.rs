//! The checker: resolves names across files, reads every item's attributes, infers schemas, checks types,
//! units and ranges, runs the semantic checks, and lowers what it read into the IR.
//!
//! Items are lowered on demand and memoised, so a stream can read another stream defined further down, and a
//! cycle between streams is found the moment lowering re-enters an item that is still in progress.

mod attributes;
mod data;
mod expressions;
mod flow;
mod infrastructure;
mod ml;
mod operations;
mod sql;

pub(crate) use expressions::function_names;
pub(crate) use ml::algorithm_names;

use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, SourceLoader, SourceMap, Span};
use crate::suggest;
use crate::syntax::ast::{self, HeaderPart, Section, StatementKind};
use crate::syntax::parser;
use std::collections::{HashMap, HashSet};
use stratum_core::ir::*;
use stratum_core::types::{Field, Schema};

/// The result of checking a file and its imports.
#[derive(Debug)]
pub struct Checked {
    /// The file and every file it imports, for rendering diagnostics.
    pub sources: SourceMap,
    /// The file checked (the others are its imports).
    pub root: FileId,
    /// Sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// The lowered application. Complete and trustworthy only when there are no errors.
    pub application: Application,
    /// Where each item and attribute was written, so later stages (the planner) can point at the file.
    pub spans: SpanIndex,
}

/// Spans of items and their attributes by name: `counts` (the item's name), `counts.window`,
/// `signal_timing.slo.p99`, `detections.buffer.max`.
#[derive(Debug, Default)]
pub struct SpanIndex {
    spans: HashMap<String, Span>,
}

impl SpanIndex {
    /// The span of an item's name.
    pub fn item(&self, name: &str) -> Option<Span> {
        self.spans.get(name).copied()
    }

    /// The span of an attribute's value (`path` like `slo.p99`), falling back to the item's name.
    pub fn attribute(&self, item: &str, path: &str) -> Option<Span> {
        self.spans.get(&format!("{item}.{path}")).copied().or_else(|| self.item(item))
    }

    fn record(&mut self, prefix: &str, statements: &[ast::Statement]) {
        for statement in statements {
            match &statement.kind {
                StatementKind::Attribute { name, value } | StatementKind::Bound { name, value, .. } => {
                    self.spans.entry(format!("{prefix}.{}", name.text)).or_insert(value.span);
                }
                StatementKind::Section(section) => {
                    let key = format!("{prefix}.{}", section.keyword.text);
                    self.spans.entry(key.clone()).or_insert(section.keyword.span);
                    self.record(&key, section.statements());
                }
                _ => {}
            }
        }
    }
}

impl Checked {
    /// Whether any diagnostic is an error (warnings leave the application runnable).
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|diagnostic| diagnostic.severity() == crate::diagnostic::Severity::Error)
    }
}

/// The kinds of top-level item, in the order docs/language.md presents them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ItemKind {
    App,
    Import,
    Node,
    Pool,
    Link,
    Schema,
    Source,
    Stream,
    Sink,
    Dataset,
    Batch,
    Model,
    Service,
    Tool,
    Dashboard,
    Policy,
    Objective,
}

impl ItemKind {
    const ALL: &'static [ItemKind] = &[
        ItemKind::App,
        ItemKind::Import,
        ItemKind::Node,
        ItemKind::Pool,
        ItemKind::Link,
        ItemKind::Schema,
        ItemKind::Source,
        ItemKind::Stream,
        ItemKind::Sink,
        ItemKind::Dataset,
        ItemKind::Batch,
        ItemKind::Model,
        ItemKind::Service,
        ItemKind::Tool,
        ItemKind::Dashboard,
        ItemKind::Policy,
        ItemKind::Objective,
    ];

    fn keyword(self) -> &'static str {
        match self {
            ItemKind::App => "app",
            ItemKind::Import => "import",
            ItemKind::Node => "node",
            ItemKind::Pool => "pool",
            ItemKind::Link => "link",
            ItemKind::Schema => "schema",
            ItemKind::Source => "source",
            ItemKind::Stream => "stream",
            ItemKind::Sink => "sink",
            ItemKind::Dataset => "dataset",
            ItemKind::Batch => "batch",
            ItemKind::Model => "model",
            ItemKind::Service => "service",
            ItemKind::Tool => "tool",
            ItemKind::Dashboard => "dashboard",
            ItemKind::Policy => "policy",
            ItemKind::Objective => "objective",
        }
    }

    fn from_keyword(word: &str) -> Option<ItemKind> {
        ItemKind::ALL.iter().copied().find(|kind| kind.keyword() == word)
    }

    /// "a source", "an import" …
    fn with_article(self) -> String {
        let keyword = self.keyword();
        let article = if keyword.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        format!("{article} {keyword}")
    }

    /// Whether items of this kind have a name in the shared namespace.
    fn is_named(self) -> bool {
        !matches!(self, ItemKind::App | ItemKind::Import | ItemKind::Link | ItemKind::Objective)
    }
}

/// How many items on-demand lowering may nest. Items are lowered in dependency order, so only a cycle (or names
/// hidden from the ordering pre-pass) nests at all; the cap keeps a cycle of 100,000 streams from overflowing the
/// stack, even a test thread's 2 MiB in a debug build (measured: 256 levels did not fit there, 64 do with room).
const MAX_LOWERING_DEPTH: usize = 64;

/// Index of an item in [`Checker::items`].
pub(crate) type ItemId = usize;

pub(crate) struct Item<'a> {
    pub kind: ItemKind,
    pub section: &'a Section,
    pub name: String,
    pub name_span: Span,
}

/// An item's place in on-demand lowering.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Progress {
    NotStarted,
    Lowering,
    Done,
}

/// What lowering one item produced.
pub(crate) enum Lowered {
    Nothing,
    Node(Node),
    Pool(Pool),
    Link(Link),
    Schema(Schema),
    Source(Source),
    Stream(Stream),
    Sink(Sink),
    Dataset(Dataset),
    Batch(Batch),
    Model(Model),
    Service(Service),
    Tool(Tool),
    Dashboard(Dashboard),
    Policy(Policy),
    Objective(ObjectiveWeights),
}

/// Records flowing out of a component: their fields and the tier they are on, if known before planning.
#[derive(Clone, Debug)]
pub(crate) struct Output {
    pub fields: Vec<Field>,
    pub tier: Option<Tier>,
    /// False when the producer had errors, so fields may be missing: consumers then do not report missing
    /// fields, which would only repeat the producer's problem.
    pub complete: bool,
}

pub(crate) struct Checker<'a> {
    pub items: Vec<Item<'a>>,
    pub symbols: HashMap<String, ItemId>,
    pub diagnostics: Vec<Diagnostic>,
    progress: Vec<Progress>,
    pub lowered: Vec<Lowered>,
    /// Items that some other item refers to.
    pub referenced: HashSet<ItemId>,
    /// The items currently being lowered, innermost last: the chain shown when a cycle is found.
    lowering_stack: Vec<ItemId>,
    cycle_reported: HashSet<ItemId>,
    /// Items whose lowering reported errors: their outputs may lack fields.
    incomplete: HashSet<ItemId>,
    /// An import that could not be read (the first): a name it may define is not unknown, only unread.
    failed_import: Option<String>,
}

/// Checks the file `root_name` with contents `bytes`, reading imports through `loader`.
pub fn check(root_name: &str, bytes: &[u8], loader: &dyn SourceLoader) -> Checked {
    let mut sources = SourceMap::default();
    let mut diagnostics = Vec::new();
    let mut files = Vec::new();
    let root = sources.add(crate::source::SourceFile::new(root_name, bytes));
    load_recursively(root, &mut sources, loader, &mut Vec::new(), &mut files, &mut diagnostics);

    let mut checker = Checker::new();
    checker.failed_import = diagnostics
        .iter()
        .find(|diagnostic| diagnostic.code == Code::ImportFailed)
        .map(|diagnostic| sources.get(diagnostic.span.file).slice(diagnostic.span).trim_matches('"').to_string());
    for (_, file) in &files {
        checker.collect_items(file);
    }
    checker.lower_all();
    let mut spans = SpanIndex::default();
    for item in &checker.items {
        let key = match item.kind {
            _ if item.kind.is_named() => item.name.clone(),
            // Links are indexed as `link FROM->TO`, as the planner names them.
            ItemKind::Link => {
                let ends: Vec<&str> = item
                    .section
                    .header
                    .iter()
                    .filter_map(|part| match part {
                        HeaderPart::Name(name) => Some(name.text.as_str()),
                        _ => None,
                    })
                    .collect();
                format!("link {}", ends.join("->"))
            }
            _ => continue,
        };
        spans.spans.insert(key.clone(), item.section.keyword.span.to(item.name_span));
        spans.record(&key, item.section.statements());
    }
    let application = checker.assemble();
    // Nothing at all (or only comments) that read without error: say what is missing rather than check it clean.
    if checker.items.is_empty() && diagnostics.is_empty() {
        checker.report(
            Diagnostic::new(
                Code::MissingApp,
                Span::new(root, 0, 0),
                "the file is empty: it names no application and describes nothing",
            )
            .label("expected `app NAME \"Title\"` here")
            .help("add a first line such as `app traffic \"Smart traffic management\"`, then the machines and data"),
        );
    }
    // A failed reference leaves its target looking unused; warn about unused items only once the errors are fixed.
    let has_errors = diagnostics
        .iter()
        .chain(&checker.diagnostics)
        .any(|diagnostic| diagnostic.severity() == crate::diagnostic::Severity::Error);
    if !has_errors {
        checker.flow_checks(&application);
    }
    diagnostics.append(&mut checker.diagnostics);
    diagnostics.sort_by_key(|diagnostic| (diagnostic.span.file, diagnostic.span.start, diagnostic.code));
    diagnostics.dedup_by(|a, b| a.code == b.code && a.span == b.span && a.message == b.message);
    Checked { sources, root, diagnostics, application, spans }
}

/// Parses a file and, depth first, every file it imports. `stack` holds the chain of importers for cycle reports.
fn load_recursively(
    file: FileId,
    sources: &mut SourceMap,
    loader: &dyn SourceLoader,
    stack: &mut Vec<FileId>,
    files: &mut Vec<(FileId, ast::File)>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let source = sources.get(file);
    if let Some(offset) = source.invalid_utf8_at {
        diagnostics.push(
            Diagnostic::new(Code::InvalidCharacter, Span::new(file, offset, offset + 1), "the file is not valid UTF-8")
                .label("first invalid byte")
                .help("save the file as UTF-8"),
        );
    }
    let (syntax, mut parse_diagnostics) = parser::parse(file, &source.text);
    diagnostics.append(&mut parse_diagnostics);
    stack.push(file);
    let importer = source.name.clone();
    for statement in &syntax.statements {
        let StatementKind::Section(section) = &statement.kind else { continue };
        if section.keyword.text != "import" {
            continue;
        }
        let Some(path) = section.text() else {
            diagnostics.push(
                Diagnostic::new(Code::SyntaxError, section.keyword.span, "`import` needs a file path in quotes")
                    .label("no path")
                    .help("write `import \"shared.stratum\"`"),
            );
            continue;
        };
        match loader.load(&importer, &path.value) {
            Err(reason) => diagnostics.push(
                Diagnostic::new(Code::ImportFailed, path.span, format!("cannot import `{}`: {reason}", path.value))
                    .label("imported here")
                    .help("the path is relative to the importing file"),
            ),
            Ok((canonical, bytes)) => {
                if let Some(position) = stack.iter().position(|open| sources.get(*open).name == canonical) {
                    let chain: Vec<String> = stack[position..]
                        .iter()
                        .map(|open| sources.get(*open).name.clone())
                        .chain([canonical.clone()])
                        .collect();
                    diagnostics.push(
                        Diagnostic::new(Code::ImportCycle, path.span, format!("import cycle: {}", chain.join(" → ")))
                            .label("this import closes the cycle")
                            .help("move the shared definitions into a file that both import"),
                    );
                } else if sources.find(&canonical).is_none() {
                    let imported = sources.add(crate::source::SourceFile::new(canonical, &bytes));
                    load_recursively(imported, sources, loader, stack, files, diagnostics);
                }
            }
        }
    }
    stack.pop();
    files.push((file, syntax));
}

impl<'a> Checker<'a> {
    fn new() -> Checker<'a> {
        Checker {
            items: Vec::new(),
            symbols: HashMap::new(),
            diagnostics: Vec::new(),
            progress: Vec::new(),
            lowered: Vec::new(),
            referenced: HashSet::new(),
            lowering_stack: Vec::new(),
            cycle_reported: HashSet::new(),
            incomplete: HashSet::new(),
            failed_import: None,
        }
    }

    pub(crate) fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|diagnostic| diagnostic.severity() == crate::diagnostic::Severity::Error).count()
    }

    /// Registers the top-level items of one file, reporting unknown keywords and duplicate names.
    fn collect_items(&mut self, file: &'a ast::File) {
        for statement in &file.statements {
            let StatementKind::Section(section) = &statement.kind else {
                self.report(
                    Diagnostic::new(Code::UnknownItemKind, statement.span, "expected an item at the top level")
                        .label("attributes belong inside an item's `{ … }`")
                        .help("items start with a keyword: node, source, stream, model, service …"),
                );
                continue;
            };
            let Some(kind) = ItemKind::from_keyword(&section.keyword.text) else {
                let keywords: Vec<&str> = ItemKind::ALL.iter().map(|kind| kind.keyword()).collect();
                let help = suggest::did_you_mean(&section.keyword.text, keywords.iter().copied())
                    .unwrap_or_else(|| format!("items are: {}", keywords.join(", ")));
                self.report(
                    Diagnostic::new(
                        Code::UnknownItemKind,
                        section.keyword.span,
                        format!("unknown item `{}`", section.keyword.text),
                    )
                    .label("not a kind of item")
                    .help(help),
                );
                continue;
            };
            let (name, name_span) = match kind {
                ItemKind::App => match section.name() {
                    Some(name) => (name.text.clone(), name.span),
                    None => (String::new(), section.keyword.span),
                },
                ItemKind::Import | ItemKind::Link | ItemKind::Objective => (String::new(), section.keyword.span),
                _ => match section.name() {
                    Some(name) => (name.text.clone(), name.span),
                    None => {
                        self.report(
                            Diagnostic::new(
                                Code::SyntaxError,
                                section.keyword.span,
                                format!("{} needs a name", kind.with_article()),
                            )
                            .label("no name after the keyword")
                            .help(format!("write `{} my_name {{ … }}`", kind.keyword())),
                        );
                        continue;
                    }
                },
            };
            self.check_header_shape(kind, section);
            if kind.is_named() {
                if let Some(&previous) = self.symbols.get(&name) {
                    let first = &self.items[previous];
                    let message = format!("`{name}` is defined twice");
                    let diagnostic = Diagnostic::new(Code::DuplicateDefinition, name_span, message)
                        .label(format!("{} named `{name}` again", kind.with_article()))
                        .secondary(first.name_span, format!("first defined here as {}", first.kind.with_article()))
                        .help("rename one of them: names are shared by every kind of item");
                    self.report(diagnostic);
                    continue;
                }
                self.symbols.insert(name.clone(), self.items.len());
            }
            self.items.push(Item { kind, section, name, name_span });
            self.progress.push(Progress::NotStarted);
            self.lowered.push(Lowered::Nothing);
        }
    }

    /// Reports header parts an item kind does not take (`node a b { … }`, a kind on a node, a missing block).
    fn check_header_shape(&mut self, kind: ItemKind, section: &Section) {
        let takes_kind = matches!(
            kind,
            ItemKind::Source | ItemKind::Sink | ItemKind::Batch | ItemKind::Model | ItemKind::Service | ItemKind::Tool
        );
        let expected_names = match kind {
            ItemKind::Import | ItemKind::Objective => 0,
            ItemKind::Link => 2,
            _ => 1,
        };
        let mut names = 0;
        for part in &section.header {
            let unexpected = match part {
                HeaderPart::Name(_) => {
                    names += 1;
                    names > expected_names
                }
                HeaderPart::Kind(_) => !takes_kind,
                HeaderPart::Text(_) => !matches!(kind, ItemKind::App | ItemKind::Import),
                HeaderPart::Arrow(_) => kind != ItemKind::Link,
            };
            if unexpected {
                self.report(
                    Diagnostic::new(
                        Code::SyntaxError,
                        part.span(),
                        format!("unexpected text in the header of {}", kind.with_article()),
                    )
                    .label("not expected here")
                    .help(header_example(kind).to_string()),
                );
                return;
            }
        }
        let needs_body = !matches!(kind, ItemKind::App | ItemKind::Import);
        if needs_body && section.body.is_none() {
            self.report(
                Diagnostic::new(
                    Code::SyntaxError,
                    section.keyword.span,
                    format!("{} needs a `{{ … }}` block", kind.with_article()),
                )
                .label("no block")
                .help(header_example(kind).to_string()),
            );
        }
    }

    /// Lowers every item, dependencies first, so that on-demand lowering rarely recurses: a chain of 100,000
    /// streams written last-to-first must not become 100,000 nested calls.
    fn lower_all(&mut self) {
        for id in self.lowering_order() {
            self.lower_item(id);
        }
    }

    /// Items in an order where each comes after the items it names (as far as names show; lowering on demand
    /// covers the rest). An iterative depth-first search, so it needs no deep stack either.
    fn lowering_order(&self) -> Vec<ItemId> {
        let dependencies: Vec<Vec<ItemId>> = self
            .items
            .iter()
            .map(|item| {
                let mut names = Vec::new();
                mentioned_names(item.section.statements(), &mut names);
                names.iter().filter_map(|name| self.symbols.get(*name).copied()).collect()
            })
            .collect();
        #[derive(Clone, Copy, PartialEq)]
        enum Visit {
            New,
            Open,
            Closed,
        }
        let mut visits = vec![Visit::New; self.items.len()];
        let mut order = Vec::with_capacity(self.items.len());
        for root in 0..self.items.len() {
            if visits[root] != Visit::New {
                continue;
            }
            visits[root] = Visit::Open;
            let mut stack = vec![(root, 0usize)];
            while let Some((item, next)) = stack.last_mut() {
                if let Some(&dependency) = dependencies[*item].get(*next) {
                    *next += 1;
                    if visits[dependency] == Visit::New {
                        visits[dependency] = Visit::Open;
                        stack.push((dependency, 0));
                    }
                } else {
                    visits[*item] = Visit::Closed;
                    order.push(*item);
                    stack.pop();
                }
            }
        }
        order
    }

    /// Lowers one item unless it already is; re-entering an item in progress is a dataflow cycle.
    pub(crate) fn lower_item(&mut self, id: ItemId) -> bool {
        match self.progress[id] {
            Progress::Done => return true,
            Progress::Lowering => return false,
            Progress::NotStarted => {}
        }
        if self.lowering_stack.len() >= MAX_LOWERING_DEPTH {
            let item = &self.items[id];
            let diagnostic = Diagnostic::new(
                Code::NestingTooDeep,
                item.name_span,
                format!("`{}` depends on a chain of more than {MAX_LOWERING_DEPTH} items", item.name),
            )
            .label("the chain of references continues here")
            .help("look for a cycle of `from` references, or shorten the chain");
            if !self.cycle_reported.contains(&id) {
                self.cycle_reported.insert(id);
                self.report(diagnostic);
            }
            return false;
        }
        self.progress[id] = Progress::Lowering;
        self.lowering_stack.push(id);
        let errors_before = self.error_count();
        let item = &self.items[id];
        let section = item.section;
        let name = item.name.clone();
        let lowered = match item.kind {
            ItemKind::App | ItemKind::Import => Lowered::Nothing,
            ItemKind::Objective => Lowered::Objective(self.lower_objective(section)),
            ItemKind::Node => self.lower_node(section, name),
            ItemKind::Pool => self.lower_pool(section, name),
            ItemKind::Link => self.lower_link(section),
            ItemKind::Schema => self.lower_schema(section, name),
            ItemKind::Source => self.lower_source(section, name),
            ItemKind::Stream => self.lower_stream(section, name),
            ItemKind::Sink => self.lower_sink(section, name),
            ItemKind::Dataset => self.lower_dataset(section, name),
            ItemKind::Batch => self.lower_batch(section, name),
            ItemKind::Model => self.lower_model(section, name),
            ItemKind::Service => self.lower_service(section, name),
            ItemKind::Tool => self.lower_tool(section, name),
            ItemKind::Dashboard => self.lower_dashboard(section, name),
            ItemKind::Policy => self.lower_policy(section, name),
        };
        self.lowered[id] = lowered;
        if self.error_count() > errors_before {
            self.incomplete.insert(id);
        }
        self.lowering_stack.pop();
        self.progress[id] = Progress::Done;
        true
    }

    /// Resolves a reference to an item of one of the `expected` kinds, reporting unknown names and wrong kinds.
    pub(crate) fn resolve(&mut self, name: &str, span: Span, expected: &[ItemKind], role: &str) -> Option<ItemId> {
        let Some(&id) = self.symbols.get(name) else {
            let candidates: Vec<&str> =
                self.items.iter().filter(|item| expected.contains(&item.kind)).map(|item| item.name.as_str()).collect();
            let help = suggest::did_you_mean(name, candidates.iter().copied()).unwrap_or_else(|| {
                if let Some(import) = &self.failed_import {
                    format!("`{import}` could not be imported (see that error): fix the import first, if `{name}` is defined there")
                } else if candidates.is_empty() {
                    format!("define {} named `{name}`", expected_kinds(expected))
                } else {
                    format!("{} defined here: {}", plural_kinds(expected), list_names(&candidates))
                }
            });
            self.report(
                Diagnostic::new(Code::UnknownName, span, format!("unknown name `{name}`"))
                    .label(format!("{role} must name {}", expected_kinds(expected)))
                    .help(help),
            );
            return None;
        };
        let item = &self.items[id];
        if !expected.contains(&item.kind) {
            let found = item.kind.with_article();
            let definition = item.name_span;
            let candidates: Vec<&str> =
                self.items.iter().filter(|item| expected.contains(&item.kind)).map(|item| item.name.as_str()).collect();
            let help = suggest::did_you_mean(name, candidates.iter().copied()).unwrap_or_else(|| {
                if candidates.is_empty() {
                    format!("define {} for it to name", expected_kinds(expected))
                } else {
                    format!("{}: {}", plural_kinds(expected), list_names(&candidates))
                }
            });
            self.report(
                Diagnostic::new(
                    Code::WrongKindOfName,
                    span,
                    format!("`{name}` is {found}, but {role} must name {}", expected_kinds(expected)),
                )
                .label(format!("this is {found}"))
                .secondary(definition, "defined here")
                .help(help),
            );
            return None;
        }
        self.referenced.insert(id);
        Some(id)
    }

    /// The records an item produces, lowering it first if needed. Reports a cycle when the item is mid-lowering.
    pub(crate) fn output_of(&mut self, id: ItemId, use_span: Span) -> Option<Output> {
        if !self.lower_item(id) {
            self.report_cycle(id, use_span);
            return None;
        }
        let complete = !self.incomplete.contains(&id);
        // Whoever reads an incomplete output may itself miss fields, so incompleteness flows downstream.
        if !complete && let Some(&consumer) = self.lowering_stack.last() {
            self.incomplete.insert(consumer);
        }
        let (fields, tier) = match &self.lowered[id] {
            Lowered::Source(source) => (source.fields.clone(), source.placement.inferred_tier),
            Lowered::Stream(stream) => (stream.fields.clone(), stream.placement.inferred_tier),
            Lowered::Sink(sink) => (sink.fields.clone(), sink.placement.inferred_tier),
            Lowered::Dataset(dataset) => (dataset.fields.clone(), None),
            _ => return None,
        };
        Some(Output { fields, tier, complete })
    }

    fn report_cycle(&mut self, id: ItemId, use_span: Span) {
        let Some(position) = self.lowering_stack.iter().position(|open| *open == id) else { return };
        let chain: Vec<ItemId> = self.lowering_stack[position..].to_vec();
        if chain.iter().any(|member| self.cycle_reported.contains(member)) {
            return;
        }
        self.cycle_reported.extend(chain.iter().copied());
        let names: Vec<String> =
            chain.iter().map(|member| self.items[*member].name.clone()).chain([self.items[id].name.clone()]).collect();
        let mut diagnostic =
            Diagnostic::new(Code::DataflowCycle, use_span, format!("dataflow cycle: {}", names.join(" → ")))
                .label("this reference closes the cycle")
                .help("data must flow from sources to sinks; make one of these read from a source instead");
        for member in chain.iter().skip(1) {
            diagnostic = diagnostic.secondary(self.items[*member].name_span, "part of the cycle");
        }
        self.report(diagnostic);
    }

    pub(crate) fn item_named(&self, name: &str) -> Option<ItemId> {
        self.symbols.get(name).copied()
    }

    /// Collects the lowered items, in file order, into the application.
    fn assemble(&mut self) -> Application {
        let mut application = Application { ir_version: IR_VERSION, ..Application::default() };
        let mut apps = self.items.iter().filter(|item| item.kind == ItemKind::App);
        match apps.next() {
            Some(app) => {
                application.name = app.name.clone();
                application.title = app.section.text().map(|title| title.value.clone());
                if app.name.is_empty() {
                    self.diagnostics.push(
                        Diagnostic::new(Code::SyntaxError, app.section.keyword.span, "`app` needs a name")
                            .label("no name")
                            .help("write `app traffic \"Smart traffic management\"`"),
                    );
                }
                if let Some(second) = apps.next() {
                    let diagnostic = Diagnostic::new(
                        Code::DuplicateDefinition,
                        second.section.keyword.span,
                        "a second `app` declaration",
                    )
                    .label("the application is already named")
                    .secondary(app.section.keyword.span, "first declared here")
                    .help("a file (with its imports) describes one application; remove one `app` line");
                    self.diagnostics.push(diagnostic);
                }
            }
            None => {
                if let Some(first) = self.items.first() {
                    let span = Span { end: first.section.keyword.span.start, ..first.section.keyword.span };
                    self.diagnostics.push(
                        Diagnostic::new(Code::MissingApp, span, "the file does not name its application")
                            .label("expected `app NAME \"Title\"` at the top")
                            .help("add a first line such as `app traffic \"Smart traffic management\"`"),
                    );
                }
                application.name = "unnamed".to_string();
            }
        }
        let mut objectives = self.items.iter().filter(|item| item.kind == ItemKind::Objective);
        if let (Some(first), Some(second)) = (objectives.next(), objectives.next()) {
            let diagnostic =
                Diagnostic::new(Code::DuplicateDefinition, second.section.keyword.span, "a second `objective`")
                    .label("the objective is already given")
                    .secondary(first.section.keyword.span, "first given here")
                    .help("an application has one objective; merge the two blocks");
            self.diagnostics.push(diagnostic);
        }
        for lowered in std::mem::take(&mut self.lowered) {
            match lowered {
                Lowered::Nothing => {}
                Lowered::Node(node) => application.nodes.push(node),
                Lowered::Pool(pool) => application.pools.push(pool),
                Lowered::Link(link) => application.links.push(link),
                Lowered::Schema(schema) => application.schemas.push(schema),
                Lowered::Source(source) => application.sources.push(source),
                Lowered::Stream(stream) => application.streams.push(stream),
                Lowered::Sink(sink) => application.sinks.push(sink),
                Lowered::Dataset(dataset) => application.datasets.push(dataset),
                Lowered::Batch(batch) => application.batches.push(batch),
                Lowered::Model(model) => application.models.push(model),
                Lowered::Service(service) => application.services.push(service),
                Lowered::Tool(tool) => application.tools.push(tool),
                Lowered::Dashboard(dashboard) => application.dashboards.push(dashboard),
                Lowered::Policy(policy) => application.policies.push(policy),
                Lowered::Objective(weights) => application.objective = weights,
            }
        }
        application
    }
}

/// Every plain name mentioned in a block, at any depth: the candidates for what an item depends on.
fn mentioned_names<'s>(statements: &'s [ast::Statement], names: &mut Vec<&'s str>) {
    for statement in statements {
        match &statement.kind {
            StatementKind::Attribute { value, .. }
            | StatementKind::Bound { value, .. }
            | StatementKind::Expr(value) => names_in_expr(value, names),
            StatementKind::Section(section) => mentioned_names(section.statements(), names),
            StatementKind::Field { .. } => {}
        }
    }
}

fn names_in_expr<'s>(expr: &'s ast::Expr, names: &mut Vec<&'s str>) {
    use ast::ExprKind;
    match &expr.kind {
        ExprKind::Name(name) => names.push(name),
        ExprKind::Member { base, .. } => names_in_expr(base, names),
        ExprKind::Call { arguments: items, .. } | ExprKind::List(items) => {
            items.iter().for_each(|item| names_in_expr(item, names))
        }
        ExprKind::Map(entries) => entries.iter().for_each(|entry| names_in_expr(&entry.value, names)),
        ExprKind::Object { body, .. } => mentioned_names(&body.statements, names),
        ExprKind::Unary { operand, .. } => names_in_expr(operand, names),
        ExprKind::Binary { left, right, .. } => {
            names_in_expr(left, names);
            names_in_expr(right, names);
        }
        ExprKind::Range { start, end } => {
            names_in_expr(start, names);
            names_in_expr(end, names);
        }
        ExprKind::If { condition, then, otherwise } => {
            names_in_expr(condition, names);
            names_in_expr(then, names);
            names_in_expr(otherwise, names);
        }
        ExprKind::Clause { base, argument, .. } => {
            names_in_expr(base, names);
            names_in_expr(argument, names);
        }
        _ => {}
    }
}

fn header_example(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::App => "write `app traffic \"Smart traffic management\"`",
        ItemKind::Import => "write `import \"shared.stratum\"`",
        ItemKind::Link => "write `link edge -> fog { latency = 5 ms  bandwidth = 100 Mbit/s }`",
        ItemKind::Source => "write `source detections: mqtt { … }`",
        ItemKind::Sink => "write `sink history: parquet { … }`",
        ItemKind::Batch => "write `batch hourly: sql { … }`",
        ItemKind::Model => "write `model congestion: classifier { … }`",
        ItemKind::Service => "write `service signal_timing: inference { … }`",
        ItemKind::Tool => "write `tool grafana { image = \"grafana/grafana:11\" }`",
        ItemKind::Schema => "write `schema Detection { camera: string  speed: float }`",
        ItemKind::Objective => "write `objective { latency = 1  traffic = 1  cost = 0.1  near = 10 }`",
        _ => "write `KEYWORD name { … }`",
    }
}

fn expected_kinds(kinds: &[ItemKind]) -> String {
    let words: Vec<String> = kinds.iter().map(|kind| kind.with_article()).collect();
    match words.len() {
        0 => "something".to_string(),
        1 => words[0].clone(),
        _ => format!("{} or {}", words[..words.len() - 1].join(", "), words[words.len() - 1]),
    }
}

fn plural_kinds(kinds: &[ItemKind]) -> String {
    let words: Vec<String> = kinds.iter().map(|kind| format!("{}s", kind.keyword())).collect();
    words.join(" and ")
}

fn list_names(names: &[&str]) -> String {
    const SHOWN: usize = 8;
    let mut shown: Vec<String> = names.iter().take(SHOWN).map(|name| format!("`{name}`")).collect();
    if names.len() > SHOWN {
        shown.push(format!("and {} more", names.len() - SHOWN));
    }
    shown.join(", ")
}
