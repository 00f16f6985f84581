//! The domain's layers: who may call whom. A module may import from its own layer and the
//! layers below it, never from a layer above, and no two modules may import each other,
//! directly or round a longer loop. The test below reads every `crate::…` and `super::…` path
//! of the domain's sources (outside comments, strings and `#[cfg(test)]` blocks) and holds
//! them to this table; ARCHITECTURE.md draws the same picture.
//!
//! A module belongs to the entry that is the longest prefix of its path (`billing::quote` is
//! a rule even though the rest of `billing` sits higher up).

/// From the bottom up.
pub const LAYERS: &[(&str, &[&str])] = &[
    // Types, settings, rows: no behaviour of the product yet.
    (
        "foundation",
        &[
            "error",
            "enums",
            "validation",
            "config",
            "db",
            "redis_conn",
            "layers",
        ],
    ),
    // Pure rules and definitions (no I/O).
    (
        "rules",
        &[
            "permissions",
            "jobs",
            "subscriptions::rules",
            "billing::quote",
            "benefits::keys",
        ],
    ),
    // Shared machinery every feature uses.
    (
        "platform",
        &[
            "auth",
            "outbox",
            "email",
            "audit",
            "events",
            "notify",
            "services",
            "providers",
            "logs",
            "telemetry",
        ],
    ),
    // Due work as rows (scheduling, cancelling, dispatching) and the partner's clock.
    ("time", &["due", "clock"]),
    // Each entity's rows, lookups and visibility, with no behaviour across entities.
    (
        "records",
        &[
            "partners",
            "nodes",
            "catalog",
            "billing",
            "subscriptions",
            "benefits::entitlements",
            "benefits::assignments",
        ],
    ),
    // What partners and operators do, and the jobs that finish it.
    (
        "features",
        &[
            "enrollment",
            "users",
            "ops_sessions",
            "service_requests",
            "queues",
            "seed",
            "purchases",
            "lifecycle",
            "benefits",
        ],
    ),
    // Runs a due action by calling the feature that owns it.
    ("runner", &["runner"]),
];

#[cfg(test)]
mod tests {
    use super::LAYERS;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// `a/b.rs` → `a::b`, `a/mod.rs` → `a`, `lib.rs` → `` (the crate root).
    fn module_of(rel: &Path) -> String {
        let mut parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let file = parts.pop().unwrap_or_default();
        let stem = file.trim_end_matches(".rs");
        if stem != "mod" && stem != "lib" {
            parts.push(stem.to_owned());
        }
        parts.join("::")
    }

