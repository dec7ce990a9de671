//! What the tests that run containers share: commands that must succeed, the base image, and images built from
//! this build's binary (the repository's Containerfile, `prebuilt` target).
#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs a command and returns its output; a command that cannot start fails the test (it never skips).
pub(crate) fn run(program: &str, arguments: &[&str], folder: Option<&Path>) -> Output {
    let mut command = Command::new(program);
    command.args(arguments);
    if let Some(folder) = folder {
        command.current_dir(folder);
    }
    command.output().unwrap_or_else(|error| panic!("`{program}` cannot run ({error}); .ci/run installs it"))
}

pub(crate) fn ok(program: &str, arguments: &[&str], folder: Option<&Path>) -> String {
    let output = run(program, arguments, folder);
    assert!(
        output.status.success(),
        "`{program} {}` failed:\n{}\n{}",
        arguments.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The base image, made once from Debian's packages (deploy/base-image.sh does nothing when it exists).
pub(crate) fn base_image() {
    ok("bash", &[&repository().join("deploy/base-image.sh").to_string_lossy()], None);
}

/// A build context holding this build's binary, stripped of its debug information (it is only copied, never
/// rebuilt), and `containerfile` as `Containerfile`.
pub(crate) fn context_with_binary(name: &str, containerfile: &str) -> PathBuf {
    let context = Path::new(env!("CARGO_TARGET_TMPDIR")).join("images").join(name);
    let _ = std::fs::remove_dir_all(&context);
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("Containerfile"), containerfile).unwrap();
    ok("objcopy", &["--strip-debug", env!("CARGO_BIN_EXE_stratum"), &context.join("stratum").to_string_lossy()], None);
    context
}

/// `docker build` of a context's Containerfile (the classic builder: it is what every Docker engine has).
pub(crate) fn docker_build(context: &Path, tag: &str, target: Option<&str>) {
    let mut arguments = vec!["build", "-q", "-t", tag, "-f", "Containerfile"];
    if let Some(target) = target {
        arguments.extend(["--target", target]);
    }
    arguments.push(".");
    let output = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(&arguments)
        .current_dir(context)
        .output()
        .expect("docker runs");
    assert!(output.status.success(), "docker build of {tag} failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

/// Stratum's image from this build's binary: the repository's Containerfile, target `prebuilt`, as CI builds it.
pub(crate) fn build_image() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        base_image();
        let containerfile = std::fs::read_to_string(repository().join("Containerfile")).unwrap();
        let context = context_with_binary("stratum", &containerfile);
        docker_build(&context, &format!("stratum:{}", env!("CARGO_PKG_VERSION")), Some("prebuilt"));
    });
}
