//! The layering rule (tests/src/layering.rs): only adapter files of the shared library and
//! the functions name the AWS SDK, Smithy or reqwest. Runs in every `scripts/test.sh` (and
//! so in CI); no moto_server needed.

use std::path::Path;

use wagate_tests::layering::violations;
use wagate_tests::workspace_root;

#[test]
fn only_adapter_files_name_the_aws_sdk_or_reqwest() {
    let found = violations(&workspace_root());
    assert!(
        found.is_empty(),
        "files outside an adapter (dynamo.rs, kms.rs, sqs.rs, http.rs, aws.rs, \
         provider/<kind>.rs, main.rs) name the AWS SDK or reqwest; move the code behind a \
         store or client trait (docs/architecture.md):\n{}",
        found.join("\n")
    );
}

/// A copy of a small tree with one violation planted: the check names it, and only it.
#[test]
fn the_check_catches_a_handler_that_names_the_sdk() {
    let dir = std::env::temp_dir().join(format!("wagate-layering-{}", std::process::id()));
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "shared/src/tenant/dynamo.rs",
        "use aws_sdk_dynamodb::Client;\n",
    );
    write(
        "shared/src/tenant/mod.rs",
        "//! reqwest:: is named in a comment only\n",
    );
    write(
        "functions/config-api/src/main.rs",
        "let c = aws_sdk_dynamodb::Client::new(&sdk);\n",
    );
    write(
        "functions/config-api/src/handlers/status.rs",
        "pub fn f() {}\nlet r = client.get_item().send().await.map_err(aws_sdk_dynamodb::Error::from);\n",
    );
    let found = violations(Path::new(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("functions/config-api/src/handlers/status.rs:2:"),
        "{found:#?}"
    );
}

/// The mains are wiring only (settings from `settings.rs`, clients from `aws.rs`): at most 40
/// lines each, so anything more goes where it can be tested.
#[test]
fn every_function_main_is_at_most_40_lines() {
    let functions = workspace_root().join("functions");
    let mut checked = 0;
    for entry in std::fs::read_dir(&functions).unwrap() {
        let main = entry.unwrap().path().join("src/main.rs");
        if let Ok(text) = std::fs::read_to_string(&main) {
            checked += 1;
            let lines = text.lines().count();
            assert!(lines <= 40, "{}: {lines} lines", main.display());
        }
    }
    assert_eq!(checked, 4, "the four functions' mains");
}
