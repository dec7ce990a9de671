//! The OpenAPI document checked by a validator we did not write: `openapi-spec-validator` (PyPI), which CI's
//! external stage installs. Ignored in the plain test run: `cargo test -p stratum-api --test openapi --
//! --include-ignored`.

use std::process::Command;

#[test]
#[ignore = "needs openapi-spec-validator: run in CI's external stage"]
fn openapi_spec_validator_accepts_the_document() {
    let document = stratum_api::openapi::document(&stratum_api::routes::routes());
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi.json");
    std::fs::write(&path, serde_json::to_string_pretty(&document).unwrap()).unwrap();
    let output = Command::new("openapi-spec-validator")
        .arg(&path)
        .output()
        .expect("openapi-spec-validator must be installed (pip install openapi-spec-validator)");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
