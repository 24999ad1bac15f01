//! No import cycles between the top-level modules of either crate: when two
//! modules need the same type, it lives in a module below both. Read from the
//! sources (`crate::x` paths, comments and test modules left out), so a cycle
//! fails here before it grows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn the_switchboard_crate_has_no_module_cycles() {
    assert_acyclic(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
}

#[test]
fn the_jobs_crate_has_no_module_cycles() {
    assert_acyclic(&Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/src"));
}

#[test]
fn a_cycle_is_found_and_named() {
    let graph: Graph =
        [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")].into_iter().fold(Graph::new(), |mut graph, (from, to)| {
            graph.entry(from.into()).or_default().insert(to.into());
            graph
        });
    assert_eq!(find_cycle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    assert_eq!(
        imported_modules("use crate::{a, b::{C, D}};\n// crate::commented\nlet x = crate::c::f();"),
        ["a", "b", "c"].map(String::from).into()
    );
}

fn assert_acyclic(root: &Path) {
    let graph = module_graph(root);
    assert!(graph.len() > 3, "read the modules of {}", root.display());
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle under {}: {}", root.display(), cycle.join(" -> "));
    }
}

/// Each top-level module and the other top-level modules its files name.
fn module_graph(root: &Path) -> Graph {
    let mut graph = Graph::new();
    for file in rust_files(root) {
        let relative = file.strip_prefix(root).expect("under root");
        let module = relative.components().next().expect("a component").as_os_str().to_string_lossy();
        let module = module.trim_end_matches(".rs").to_owned();
        let name = file.file_name().expect("a file").to_string_lossy();
        if matches!(module.as_str(), "lib" | "main") || name.ends_with("tests.rs") {
            continue;
        }
        let source = std::fs::read_to_string(&file).expect("readable source");
        let imports: Vec<String> =
            imported_modules(&source).into_iter().filter(|m| *m != module && m != "self").collect();
        graph.entry(module).or_default().extend(imports);
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level modules a source names as `crate::x` or `crate::{x, y::z}`,
/// outside comments and its `#[cfg(test)] mod tests`.
fn imported_modules(source: &str) -> BTreeSet<String> {
    let code: String = source
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default()
        .lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n");
    let mut modules = BTreeSet::new();
    for (_, rest) in code.match_indices("crate::").map(|(at, _)| code.split_at(at + "crate::".len())) {
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth < 0
                })
                .map_or(group.len(), |(at, _)| at);
            modules.extend(
                split_top_level(&group[..end]).into_iter().filter_map(|item| identifier(item.trim())).map(String::from),
            );
        } else if let Some(name) = identifier(rest) {
            modules.insert(name.to_owned());
        }
    }
    modules
}

/// The items of a `use` group, split at its top-level commas.
fn split_top_level(group: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

/// The identifier at the start of `text`, if it starts with one.
fn identifier(text: &str) -> Option<&str> {
    let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(text.len());
    (end > 0).then(|| &text[..end])
}

/// One cycle in `graph`, as the path that closes it, if there is any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &Graph, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}
