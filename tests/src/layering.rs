//! The layering rule, as a check over the source tree: in the shared library and the
//! functions, only adapter files name the AWS SDK (`aws_sdk_*`), Smithy (`aws_smithy_*`) or
//! reqwest. Everything else (models, rules, store traits, handlers) reaches AWS and HTTP
//! only through the traits those adapters implement.
//!
//! An adapter file is one named for its technology (`dynamo.rs`, `kms.rs`, `sqs.rs`,
//! `http.rs`, `aws.rs`), a WhatsApp server kind's client (`provider/<kind>.rs`), or a
//! function's `main.rs` (the wiring: it builds the clients). `tools/` (the simulator, the
//! local stack) and `tests/` are not product code and are not checked.
//!
//! `tests/tests/layering.rs` runs [`violations`] over the workspace (so `scripts/test.sh`
//! and CI fail on a violation) and checks that it catches one.

use std::path::{Path, PathBuf};

/// The crate names a non-adapter file must not name.
pub const FORBIDDEN: &[&str] = &["aws_sdk_", "aws_smithy_", "reqwest"];

/// File names of adapters.
pub const ADAPTER_FILES: &[&str] = &["dynamo.rs", "kms.rs", "sqs.rs", "http.rs", "aws.rs"];

/// The source folders the rule covers, relative to the workspace root: the shared library
/// and each function.
pub fn checked_roots(workspace: &Path) -> Vec<PathBuf> {
    let mut roots = vec![workspace.join("shared/src")];
    if let Ok(dir) = std::fs::read_dir(workspace.join("functions")) {
        let mut functions: Vec<PathBuf> = dir
            .filter_map(Result::ok)
            .map(|e| e.path().join("src"))
            .filter(|p| p.is_dir())
            .collect();
        functions.sort();
        roots.extend(functions);
    }
    roots
}

/// Whether `path` (inside a checked root) is an adapter file.
pub fn is_adapter(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let parent = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    ADAPTER_FILES.contains(&name) || name == "main.rs" || (parent == "provider" && name != "mod.rs")
}

/// The code of a line without its `//` comment (doc comments may mention a crate).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Where `text` names a forbidden crate as a path (`reqwest::…`, `aws_sdk_dynamodb::…`) or in
/// a `use`: (line number, line).
pub fn named_crates(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let c = code(line);
        let hit = FORBIDDEN.iter().any(|krate| {
            c.match_indices(krate).any(|(at, _)| {
                // A whole identifier: not the tail of another one (`my_reqwest`).
                let before = c[..at].chars().next_back();
                let starts = !before.is_some_and(|b| b.is_alphanumeric() || b == '_');
                let rest = &c[at..];
                let ident_end = rest
                    .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                    .unwrap_or(rest.len());
                starts && rest[ident_end..].trim_start().starts_with("::")
            })
        });
        if hit {
            out.push((i + 1, line.trim().to_string()));
        }
    }
    out
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Every violation under `workspace`: `path:line: text`, paths relative to `workspace`.
pub fn violations(workspace: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for root in checked_roots(workspace) {
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        for f in files {
            if is_adapter(&f) {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            for (line, code) in named_crates(&text) {
                let rel = f.strip_prefix(workspace).unwrap_or(&f);
                out.push(format!("{}:{line}: {code}", rel.display()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_uses_count_comments_and_other_identifiers_do_not() {
        let text = "use aws_sdk_dynamodb::Client;\n\
                    let r: reqwest::Response = x;\n\
                    // reqwest:: in a comment\n\
                    fn my_reqwest() {}\n\
                    let e = aws_smithy_types::Blob::new(b);\n\
                    let s = \"reqwest\";\n";
        let hits: Vec<usize> = named_crates(text).into_iter().map(|(l, _)| l).collect();
        assert_eq!(hits, [1, 2, 5]);
    }

    #[test]
    fn adapters_are_named_for_their_technology() {
        for p in [
            "shared/src/tenant/dynamo.rs",
            "shared/src/secrets/kms.rs",
            "shared/src/egress/http.rs",
            "shared/src/provider/gowa.rs",
            "functions/webhook-ingress/src/sqs.rs",
            "functions/config-api/src/store/dynamo.rs",
            "functions/config-api/src/main.rs",
        ] {
            assert!(is_adapter(Path::new(p)), "{p}");
        }
        for p in [
            "shared/src/tenant/mod.rs",
            "shared/src/provider/mod.rs",
            "functions/config-api/src/handlers/status.rs",
            "functions/config-api/src/store/mod.rs",
        ] {
            assert!(!is_adapter(Path::new(p)), "{p}");
        }
    }
}
