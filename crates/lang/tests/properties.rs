//! Property tests: no input makes the front end panic; formatting is idempotent and preserves meaning
//! (a formatted file lowers to the same IR, with the same diagnostics) and keeps every comment in order.

use proptest::prelude::*;
use stratum_lang::format::format;

/// Realistic files to mutate, so generated inputs reach deep into the checker rather than failing at once.
const SEEDS: &[&str] = &[
    include_str!("../test_data/ok/streams.stratum"),
    include_str!("../test_data/ok/machine_learning.stratum"),
    include_str!("../test_data/ok/serving.stratum"),
    include_str!("../test_data/ok/units.stratum"),
    include_str!("../test_data/ok/minimal.stratum"),
    include_str!("../test_data/err/several_errors_at_once.stratum"),
];

/// Fragments of the language's surface, for token-soup inputs.
const FRAGMENTS: &[&str] = &[
    "node",
    "source",
    "stream",
    "schema",
    "model",
    "service",
    "app",
    "a",
    "b",
    "x",
    " ",
    "  ",
    "\n",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "=",
    "==",
    ":",
    ",",
    ".",
    "..",
    "->",
    "<=",
    ">",
    "+",
    "-",
    "*",
    "/",
    "%",
    "?",
    "4",
    "0.5",
    "1e3",
    "GiB",
    "ms",
    "/s",
    "by",
    "per",
    "not",
    "in",
    "and",
    "\"s\"",
    "\"\"\"q\"\"\"",
    "# c\n",
    "x \"t4\"",
    "tier",
    "edge",
    "fog",
    "from",
    "window",
    "select",
    "tumbling(1 min)",
    "count()",
    "if",
    "then",
    "else",
    "if a then 1 else 2",
    "latest(",
    "clamp(x, 0, 1)",
    "private",
    "list<int>",
    "\"unterminated",
    "\\",
    "\u{0}",
    "é",
];

fn mutated_seed() -> impl Strategy<Value = String> {
    (0..SEEDS.len(), any::<usize>(), 0usize..400, prop::sample::select(FRAGMENTS), any::<bool>()).prop_map(
        |(seed, position, length, fragment, delete)| {
            let text = SEEDS[seed];
            let mut start = position % (text.len() + 1);
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (start + length).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let replacement = if delete { "" } else { fragment };
            format!("{}{}{}", &text[..start], replacement, &text[end..])
        },
    )
}

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..120).prop_map(|parts| parts.concat())
}

/// What a check means, independent of layout: the IR and the diagnostics without their positions.
fn meaning(text: &str) -> (String, Vec<(String, String)>) {
    let checked = stratum_lang::check_text("property.stratum", text);
    let ir = serde_json::to_string(&checked.application).unwrap();
    let mut diagnostics: Vec<(String, String)> = checked
        .diagnostics
        .iter()
        .map(|diagnostic| (diagnostic.code.as_str().to_string(), diagnostic.message.clone()))
        .collect();
    diagnostics.sort();
    (ir, diagnostics)
}

/// The comments of a text, in order.
fn comments(text: &str) -> Vec<String> {
    let (tokens, _) = stratum_lang::syntax::lexer::lex(stratum_lang::source::FileId(0), text);
    tokens
        .iter()
        .filter(|token| token.kind == stratum_lang::syntax::lexer::TokenKind::Comment)
        .map(|token| text[token.span.start as usize..token.span.end as usize].trim_end().to_string())
        .collect()
}

fn assert_format_properties(text: &str) -> Result<(), TestCaseError> {
    if let Ok(formatted) = format(text) {
        prop_assert_eq!(comments(text), comments(&formatted), "formatting lost or reordered a comment");
        let again = format(&formatted);
        prop_assert!(again.is_ok(), "formatted output does not parse:\n{formatted}");
        prop_assert_eq!(again.unwrap(), formatted.clone(), "formatting is not idempotent");
        prop_assert_eq!(meaning(text), meaning(&formatted), "formatting changed the meaning of:\n{}", text);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let checked = stratum_lang::check("bytes.stratum", &bytes, &stratum_lang::NoImports);
        for diagnostic in &checked.diagnostics {
            let _ = stratum_lang::render(diagnostic, &checked.sources, false);
        }
    }

    #[test]
    fn token_soup_never_panics_and_formats_faithfully(text in token_soup()) {
        let _ = meaning(&text);
        assert_format_properties(&text)?;
    }

    #[test]
    fn mutated_files_never_panic_and_format_faithfully(text in mutated_seed()) {
        let _ = meaning(&text);
        assert_format_properties(&text)?;
    }
}

