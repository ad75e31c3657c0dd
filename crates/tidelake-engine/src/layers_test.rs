//! Checks the engine's layering (see the crate documentation): every
//! top-level module uses only modules of lower layers, so the module graph
//! has no cycle; and the submodules of each module form no cycle either.
//!
//! It reads the crate's own sources and resolves `crate::…` and `super::…`
//! paths (including `use crate::{…}` groups) to modules. Comments, string
//! literals and `#[cfg(test)] mod …` blocks do not count: tests may build
//! whole tables from any layer. `crate::Name` for a name the crate root
//! re-exports counts as a use of the module it comes from.
//!
//! Run it with `cargo nextest run --workspace -E 'test(/layers_test/)'`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level modules by layer, lowest first. A module may use modules
/// of lower layers only: not of its own layer, not of a higher one.
const LAYERS: &[&[&str]] = &[
    // Errors, and the process-wide counters every layer may bump.
    &["error", "counters"],
    // The key-value file layout (column names, row kinds, paths), options
    // and column statistics; the caches of immutable metadata.
    &["kv", "options", "stats", "cache"],
    // Pure LSM logic (key order, sorted runs, level overlap, sections) and
    // the facts derived from a schema.
    &["lsm", "layout", "evolution"],
    // Manifests, snapshots and the merge engines' functions.
    &["manifests", "snapshots", "mergefn"],
    // Fenced progress, read from snapshots' properties; the per-table
    // commit queues (group commit's state, carried by the table handle).
    &["progress", "queue"],
    // The table handle: store, paths, layout, snapshot reader.
    &["table"],
    // Data-file writing, index files, metadata inspection.
    &["files", "index", "introspect"],
    &["commit"],
    &["read"],
    &["compact"],
    &["write"],
    &["lifecycle"],
    // Runs a commit and what follows it (expiration, inline compaction).
    &["orchestrate"],
    // Views stored in the warehouse (the catalog refuses names they hold);
    // job declarations and leases of the services.
    &["views", "services"],
    &["catalog"],
];

/// Files that are not modules of a layer: the crate root and this test.
const NOT_LAYERED: &[&str] = &["lib", "layers_test"];

/// One source file: the module path it defines (`["read", "scan"]` for
/// `src/read/scan.rs`) and its text.
struct Source {
    module: Vec<String>,
    text: String,
}

#[test]
fn layers_only_call_downwards() {
    let sources = read_sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let lib = sources
        .iter()
        .find(|s| s.module.is_empty())
        .map(|s| s.text.clone())
        .unwrap_or_default();
    let problems = check(&sources, &lib, LAYERS);
    assert!(
        problems.is_empty(),
        "the engine's layering is broken:\n  {}",
        problems.join("\n  ")
    );
}

/// The checker itself fails on an upward use and on a cycle.
#[test]
fn upward_uses_and_cycles_are_reported() {
    let source = |module: &[&str], text: &str| Source {
        module: module.iter().map(|m| m.to_string()).collect(),
        text: text.to_string(),
    };
    let layers: &[&[&str]] = &[&["low"], &["high"]];
    let fine = [
        source(
            &["low"],
            "// crate::high::X in a comment\nlet s = \"crate::high\";",
        ),
        source(&["high"], "use crate::{low::{A, B}, high::C};"),
    ];
    assert_eq!(check(&fine, "", layers), Vec::<String>::new());

    let upward = [
        source(&["low"], "fn f() { crate::high::g() }"),
        source(&["high"], "use crate::low::A;"),
    ];
    let problems = check(&upward, "", layers);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("cycle: high -> low -> high")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("'low' (layer 0) uses 'high' (layer 1)")),
        "{problems:?}"
    );

    // Through a crate-root re-export, and between submodules.
    let hidden = [
        source(&["low"], "use crate::{Thing};"),
        source(&["high", "a"], "use super::b::X;"),
        source(&["high", "b"], "use crate::high::a::Y;"),
    ];
    let problems = check(&hidden, "pub use high::b::Thing;", layers);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("'low' (layer 0) uses 'high'")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("cycle: high::a -> high::b -> high::a")),
        "{problems:?}"
    );
}

