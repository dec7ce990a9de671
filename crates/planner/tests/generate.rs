//! Generator tests: the output for the examples is deterministic and matches its snapshots
//! (test_data/generate, STRATUM_BLESS=1 rewrites them); and, in CI's external stage, the real validators accept
//! it: kubernetes-validate (strict), check-jsonschema with the compose-spec schema, ansible-playbook --syntax-check.

use std::path::{Path, PathBuf};
use std::process::Command;
use stratum_planner::generate::{BACKENDS, GeneratedFile, Input, Secrets};
use stratum_test_support::{DiskLoader as Loader, compare_snapshot, normalize};

const EXAMPLES: &[&str] =
    &["traffic/traffic.stratum", "predictive_maintenance/factory.stratum", "energy/substations.stratum"];

/// Tokens that stand in for the random ones `stratum generate` makes, so that snapshots are stable.
fn secrets() -> Secrets {
    Secrets { operator: "operator-token".into(), viewer: "viewer-token".into(), join: "join-token".into(), store: None }
}

fn generate(example: &str, backend: &str) -> Vec<GeneratedFile> {
    generate_with(example, backend, &secrets())
}

/// As [`generate`], with these secrets (a shared state store among them).
fn generate_with(example: &str, backend: &str, secrets: &Secrets) -> Vec<GeneratedFile> {
    // Named as the loader names imports (`..` resolved), so that their folder is the root's.
    let path = normalize(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(example));
    let checked = stratum_lang::check(&path.to_string_lossy(), &std::fs::read(&path).unwrap(), &Loader);
    assert!(!checked.has_errors());
    let plan = stratum_planner::plan(&checked).plan.expect("the example plans");
    let backend = stratum_planner::generate::backend(backend).unwrap();
    // The application's files as the CLI passes them: the root first, then its imports beside it.
    let folder = path.parent().unwrap();
    let mut files =
        vec![(path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&path).unwrap())];
    for (id, file) in checked.sources.files() {
        if id != checked.root {
            let relative = Path::new(&file.name).strip_prefix(folder).unwrap().to_string_lossy().into_owned();
            files.push((relative, file.text.clone()));
        }
    }
    backend.generate(&Input { application: &checked.application, plan: &plan, files: &files, secrets }).unwrap()
}

fn concatenated(files: &[GeneratedFile]) -> String {
    files.iter().map(|file| format!("=== {}\n{}", file.path, file.contents)).collect()
}

#[test]
fn output_is_deterministic_and_matches_snapshots() {
    let mut failures = Vec::new();
    for backend in BACKENDS {
        let first = concatenated(&generate(EXAMPLES[0], backend.name()));
        let second = concatenated(&generate(EXAMPLES[0], backend.name()));
        assert_eq!(first, second, "{} output differs between runs", backend.name());
        let snapshot =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("test_data/generate/traffic.{}.txt", backend.name()));
        failures.extend(compare_snapshot(&snapshot, &first));
    }
    // Given a shared state store, the control plane runs as two replicas on it.
    let shared = concatenated(&generate_with(EXAMPLES[0], "kubernetes", &shared_store()));
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/generate/traffic.kubernetes-shared-store.txt");
    failures.extend(compare_snapshot(&snapshot, &shared));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn shared_store() -> Secrets {
    Secrets { store: Some("postgres://stratum:store-password@postgres:5432/stratum".into()), ..secrets() }
}

/// Writes an example's generated files into a fresh folder and returns it.
fn write_out(example: &str, backend: &str) -> PathBuf {
    write_out_with(example, backend, &secrets(), backend)
}

/// As [`write_out`], with these secrets, into the folder `name`.
fn write_out_with(example: &str, backend: &str, secrets: &Secrets, name: &str) -> PathBuf {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("generated").join(example.replace('/', "_")).join(name);
    let _ = std::fs::remove_dir_all(&folder);
    for file in generate_with(example, backend, secrets) {
        let path = folder.join(&file.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, file.contents).unwrap();
    }
    folder
}

/// Runs a validator; a missing validator fails the test, it never skips.
fn validate(program: &str, arguments: &[&str], directory: &Path) {
    let output =
        Command::new(program).args(arguments).current_dir(directory).output().unwrap_or_else(|error| {
            panic!("the validator `{program}` is not installed ({error}); .ci/run installs it")
        });
    assert!(
        output.status.success(),
        "`{program} {}` rejected the output in {}:\n{}\n{}",
        arguments.join(" "),
        directory.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[ignore = "needs the external validators; .ci/run installs them and runs this in its external stage"]
fn real_validators_accept_the_output_for_every_example() {
    let shared = EXAMPLES.iter().map(|example| write_out_with(example, "kubernetes", &shared_store(), "shared-store"));
    for kubernetes in EXAMPLES.iter().map(|example| write_out(example, "kubernetes")).chain(shared) {
        let manifests: Vec<String> = std::fs::read_dir(&kubernetes)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "yaml"))
            .map(|path| path.display().to_string())
            .collect();
        let mut arguments = vec!["--strict"];
        arguments.extend(manifests.iter().map(String::as_str));
        validate("kubernetes-validate", &arguments, &kubernetes);
    }
    for example in EXAMPLES {
        let compose = write_out(example, "compose");
        validate("check-jsonschema", &["--builtin-schema", "vendor.compose-spec", "compose.yaml"], &compose);

        let ansible = write_out(example, "ansible");
        validate("ansible-playbook", &["--syntax-check", "-i", "inventory.yml", "playbook.yml"], &ansible);
        validate("ansible-inventory", &["-i", "inventory.yml", "--list"], &ansible);
    }
}