#[test]
fn seeds_format_faithfully() {
    for seed in SEEDS {
        assert_format_properties(seed).unwrap();
    }
}

#[test]
fn pathological_inputs_are_errors_not_crashes() {
    let long_line = "x".repeat(1 << 20);
    let deep_braces = format!("node a {}{}", "{ b ".repeat(50_000), "}".repeat(50_000));
    let deep_not = format!("stream s {{ from = a  where = {}true }}", "not ".repeat(100_000));
    let deep_minus = format!("x = {}1", "-".repeat(100_000));
    let nul_bytes = "\0".repeat(1000);
    // Left-associative chains are parsed in a loop but build trees as deep as they are long.
    let long_sum = format!("stream s {{ from = a  where = x > {} }}", vec!["1"; 200_000].join(" + "));
    let long_and = format!("stream s {{ from = a  where = {} }}", vec!["true"; 200_000].join(" and "));
    let long_member = format!("x = a{}", ".b".repeat(200_000));
    let long_clauses = format!("x = a{}", " by b".repeat(200_000));
    // SQL nested deeper than sqlparser's recursion limit, and a query with a long chain of operators.
    let batch = |query: String| {
        format!(
            "app q\nschema R {{ v: int }}\ndataset d {{ schema = R  path = \"d.csv\" }}\nbatch b: sql {{ every = 1 h  into = d  query = \"\"\"{query}\"\"\" }}\n"
        )
    };
    let deep_sql = batch(format!("SELECT {}1{} AS v FROM d", "(".repeat(100_000), ")".repeat(100_000)));
    let long_sql = batch(format!("SELECT {} AS v FROM d", vec!["v"; 100_000].join(" + ")));
    // At the limit, a chain still checks clean on a test thread's small stack.
    let at_limit = stratum_lang::check_text(
        "limit.stratum",
        &batch(format!("SELECT {} AS v FROM d", vec!["v"; 1000].join(" + "))),
    );
    assert!(!at_limit.has_errors(), "{:?}", at_limit.diagnostics);
    for input in [
        long_line,
        deep_braces,
        deep_not,
        deep_minus,
        nul_bytes,
        long_sum,
        long_and,
        long_member,
        long_clauses,
        deep_sql,
        long_sql,
    ] {
        let checked = stratum_lang::check_text("pathological.stratum", &input);
        assert!(checked.has_errors(), "expected errors for input starting {:?}", &input[..40.min(input.len())]);
    }
}

#[test]
fn long_dependency_chains_and_cycles_do_not_exhaust_the_stack() {
    // 20,000 streams, each reading the one defined after it: checked in dependency order, no deep recursion.
    let count = 20_000;
    let mut chain = String::from("app chain\nschema S { x: float }\nsource s0: generator { schema = S }\n");
    for index in (1..=count).rev() {
        chain.push_str(&format!("stream s{index} {{ from = s{} }}\n", index - 1));
    }
    chain.push_str(&format!("sink out: jsonl {{ from = s{count}  path = \"out.jsonl\" }}\n"));
    let checked = stratum_lang::check_text("chain.stratum", &chain);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics.first());
    assert_eq!(checked.application.streams.len(), count);

    // The same streams in one big cycle: an error, not a crash.
    let mut cycle = String::from("app cycle\n");
    for index in 1..=count {
        cycle.push_str(&format!("stream s{index} {{ from = s{} }}\n", index % count + 1));
    }
    assert!(stratum_lang::check_text("cycle.stratum", &cycle).has_errors());
}