/// Every layering problem of `sources`: modules missing from `layers`,
/// uses of a higher or the same layer, and cycles (top-level and between
/// the submodules of one module).
fn check(sources: &[Source], lib: &str, layers: &[&[&str]]) -> Vec<String> {
    let rank: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, mods)| mods.iter().map(move |m| (*m, i)))
        .collect();
    let top: BTreeSet<String> = sources
        .iter()
        .filter_map(|s| s.module.first().cloned())
        .filter(|m| !NOT_LAYERED.contains(&m.as_str()))
        .collect();
    let reexports = root_reexports(lib, &top);
    let children: BTreeSet<&[String]> = sources
        .iter()
        .filter(|s| s.module.len() >= 2)
        .map(|s| &s.module[..2])
        .collect();
    let mut problems: Vec<String> = top
        .iter()
        .filter(|m| !rank.contains_key(m.as_str()))
        .map(|m| format!("module '{m}' is in no layer: add it to LAYERS in layers_test.rs"))
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for source in sources.iter().filter(|s| !s.module.is_empty()) {
        let from = source.module.join("::");
        for used in module_uses(source, &top, &reexports) {
            let (a, b) = (&source.module[0], &used[0]);
            if a != b {
                graph.entry(a.clone()).or_default().insert(b.clone());
            } else if source.module.len() > 1
                && used.len() > 1
                && source.module[1] != used[1]
                && children.contains(&used[..2])
            {
                // Between two submodules of one module.
                let (x, y) = (
                    format!("{a}::{}", source.module[1]),
                    format!("{a}::{}", used[1]),
                );
                graph.entry(x).or_default().insert(y);
            }
            if let (Some(ra), Some(rb)) = (rank.get(a.as_str()), rank.get(b.as_str())) {
                if a != b && rb >= ra {
                    problems.push(format!(
                        "'{a}' (layer {ra}) uses '{b}' (layer {rb}) in {from}: a module may only use lower layers"
                    ));
                }
            }
        }
    }
    problems.extend(
        cycles(&graph)
            .into_iter()
            .map(|c| format!("cycle: {}", c.join(" -> "))),
    );
    problems.sort();
    problems.dedup();
    problems
}

/// Names the crate root re-exports from its own modules (`pub use
/// read::scan::{ScanBuilder, …}`), with the module they come from.
fn root_reexports(lib: &str, top: &BTreeSet<String>) -> BTreeMap<String, Vec<String>> {
    let code = strip(lib);
    let mut out = BTreeMap::new();
    for statement in code.split(';') {
        let Some(path) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        for full in expand(path.trim(), &[]) {
            if full.first().is_some_and(|m| top.contains(m)) {
                if let Some(name) = full.last() {
                    out.insert(name.clone(), full.clone());
                }
            }
        }
    }
    out
}

/// The module paths (from the crate root, at most two segments) that a
/// source file uses.
fn module_uses(
    source: &Source,
    top: &BTreeSet<String>,
    reexports: &BTreeMap<String, Vec<String>>,
) -> Vec<Vec<String>> {
    let code = strip(&source.text);
    // The module `super` starts from: a `mod.rs` or a top-level file is
    // its own module, so its `super` is one level up.
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = next_path_start(rest) {
        let tail = &rest[at..];
        let (absolute, path) = if let Some(p) = tail.strip_prefix("crate::") {
            (Vec::new(), p)
        } else {
            let mut base = source.module.clone();
            let mut p = tail;
            while let Some(q) = p.strip_prefix("super::") {
                base.pop();
                p = q;
            }
            (base, p)
        };
        for mut full in expand(path, &absolute) {
            if full.first().is_some_and(|m| !top.contains(m)) {
                match full.first().and_then(|name| reexports.get(name)) {
                    Some(origin) => full = origin.clone(),
                    None => continue,
                }
            }
            if !full.is_empty() {
                full.truncate(2);
                out.push(full);
            }
        }
        rest = &rest[at + 1..];
    }
    out
}

