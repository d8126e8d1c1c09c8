//! The lower layers point down only: `domain` (parsed values) uses nothing
//! of the portal but itself and the texts; `db` (queries) only itself, the
//! schema and `domain`; neither knows actix-web. And nothing below the web
//! layer reaches up into `routes` or `startup` from these layers.
//! (ARCHITECTURE.md; the services above are not there yet.)

use std::path::Path;

/// Every `crate::x` a source file names, with the file.
fn imports_under(dir: &str) -> Vec<(String, String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let name = path.display().to_string();
                for (at, _) in text.match_indices("crate::") {
                    let module: String = text[at + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    found.push((name.clone(), module, String::new()));
                }
                if text.contains("actix_web") || text.contains("actix_session") {
                    found.push((name.clone(), String::new(), "actix".into()));
                }
            }
        }
    }
    found
}

fn check(dir: &str, allowed: &[&str]) {
    let wrong: Vec<String> = imports_under(dir)
        .into_iter()
        .filter(|(_, module, actix)| !actix.is_empty() || !allowed.contains(&module.as_str()))
        .map(|(file, module, actix)| format!("{file}: crate::{module}{actix}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "src/{dir} reaches up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn domain_uses_only_itself_and_the_texts() {
    check("domain", &["domain", "i18n"]);
}

#[test]
fn db_uses_only_itself_the_schema_and_domain() {
    check("db", &["db", "schema", "domain"]);
}
