//! Dependencies point one way (ARCHITECTURE.md): routes and the web layer
//! -> services -> db -> domain. `domain` (parsed values) uses nothing of
//! the portal but itself and the texts; `db` (queries) only itself, the
//! schema, `domain` and the error type; the services know nothing of the
//! web layer; and the module graph has no cycle.

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
    check("db", &["db", "schema", "domain", "error"]);
}

/// The crate's top-level modules (`src/x.rs`, `src/x/`) and the modules
/// each names through `crate::`.
fn module_graph() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let top = first.trim_end_matches(".rs").to_string();
            if top == "lib" || top == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let uses = graph.entry(top.clone()).or_default();
            for (at, _) in text.match_indices("crate::") {
                let module: String = text[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if module != top {
                    uses.insert(module);
                }
            }
        }
    }
    graph
}

/// The modules that take part in a cycle (strongly connected components
/// of more than one module, Tarjan's algorithm).
fn modules_in_cycles(
    graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> std::collections::BTreeSet<String> {
    struct Walk<'g> {
        graph: &'g std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        index: std::collections::HashMap<&'g str, (usize, usize)>,
        stack: Vec<&'g str>,
        next: usize,
        found: std::collections::BTreeSet<String>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            self.index.insert(v, (self.next, self.next));
            self.next += 1;
            self.stack.push(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.index[w].1.min(self.index[v].1);
                    self.index.get_mut(v).unwrap().1 = low;
                } else if self.stack.contains(&w) {
                    let low = self.index[w].0.min(self.index[v].1);
                    self.index.get_mut(v).unwrap().1 = low;
                }
            }
            if self.index[v].0 == self.index[v].1 {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.extend(component.iter().map(|m| m.to_string()));
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: Default::default(),
        stack: Vec::new(),
        next: 0,
        found: Default::default(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

/// No import cycle: every module's imports point one way.
#[test]
fn the_module_graph_has_no_cycle() {
    let cyclic = modules_in_cycles(&module_graph());
    assert!(cyclic.is_empty(), "modules in an import cycle: {cyclic:?}");
}

/// Every Rust source under `src/<rel>` (a file, or a folder's files), with
/// its text.
fn sources(rel: &str) -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut stack = vec![src.join(rel)];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = path.strip_prefix(&src).unwrap().display().to_string();
            found.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    assert!(!found.is_empty(), "no source under src/{rel}");
    found
}

/// The services and everything below them know nothing of the web layer:
/// no actix-web, no application state, no handlers, no error pages.
#[test]
fn services_do_not_know_the_web_layer() {
    let below = [
        "services",
        "mail.rs",
        "hashing.rs",
        "error.rs",
        "i18n.rs",
        "compress.rs",
        "assets.rs",
        "reference.rs",
        "config.rs",
    ];
    let web_layer = [
        "actix_web",
        "actix_session",
        "crate::state",
        "crate::startup",
        "crate::web",
        "crate::routes",
        "crate::errors",
        "crate::worker",
        "crate::session",
    ];
    let mut wrong = Vec::new();
    for (file, text) in below.iter().flat_map(|rel| sources(rel)) {
        for name in web_layer {
            if text.contains(name) {
                wrong.push(format!("src/{file}: {name}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "below the web layer:\n{}",
        wrong.join("\n")
    );
}

/// Where a handler's text reaches the database itself (a query run with
/// `.db(`, or any `crate::db::` item).
fn database_reaches(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("crate::db::") {
        let item: String = text[at + 11..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        found.push(format!("crate::db::{item}"));
    }
    for (at, _) in text.match_indices(".db(") {
        let line = text[..at].lines().count();
        found.push(format!(".db( on line {line}"));
    }
    found
}

/// The handlers go through the services for everything they read or
/// write: a page's handler, its service and its queries are one hop apart.
#[test]
fn handlers_reach_the_database_only_through_services() {
    let mut wrong = Vec::new();
    for (file, text) in sources("routes") {
        for reach in database_reaches(&text) {
            wrong.push(format!("src/{file}: {reach}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "handlers reaching the database:\n{}",
        wrong.join("\n")
    );
}

/// The handler check finds a query.
#[test]
fn the_handler_check_finds_queries() {
    let text =
        "let now = state.clock.now();\nstate.db(move |conn| crate::db::accounts::find(conn))";
    assert_eq!(
        database_reaches(text),
        ["crate::db::accounts", ".db( on line 2"]
    );
    assert!(database_reaches("let now = state.clock.now();").is_empty());
}

/// Where a source reads the system time itself instead of the clock.
fn clock_bypasses(text: &str) -> Vec<usize> {
    ["Utc::now(", "Local::now(", "SystemTime::now("]
        .iter()
        .flat_map(|needle| text.match_indices(needle).map(|(at, _)| at))
        .map(|at| text[..at].lines().count())
        .collect()
}

/// Everything that reads the time reads `clock.rs`, so tests can move it
/// (expiry, retention, windows); only the clock itself asks the system.
/// (`Instant::now` measures durations and is not the calendar.)
#[test]
fn the_time_is_read_only_through_the_clock() {
    let mut wrong = Vec::new();
    for (file, text) in sources("") {
        if file == "clock.rs" {
            continue;
        }
        for line in clock_bypasses(&text) {
            wrong.push(format!("src/{file}:{line}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "the system time read past the clock:\n{}",
        wrong.join("\n")
    );
    assert_eq!(clock_bypasses("a\nlet t = chrono::Utc::now();"), [2]);
}

/// The check itself finds a cycle when there is one.
#[test]
fn the_cycle_check_finds_cycles() {
    let mut graph = std::collections::BTreeMap::new();
    let edge = |to: &str| std::collections::BTreeSet::from([to.to_string()]);
    graph.insert("a".to_string(), edge("b"));
    graph.insert("b".to_string(), edge("c"));
    graph.insert("c".to_string(), edge("a"));
    graph.insert("d".to_string(), edge("a"));
    let found = modules_in_cycles(&graph);
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["a", "b", "c"]);
}