/// Where the next `crate::` or `super::` path starts (not inside an
/// identifier such as `my_crate::`).
fn next_path_start(code: &str) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = [code[from..].find("crate::"), code[from..].find("super::")]
            .into_iter()
            .flatten()
            .min()?
            + from;
        let before = code[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            return Some(at);
        }
        from = at + 1;
    }
}

/// Expands a path such as `a::{b, c::{d, e}}::…` (read up to where it
/// ends) into full paths, each prefixed by `prefix`.
fn expand(path: &str, prefix: &[String]) -> Vec<Vec<String>> {
    let mut segments = prefix.to_vec();
    let mut rest = path.trim_start();
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..matching_brace(group)];
            return split_top_level(inner)
                .into_iter()
                .filter(|item| !item.trim().is_empty() && item.trim() != "self")
                .flat_map(|item| expand(item, &segments))
                .chain(std::iter::once(segments.clone()))
                .collect();
        }
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if len == 0 {
            return vec![segments];
        }
        segments.push(rest[..len].to_string());
        match rest[len..].strip_prefix("::") {
            Some(more) => rest = more.trim_start(),
            None => return vec![segments],
        }
    }
}

/// The index of the `}` that closes a group whose `{` was just consumed.
fn matching_brace(text: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The code of a file without comments, string and character literals,
/// and without its `#[cfg(test)] mod …` blocks (which run to the end of
/// the file in this crate).
fn strip(text: &str) -> String {
    let mut code = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && is_raw_string(&chars, i) {
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            i += 2 + hashes;
            while i < chars.len() {
                if chars[i] == '"' && chars[i + 1..].iter().take(hashes).all(|c| *c == '#') {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            code.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            code.push_str("\"\"");
        } else if c == '\'' && char_literal_len(&chars[i..]).is_some() {
            i += char_literal_len(&chars[i..]).unwrap_or(1);
            code.push_str("' '");
        } else {
            code.push(c);
            i += 1;
        }
    }
    without_test_modules(&code)
}

fn is_raw_string(chars: &[char], at: usize) -> bool {
    let before = at.checked_sub(1).map(|b| chars[b]);
    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
        return false;
    }
    let hashes = chars[at + 1..].iter().take_while(|c| **c == '#').count();
    chars.get(at + 1 + hashes) == Some(&'"')
}

/// The length of a character literal starting at `chars[0]` (a `'`), or
/// `None` for a lifetime.
fn char_literal_len(chars: &[char]) -> Option<usize> {
    if chars.get(1) == Some(&'\\') {
        let end = chars.iter().skip(2).position(|c| *c == '\'')?;
        return Some(end + 3);
    }
    (chars.get(2) == Some(&'\'')).then_some(3)
}

fn without_test_modules(code: &str) -> String {
    let lines: Vec<&str> = code.lines().collect();
    let mut end = lines.len();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() == "#[cfg(test)]" {
            let next = lines[i + 1..].iter().find(|l| !l.trim().is_empty());
            if next
                .is_some_and(|l| l.trim_start().starts_with("mod ") && l.trim_end().ends_with('{'))
            {
                end = i;
                break;
            }
        }
    }
    lines[..end].join("\n")
}

/// The cycles of a graph, each as its nodes with the first repeated at the
/// end (one cycle per strongly connected part is enough to report).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Visiting,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, State>,
        stack: &mut Vec<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        state.insert(node.to_string(), State::Visiting);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(State::Visiting) => {
                    let start = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    found.push(cycle);
                }
                Some(State::Done) => {}
                None => visit(next, graph, state, stack, found),
            }
        }
        stack.pop();
        state.insert(node.to_string(), State::Done);
    }
    let mut state = BTreeMap::new();
    let mut found = Vec::new();
    for node in graph.keys() {
        if !state.contains_key(node.as_str()) {
            visit(node, graph, &mut state, &mut Vec::new(), &mut found);
        }
    }
    found
}

/// Every `.rs` file under `src`, with the module path it defines.
fn read_sources(src: &Path) -> Vec<Source> {
    let mut out = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap_or(&path);
            let mut module: Vec<String> = relative
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod") || module == ["lib"] {
                module.pop();
            }
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            out.push(Source { module, text });
        }
    }
    out
}
