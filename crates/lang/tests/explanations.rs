//! Every diagnostic code has a long explanation whose "wrong" example produces that code and whose "right"
//! example does not (and parses cleanly), so `stratum explain` can never drift from what the checker does.

use stratum_lang::{Code, SourceLoader};

/// Serves imports for the explanation examples: `self.stratum` is the example itself (an import cycle);
/// every other path is missing.
struct ExampleLoader<'a> {
    text: &'a str,
}

impl SourceLoader for ExampleLoader<'_> {
    fn load(&self, _importer: &str, path: &str) -> Result<(String, Vec<u8>), stratum_core::Cause> {
        if path == "self.stratum" {
            Ok(("self.stratum".to_string(), self.text.as_bytes().to_vec()))
        } else {
            Err("No such file or directory".into())
        }
    }
}

fn codes_of(text: &str) -> Vec<Code> {
    let checked = stratum_lang::check("self.stratum", text.as_bytes(), &ExampleLoader { text });
    checked.diagnostics.iter().map(|diagnostic| diagnostic.code).collect()
}

#[test]
fn every_code_has_an_explanation_whose_examples_hold() {
    let mut failures = Vec::new();
    for code in Code::ALL {
        let explanation = code.explanation();
        assert!(
            !explanation.title.is_empty() && explanation.text.len() > 40,
            "{} needs a real explanation",
            code.as_str()
        );
        if code.is_planner() || code.is_runtime() {
            // Planner codes need a placement and run-time codes need data; the planner's and the CLI's tests check
            // that their wrong examples produce them. Here: both examples check cleanly, so that `stratum plan` or
            // `stratum run-batch` is what reports them.
            for example in [explanation.wrong, explanation.right] {
                let codes = codes_of(example);
                assert!(codes.is_empty(), "{}: the example does not check cleanly: {codes:?}", code.as_str());
            }
            continue;
        }
        let wrong = codes_of(explanation.wrong);
        if !wrong.contains(code) {
            failures.push(format!("{}: the wrong example gives {wrong:?}", code.as_str()));
        }
        let right = codes_of(explanation.right);
        let syntax = [
            Code::InvalidCharacter,
            Code::UnterminatedString,
            Code::InvalidEscape,
            Code::SyntaxError,
            Code::UnclosedDelimiter,
        ];
        if right.contains(code) || right.iter().any(|found| syntax.contains(found)) {
            failures.push(format!("{}: the right example gives {right:?}", code.as_str()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn codes_are_unique_and_parse_back() {
    let mut seen = std::collections::HashSet::new();
    for code in Code::ALL {
        assert!(seen.insert(code.as_str()), "{} is used twice", code.as_str());
        assert_eq!(Code::parse(&code.as_str().to_lowercase()), Some(*code));
    }
}