    fn sources(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).expect("read the domain's sources") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                sources(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).expect("under src");
                let text = std::fs::read_to_string(&path).expect("read source");
                out.insert(module_of(rel), text);
            }
        }
    }

    /// The code without comments, string and char literals, and `#[cfg(test)]` blocks.
    fn code_only(src: &str) -> String {
        let b = src.as_bytes();
        let mut out = String::with_capacity(src.len());
        let mut i = 0;
        while i < b.len() {
            let rest = &src[i..];
            if rest.starts_with("//") {
                i += rest.find('\n').unwrap_or(rest.len());
            } else if rest.starts_with("/*") {
                i += rest.find("*/").map(|n| n + 2).unwrap_or(rest.len());
            } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
                let hashes = rest[1..].chars().take_while(|c| *c == '#').count();
                let close = format!("\"{}", "#".repeat(hashes));
                let body = 2 + hashes;
                i += body
                    + rest[body..]
                        .find(&close)
                        .map(|n| n + close.len())
                        .unwrap_or(0);
                out.push_str("\"\"");
            } else if b[i] == b'"' {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                i = j + 1;
                out.push_str("\"\"");
            } else if b[i] == b'\'' && char_literal_len(rest).is_some() {
                i += char_literal_len(rest).unwrap_or(1);
                out.push_str("' '");
            } else {
                let c = rest.chars().next().unwrap_or(' ');
                out.push(c);
                i += c.len_utf8();
            }
        }
        strip_test_blocks(&out)
    }

    /// `'x'`, `'\n'`, `'\u{1F600}'`: its length; a lifetime (`'a`) is none.
    fn char_literal_len(rest: &str) -> Option<usize> {
        let mut chars = rest.char_indices().skip(1);
        let (_, c) = chars.next()?;
        if c == '\\' {
            return rest[2..].find('\'').map(|n| n + 3);
        }
        let (j, close) = chars.next()?;
        (close == '\'').then_some(j + 1)
    }

    fn strip_test_blocks(code: &str) -> String {
        let mut out = code.to_owned();
        while let Some(at) = out.find("#[cfg(test)]") {
            let Some(open) = out[at..].find('{').map(|n| at + n) else {
                break;
            };
            let mut depth = 0;
            let mut end = out.len();
            for (k, c) in out[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = open + k + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            out.replace_range(at..end, "");
        }
        out
    }

    /// Every path that starts with `crate::` or `super::`, with `{a, b::c}` groups expanded.
    fn paths(code: &str) -> Vec<(String, Vec<String>)> {
        let mut found = Vec::new();
        let b = code.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let rest = &code[i..];
            let starts = (rest.starts_with("crate::") || rest.starts_with("super::"))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'));
            if !starts {
                i += 1;
                continue;
            }
            let head = if rest.starts_with("crate") {
                "crate"
            } else {
                "super"
            };
            let (tree, used) = use_tree(&rest[head.len() + 2..]);
            for p in tree {
                found.push((head.to_owned(), p));
            }
            i += head.len() + 2 + used.max(1);
        }
        found
    }

    /// Parses `a::b::{c, d::e}` (the part after `crate::`): the expanded paths, and how many
    /// bytes it used.
    fn use_tree(s: &str) -> (Vec<Vec<String>>, usize) {
        let mut segs = Vec::new();
        let mut i = 0;
        let b = s.as_bytes();
        loop {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            if i > start {
                segs.push(s[start..i].to_owned());
            }
            // `crate::{a, b}` opens a group at once; `a::{b, c}` after a segment.
            let group_now = i == 0 && s.starts_with('{');
            if group_now || s[i..].starts_with("::") {
                if !group_now {
                    i += 2;
                }
                if s[i..].starts_with('{') {
                    i += 1;
                    let mut out = Vec::new();
                    loop {
                        while i < b.len() && (b[i] == b' ' || b[i] == b'\n' || b[i] == b',') {
                            i += 1;
                        }
                        if i >= b.len() || b[i] == b'}' {
                            i += 1;
                            break;
                        }
                        let (inner, used) = use_tree(&s[i..]);
                        for p in inner {
                            out.push(segs.iter().cloned().chain(p).collect());
                        }
                        // `*` (or anything unexpected) uses nothing: step over it.
                        i += used.max(1);
                    }
                    return (out, i);
                }
                if s[i..].starts_with('*') {
                    return (vec![segs], i + 1);
                }
                continue;
            }
            return (vec![segs], i);
        }
    }

    /// The module a path names: the longest prefix of it that is a module (`self` dropped).
    fn resolve(
        modules: &BTreeSet<String>,
        here: &str,
        head: &str,
        segs: &[String],
    ) -> Option<String> {
        let mut base: Vec<String> = if head == "crate" {
            Vec::new()
        } else {
            // `super` of module `a::b` (a/b.rs, or a/b/mod.rs) is `a`.
            let mut b: Vec<String> = here.split("::").map(str::to_owned).collect();
            b.pop();
            b
        };
        let mut segs: Vec<String> = segs.iter().filter(|s| *s != "self").cloned().collect();
        while segs.first().is_some_and(|s| s == "super") {
            segs.remove(0);
            base.pop();
        }
        base.retain(|s| !s.is_empty());
        let full: Vec<String> = base.into_iter().chain(segs).collect();
        (1..=full.len())
            .rev()
            .map(|n| full[..n].join("::"))
            .find(|m| modules.contains(m))
    }

    fn layer_of(module: &str) -> Option<(usize, &'static str)> {
        let mut best: Option<(usize, usize, &'static str)> = None;
        for (rank, (name, members)) in LAYERS.iter().enumerate() {
            for m in *members {
                let covers = module == *m || module.starts_with(&format!("{m}::"));
                if covers && best.is_none_or(|(len, _, _)| m.len() > len) {
                    best = Some((m.len(), rank, name));
                }
            }
        }
        best.map(|(_, rank, name)| (rank, name))
    }

    /// The module import graph of the domain crate: module → modules it imports.
    fn graph() -> BTreeMap<String, BTreeSet<String>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = BTreeMap::new();
        sources(&root, &root, &mut files);
        let modules: BTreeSet<String> = files.keys().cloned().collect();
        let mut edges = BTreeMap::new();
        for (module, text) in &files {
            let mut to = BTreeSet::new();
            for (head, segs) in paths(&code_only(text)) {
                if let Some(m) = resolve(&modules, module, &head, &segs) {
                    if m != *module && !m.is_empty() {
                        to.insert(m);
                    }
                }
            }
            edges.insert(module.clone(), to);
        }
        edges
    }

    /// Every import loop, as the modules round it.
    fn loops(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
        // Tarjan's strongly connected components.
        struct State<'a> {
            edges: &'a BTreeMap<String, BTreeSet<String>>,
            index: BTreeMap<&'a str, usize>,
            low: BTreeMap<&'a str, usize>,
            stack: Vec<&'a str>,
            on_stack: BTreeSet<&'a str>,
            found: Vec<Vec<String>>,
        }
        fn visit<'a>(s: &mut State<'a>, v: &'a str) {
            let n = s.index.len();
            s.index.insert(v, n);
            s.low.insert(v, n);
            s.stack.push(v);
            s.on_stack.insert(v);
            let edges = s.edges;
            for w in edges.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(lw));
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(iw));
                }
            }
            if s.low[v] == s.index[v] {
                let mut component = Vec::new();
                while let Some(w) = s.stack.pop() {
                    s.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    s.found.push(component);
                }
            }
        }
        let mut s = State {
            edges,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            found: Vec::new(),
        };
        for v in edges.keys() {
            if !s.index.contains_key(v.as_str()) {
                visit(&mut s, v);
            }
        }
        s.found
    }

    fn file_of(module: &str) -> String {
        let path = module.replace("::", "/");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        if root.join(&path).join("mod.rs").exists() {
            format!("domain/src/{path}/mod.rs")
        } else {
            format!("domain/src/{path}.rs")
        }
    }

    #[test]
    fn imports_only_point_down_and_never_loop() {
        let edges = graph();
        let mut faults = Vec::new();
        for component in loops(&edges) {
            let ties: Vec<String> = component
                .iter()
                .flat_map(|a| {
                    edges[a]
                        .iter()
                        .filter(|b| component.contains(b))
                        .map(move |b| format!("{a} -> {b}"))
                })
                .collect();
            faults.push(format!(
                "import loop of {} modules: {}",
                component.len(),
                ties.join(", ")
            ));
        }
        for (module, to) in &edges {
            if module.is_empty() {
                continue;
            }
            let Some((rank, name)) = layer_of(module) else {
                faults.push(format!(
                    "{}: module `{module}` is in no layer of domain/src/layers.rs",
                    file_of(module)
                ));
                continue;
            };
            for m in to {
                if let Some((r, n)) = layer_of(m) {
                    if r > rank {
                        faults.push(format!(
                            "{}: `{module}` ({name}) imports `crate::{m}` from a higher layer ({n})",
                            file_of(module)
                        ));
                    }
                }
            }
        }
        assert!(faults.is_empty(), "\n{}\n", faults.join("\n"));
    }

    #[test]
    fn the_reader_sees_use_trees_inline_paths_and_super() {
        let code = code_only(
            "use crate::a::{b, c::{d, e}};\nuse super::{f, g};\n// crate::commented::out\nfn f() { crate::x::y(); super::z(); \"crate::in::string\"; }\n#[cfg(test)]\nmod tests { use crate::test_only; }",
        );
        let got: Vec<String> = paths(&code)
            .into_iter()
            .map(|(h, p)| format!("{h}::{}", p.join("::")))
            .collect();
        assert_eq!(
            got,
            [
                "crate::a::b",
                "crate::a::c::d",
                "crate::a::c::e",
                "super::f",
                "super::g",
                "crate::x::y",
                "super::z"
            ]
        );
        let modules: BTreeSet<String> = ["a", "a::c", "billing", "billing::quote"]
            .into_iter()
            .map(String::from)
            .collect();
        let segs = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
        assert_eq!(
            resolve(&modules, "billing::orders", "super", &segs("quote::Quote")),
            Some("billing::quote".into())
        );
        assert_eq!(
            resolve(&modules, "a", "super", &segs("billing::x")),
            Some("billing".into())
        );
        assert_eq!(layer_of("billing::quote").map(|l| l.1), Some("rules"));
        assert_eq!(layer_of("billing::orders").map(|l| l.1), Some("records"));
        assert_eq!(
            layer_of("purchases::purchase").map(|l| l.1),
            Some("features")
        );
        assert_eq!(layer_of("nowhere"), None);
    }
}
