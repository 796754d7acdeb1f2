//! The codemap's structural invariants (ARCHITECTURE.md), checked on the source text so they
//! cannot quietly erode: no import circle between the files of the domain or of the HTTP layer,
//! the domain names no framework or driver, and every domain service and port stays narrow.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Public methods a domain service may have, and methods a port trait may have.
const MAX_SERVICE_METHODS: usize = 20;
const MAX_PORT_METHODS: usize = 20;

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name).join("src")
}

/// Every `.rs` file under `root`, by its path relative to `root`, with its text up to its
/// first `#[cfg(test)]` (test modules may import what they like) and without line comments.
fn sources(root: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let relative = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                let text = std::fs::read_to_string(&path).unwrap();
                out.insert(relative, production_code(&text));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    // Test-only helpers (the domain's in-memory fakes) are not part of the layering.
    out.retain(|path, _| !path.starts_with("testing/") && !path.ends_with("tests.rs"));
    out
}

/// The text without line comments, test-only module declarations (`#[cfg(test)] mod x;`) and
/// inline test modules (from `#[cfg(test)] mod x {` on).
fn production_code(text: &str) -> String {
    let mut code = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            match lines.peek() {
                Some(next) if next.trim_end().ends_with(';') => {
                    lines.next();
                    continue;
                }
                _ => break,
            }
        }
        code.push(line.split("//").next().unwrap_or_default());
    }
    code.join("\n")
}

/// `a/b.rs` → `["a", "b"]`, `a/mod.rs` → `["a"]`, `lib.rs` → `[]`.
fn module_path(file: &str) -> Vec<String> {
    let mut parts: Vec<String> =
        file.trim_end_matches(".rs").split('/').map(str::to_owned).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The file-level import graph of one crate: `crate::`, `super::` and `self::` paths (in `use`
/// lines and inline), resolved to the file of the longest module prefix they name. A module's
/// own `mod.rs` naming its children (declarations, re-exports) is not an edge: a parent that
/// re-exports its children does not depend on them in the sense that makes a circle.
fn import_graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = sources(root);
    let by_module: BTreeMap<Vec<String>, String> =
        files.keys().map(|file| (module_path(file), file.clone())).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, text) in &files {
        let here = module_path(file);
        let is_module_root = file.ends_with("mod.rs") || file == "lib.rs";
        let edges = graph.entry(file.clone()).or_default();
        for (start, _) in text.match_indices("::") {
            // The path this `::` belongs to, if it starts with crate/super/self.
            let before = &text[..start];
            let word_start = before.rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'));
            let path_start = word_start.map_or(0, |index| index + 1);
            if path_start + 1 < start && text[path_start..start].contains("::") {
                continue; // not the first `::` of its path
            }
            let head = &text[path_start..start];
            let base: Vec<String> = match head {
                "crate" => Vec::new(),
                "self" if is_module_root => here.clone(),
                "super" if is_module_root => here[..here.len().saturating_sub(1)].to_vec(),
                "super" => here[..here.len().saturating_sub(1)].to_vec(),
                _ => continue,
            };
            let rest = &text[start + 2..];
            let segment_end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let mut segments: Vec<String> = base;
            segments.extend(
                rest[..segment_end].split("::").filter(|s| !s.is_empty()).map(str::to_owned),
            );
            // `use crate::a::{b, c}`: each name in the group.
            let group: Vec<Vec<String>> = if rest[segment_end..].starts_with('{') {
                let inside = &rest[segment_end + 1..];
                let close = inside.find('}').unwrap_or(inside.len());
                inside[..close]
                    .split(',')
                    .map(|name| name.trim().split("::").next().unwrap_or_default().to_owned())
                    .filter(|name| !name.is_empty())
                    .map(|name| {
                        let mut path = segments.clone();
                        path.push(name);
                        path
                    })
                    .collect()
            } else {
                vec![segments]
            };
            for path in group {
                let target = (0..=path.len())
                    .rev()
                    .find_map(|length| by_module.get(&path[..length]))
                    .cloned();
                let Some(target) = target else { continue };
                let into_own_child = is_module_root
                    && module_path(&target).len() > here.len()
                    && module_path(&target).starts_with(&here);
                if target != *file && !into_own_child {
                    edges.insert(target);
                }
            }
        }
    }
    graph
}

