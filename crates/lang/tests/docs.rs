//! The documentation is tested like code: the language reference's examples parse, it documents every algorithm
//! and function the checker knows, and docs/diagnostics.md is generated from the code catalogue (rewrite it with
//! STRATUM_BLESS=1).

mod support;

use std::path::Path;
use stratum_lang::Code;

fn docs(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs").join(name)
}

#[test]
fn language_reference_examples_parse() {
    let reference = std::fs::read_to_string(docs("language.md")).unwrap();
    let blocks: Vec<&str> =
        reference.split("```stratum\n").skip(1).map(|rest| rest.split("```").next().unwrap()).collect();
    assert!(blocks.len() >= 15, "expected an example per item kind, found {}", blocks.len());
    for block in blocks {
        let (_, diagnostics) = stratum_lang::syntax::parser::parse(stratum_lang::source::FileId(0), block);
        assert!(diagnostics.is_empty(), "this example does not parse:\n{block}\n{diagnostics:#?}");
    }
}

#[test]
fn language_reference_documents_every_algorithm_and_function() {
    let reference = std::fs::read_to_string(docs("language.md")).unwrap();
    let missing: Vec<&str> = stratum_lang::algorithm_names()
        .chain(stratum_lang::function_names())
        .filter(|name| !reference.contains(&format!("`{name}`")) && !reference.contains(&format!("`{name}(")))
        .collect();
    assert!(missing.is_empty(), "docs/language.md does not document {missing:?}");
}

#[test]
fn diagnostics_reference_is_generated_from_the_catalogue() {
    let mut generated = String::from(
        "# Diagnostics\n\nGenerated from `crates/lang/src/codes.rs` by the test `diagnostics_reference_is_generated_from_the_catalogue`\n\
         (run the tests with `STRATUM_BLESS=1` after changing a code). `stratum explain CODE` prints the same text.\n\n\
         Codes are stable: a code is never renumbered or reused. `E` codes are errors, `W` codes warnings.\n\n\
         | code | title |\n|---|---|\n",
    );
    for code in Code::ALL {
        let explanation = code.explanation();
        generated.push_str(&format!(
            "| [{0}](#{1}) | {2} |\n",
            code.as_str(),
            code.as_str().to_lowercase(),
            explanation.title
        ));
    }
    for code in Code::ALL {
        let explanation = code.explanation();
        generated.push_str(&format!(
            "\n## {}\n\n**{}**\n\n{}\n\nWrong:\n\n```stratum\n{}```\n\nRight:\n\n```stratum\n{}```\n",
            code.as_str(),
            explanation.title,
            explanation.text,
            explanation.wrong,
            explanation.right
        ));
    }
    if let Some(failure) = support::compare_snapshot(&docs("diagnostics.md"), &generated) {
        panic!("{failure}");
    }
}