/// The import circles of a graph (strongly connected components of more than one file).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Kosaraju: order by finish time, then walk the reversed graph.
    fn finish(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(node.to_owned()) {
            return;
        }
        for next in graph.get(node).into_iter().flatten() {
            finish(next, graph, seen, order);
        }
        order.push(node.to_owned());
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for node in graph.keys() {
        finish(node, graph, &mut seen, &mut order);
    }
    let mut reversed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in graph {
        for to in targets {
            reversed.entry(to.clone()).or_default().insert(from.clone());
        }
    }
    let mut assigned = BTreeSet::new();
    let mut components = Vec::new();
    for node in order.iter().rev() {
        let mut component = Vec::new();
        finish(node, &reversed, &mut assigned, &mut component);
        if component.len() > 1 {
            component.sort();
            components.push(component);
        }
    }
    components
}

#[test]
fn the_domain_and_the_http_layer_have_no_import_circle() {
    for name in ["gatehouse-domain", "gatehouse-http"] {
        let found = circles(&import_graph(&crate_src(name)));
        assert!(found.is_empty(), "{name} has import circles: {found:#?}");
    }
}

#[test]
fn the_circle_finder_finds_a_circle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a.rs", vec!["b.rs"]),
        ("b.rs", vec!["c.rs"]),
        ("c.rs", vec!["a.rs"]),
        ("d.rs", vec!["a.rs"]),
    ]
    .into_iter()
    .map(|(from, to)| (from.to_owned(), to.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(circles(&graph), vec![vec!["a.rs", "b.rs", "c.rs"]]);
    // And the graph of a real crate has edges to find circles in.
    let domain = import_graph(&crate_src("gatehouse-domain"));
    assert!(domain["sign_in/mod.rs"].contains("sessions/mod.rs"), "{:?}", domain["sign_in/mod.rs"]);
}

#[test]
fn the_domain_names_no_framework_or_driver() {
    for (file, text) in sources(&crate_src("gatehouse-domain")) {
        for name in ["axum", "sqlx", "redis", "hyper", "http::StatusCode", "tower"] {
            let named =
                text.contains(&format!("{name}::")) || text.contains(&format!("use {name}"));
            assert!(!named, "gatehouse-domain/src/{file} names {name}");
        }
    }
}

#[test]
fn domain_services_and_ports_stay_narrow() {
    // Public methods per `impl <Name>Service` (over all its files) and methods per port trait.
    let mut services: BTreeMap<String, usize> = BTreeMap::new();
    let mut ports: BTreeMap<String, usize> = BTreeMap::new();
    for (_, text) in sources(&crate_src("gatehouse-domain")) {
        let mut current: Option<(bool, String)> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("impl ") {
                let name = rest.split([' ', '<', '{']).next().unwrap_or_default();
                current = name.ends_with("Service").then(|| (true, name.to_owned()));
            } else if let Some(rest) = line.strip_prefix("pub trait ") {
                let name = rest.split([' ', ':', '<', '{']).next().unwrap_or_default();
                current = Some((false, name.to_owned()));
            } else if line.starts_with('}') {
                current = None;
            } else if let Some((is_service, name)) = &current {
                if *is_service
                    && (line.starts_with("    pub fn ") || line.starts_with("    pub async fn "))
                {
                    *services.entry(name.clone()).or_default() += 1;
                } else if !is_service
                    && (line.starts_with("    fn ") || line.starts_with("    async fn "))
                {
                    *ports.entry(name.clone()).or_default() += 1;
                }
            }
        }
    }
    assert!(services.len() >= 10, "services found: {services:?}");
    assert!(ports.contains_key("UserStore") && ports.contains_key("SessionStore"), "{ports:?}");
    let wide: Vec<_> = services.iter().filter(|(_, count)| **count > MAX_SERVICE_METHODS).collect();
    assert!(wide.is_empty(), "services over {MAX_SERVICE_METHODS} public methods: {wide:?}");
    let wide: Vec<_> = ports.iter().filter(|(_, count)| **count > MAX_PORT_METHODS).collect();
    assert!(wide.is_empty(), "ports over {MAX_PORT_METHODS} methods: {wide:?}");
}
