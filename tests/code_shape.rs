//! The code's shape, checked from the sources (issue 15): no import circle
//! among the library's modules.
//!
//! A module is one file of `src/` (`a/mod.rs` and `a.rs` are `a`). An edge
//! `m -> n` is a path in `m` outside its `#[cfg(test)]` items (`use`,
//! `crate::…`, `super::…`, `self::…`) that names an item of `n`. A path
//! that names a re-export (`pub use x::Item`) is followed to the module that
//! defines the item, so `crate::status::Health` counts as a use of
//! `primitives`, where `Health` lives, not of `status`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

struct Module {
    /// The file's source with comments, strings and test items removed.
    code: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The library's modules by path (the root, lib.rs, is the empty path); the
/// binaries (`main.rs`, `bin/`) are not part of the library's graph.
fn library_modules(src: &Path) -> BTreeMap<ModPath, Module> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut modules = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let mut parts: Vec<String> = rel
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if matches!(parts[0].as_str(), "main" | "bin") {
            continue;
        }
        // lib.rs is the crate root: its re-exports count, it is no node.
        if parts == ["lib"] {
            parts.clear();
        }
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        modules.insert(
            parts,
            Module {
                code: strip_tests(&strip_comments_and_strings(&text)),
            },
        );
    }
    modules
}

/// Blanks `//` and `/* */` comments and string/char literals, so paths in
/// docs or messages are not taken for uses.
fn strip_comments_and_strings(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i += end;
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(rest.len(), |e| e + 2);
            i += end;
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].bytes().take_while(|&b| b == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            let end = rest[body..]
                .find(&close)
                .map_or(rest.len(), |e| body + e + close.len());
            out.push_str("\"\"");
            i += end;
        } else if bytes[i] == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i = (j + 1).min(bytes.len());
        } else if bytes[i] == b'\'' && is_char_literal(rest) {
            let len = rest[1..].find('\'').map_or(1, |e| e + 2);
            out.push_str("' '");
            i += len;
        } else {
            let ch = rest.chars().next().expect("non-empty");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// `'x'` or `'\n'` (a char literal), not a lifetime such as `'a`.
fn is_char_literal(rest: &str) -> bool {
    let b = rest.as_bytes();
    (b.len() >= 3 && b[1] != b'\\' && rest[1..].chars().nth(1) == Some('\''))
        || (b.len() >= 4 && b[1] == b'\\')
}

/// Removes every item marked `#[cfg(test)]` (brace-matched).
fn strip_tests(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let (Some(open), semi) = (after.find('{'), after.find(';')) else {
            rest = "";
            break;
        };
        if semi.is_some_and(|s| s < open) {
            rest = &after[semi.expect("checked") + 1..];
            continue;
        }
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, ch) in after[open..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// A path a `use` brings in, and the name it is known by (its last
/// segment, or the `as` alias).
type UsePath = (Vec<String>, String);

/// Expands one `use` tree (`a::{b, c::{d as e}}`) into its paths.
fn expand_use(tree: &str) -> Vec<UsePath> {
    fn walk(prefix: &[String], tree: &str, out: &mut Vec<UsePath>) {
        let tree = tree.trim();
        if tree.is_empty() {
            return;
        }
        let Some(open) = tree.find('{') else {
            let mut parts = tree.split(" as ");
            let head = parts.next().unwrap_or("").trim();
            let mut path = prefix.to_vec();
            path.extend(
                head.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            let name = parts
                .next()
                .map(|a| a.trim().to_owned())
                .or_else(|| path.last().cloned())
                .unwrap_or_default();
            out.push((path, name));
            return;
        };
        let mut path = prefix.to_vec();
        path.extend(
            tree[..open]
                .trim_end_matches(':')
                .split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let (mut depth, mut start) = (0usize, 0usize);
        for (i, ch) in inner.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    walk(&path, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        walk(&path, &inner[start..], out);
    }
    let mut out = Vec::new();
    walk(&[], tree, &mut out);
    out
}

/// `crate::`, `self::` and `super::` paths made absolute; a bare first
/// segment naming a child module of `m` too. Anything else (std, other
/// crates, local names) is `None`.
fn absolute(m: &ModPath, path: &[String], modules: &BTreeMap<ModPath, Module>) -> Option<ModPath> {
    let first = path.first()?;
    let mut base: ModPath = match first.as_str() {
        "crate" => Vec::new(),
        "self" => m.clone(),
        "super" => {
            let mut b = m.clone();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                b.pop();
                rest = &rest[1..];
            }
            b.extend(rest.iter().cloned());
            return Some(b);
        }
        _ => {
            let mut child = m.clone();
            child.push(first.clone());
            if !modules.contains_key(&child) {
                return None;
            }
            m.clone()
        }
    };
    let skip = usize::from(matches!(first.as_str(), "crate" | "self"));
    base.extend(path[skip..].iter().cloned());
    Some(base)
}

/// Every path a module uses (absolute), and the re-exports it declares
/// (`pub use`: item name -> absolute path).
type Uses = (Vec<ModPath>, BTreeMap<String, ModPath>);

fn uses_of(m: &ModPath, code: &str, modules: &BTreeMap<ModPath, Module>) -> Uses {
    let mut paths = Vec::new();
    let mut reexports = BTreeMap::new();
    let mut rest = code;
    while let Some(at) = find_word(rest, "use") {
        let before = rest[..at].trim_end();
        let public = before.ends_with("pub") || before.ends_with(')') && before.contains("pub(");
        let Some(end) = rest[at..].find(';') else {
            break;
        };
        for (path, name) in expand_use(&rest[at + 3..at + end]) {
            if let Some(abs) = absolute(m, &path, modules) {
                if public {
                    reexports.insert(name, abs.clone());
                }
                paths.push(abs);
            }
        }
        rest = &rest[at + end..];
    }
    for start in ["crate::", "super::", "self::"] {
        let mut rest = code;
        while let Some(at) = find_word(rest, start.trim_end_matches(':')) {
            let tail = &rest[at..];
            if !tail.starts_with(start) {
                rest = &tail[1..];
                continue;
            }
            let len = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            let path: Vec<String> = tail[..len]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            // `super::{a, b}` is a use tree, read above.
            if path.len() > 1 {
                if let Some(abs) = absolute(m, &path, modules) {
                    paths.push(abs);
                }
            }
            rest = &tail[len.max(1)..];
        }
    }
    (paths, reexports)
}

/// Position of `word` in `text` where it is not part of a longer name or path.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let at = from + i;
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        if !before.is_some_and(|c| ident(c) || c == ':') && !after.is_some_and(ident) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// Whether `code` declares an item called `name`.
fn declares(code: &str, name: &str) -> bool {
    [
        "struct", "enum", "fn", "const", "static", "type", "trait", "mod", "union",
    ]
    .iter()
    .any(|kw| {
        let mut rest = code;
        while let Some(at) = find_word(rest, kw) {
            let after = rest[at + kw.len()..].trim_start();
            let ident_end = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if &after[..ident_end] == name {
                return true;
            }
            rest = &rest[at + kw.len()..];
        }
        false
    })
}

/// The module defining what `path` names: its longest module prefix, with
/// re-exports followed (bounded, in case two modules re-export each other).
fn defining_module(
    path: &[String],
    modules: &BTreeMap<ModPath, Module>,
    reexports: &BTreeMap<ModPath, BTreeMap<String, ModPath>>,
    depth: usize,
) -> Option<ModPath> {
    for len in (0..=path.len()).rev() {
        let prefix = path[..len].to_vec();
        if !modules.contains_key(&prefix) {
            continue;
        }
        if let Some(item) = path.get(len).filter(|_| depth < 8) {
            let named = reexports.get(&prefix).and_then(|r| r.get(item));
            if let Some(target) = named.filter(|t| t.as_slice() != path) {
                return defining_module(target, modules, reexports, depth + 1);
            }
            // `pub use inner::*`: the item comes from the glob's module if
            // that module declares it.
            if let Some(glob) = reexports.get(&prefix).and_then(|r| r.get("*")) {
                let from = &glob[..glob.len() - 1];
                if modules.get(from).is_some_and(|m| declares(&m.code, item)) {
                    let mut target = from.to_vec();
                    target.push(item.clone());
                    return defining_module(&target, modules, reexports, depth + 1);
                }
            }
        }
        return Some(prefix);
    }
    None
}

fn import_graph(src: &Path) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let modules = library_modules(src);
    let mut all_uses = BTreeMap::new();
    let mut reexports = BTreeMap::new();
    for (m, module) in &modules {
        let (paths, re) = uses_of(m, &module.code, &modules);
        all_uses.insert(m.clone(), paths);
        reexports.insert(m.clone(), re);
    }
    let mut graph: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (m, paths) in all_uses.iter().filter(|(m, _)| !m.is_empty()) {
        let edges = graph.entry(m.clone()).or_default();
        for path in paths {
            if let Some(target) = defining_module(path, &modules, &reexports, 0) {
                if &target != m && !target.is_empty() {
                    edges.insert(target);
                }
            }
        }
    }
    graph
}

/// The cycles of the graph: its strongly connected components with more
/// than one module (Tarjan, iterative over a small graph).
fn cycles(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct Tarjan<'a> {
        graph: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        found: Vec<Vec<ModPath>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a ModPath) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in self.graph.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.stack.contains(&w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.found
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn show(m: &ModPath) -> String {
    m.join("::")
}

#[test]
fn no_import_circle_among_library_modules() {
    let graph = import_graph(&src_dir());
    assert!(graph.len() > 50, "found only {} modules", graph.len());
    let found = cycles(&graph);
    let report: Vec<String> = found
        .iter()
        .map(|c| {
            let members: BTreeSet<&ModPath> = c.iter().collect();
            c.iter()
                .map(|m| {
                    let to: Vec<String> = graph[m]
                        .iter()
                        .filter(|t| members.contains(t))
                        .map(show)
                        .collect();
                    format!("  {} -> {}", show(m), to.join(", "))
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    assert!(
        found.is_empty(),
        "import circles among src/ modules:\n{}",
        report.join("\n--\n")
    );
}

/// The checker itself finds a circle, follows re-exports and ignores test
/// items, comments and strings (so the test above can fail).
#[test]
fn checker_sees_circles_and_reexports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let write = |rel: &str, text: &str| {
        let path = src.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write(
        "lib.rs",
        "pub mod a; pub mod b; pub mod c; pub mod leaf; pub use leaf as top;",
    );
    write(
        "a.rs",
        "use crate::b::Thing;\n// crate::c::Nope\nconst S: &str = \"crate::c::Nope\";",
    );
    write(
        "b.rs",
        "pub use crate::leaf::Thing;\npub fn f() { crate::a::g(); }",
    );
    write(
        "c.rs",
        "use super::leaf::Thing;\n#[cfg(test)]\nmod tests { use crate::a::g; }",
    );
    write("leaf/mod.rs", "pub struct Thing;");
    write("g/mod.rs", "mod inner;\npub use inner::*;");
    write("g/inner.rs", "pub struct Globbed;");
    write(
        "h.rs",
        "use crate::g::Globbed;\nfn k() { crate::top::Thing; }",
    );
    for n in 0..50 {
        write(&format!("filler/m{n}.rs"), "");
    }
    let graph = import_graph(&src);
    let key = |s: &str| s.split("::").map(str::to_owned).collect::<ModPath>();
    let edges = |m: &str| graph[&key(m)].iter().map(show).collect::<Vec<_>>();
    assert_eq!(
        edges("a"),
        vec!["leaf"],
        "re-export followed, comment and string ignored"
    );
    assert_eq!(edges("b"), vec!["a", "leaf"]);
    assert_eq!(edges("c"), vec!["leaf"], "test module ignored");
    assert_eq!(
        edges("h"),
        vec!["g::inner", "leaf"],
        "glob and root re-exports followed"
    );
    assert!(cycles(&graph).is_empty());
    write("leaf/mod.rs", "pub struct Thing; fn h() { crate::b::f(); }");
    let graph = import_graph(&src);
    let found: Vec<Vec<String>> = cycles(&graph)
        .iter()
        .map(|c| c.iter().map(show).collect())
        .collect();
    assert_eq!(
        found,
        vec![vec!["a".to_owned(), "b".to_owned(), "leaf".to_owned()]]
    );
}

/// The error type of every `Result<T, E>` written in `code` (tests removed).
fn result_error_types(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = find_word(rest, "Result") {
        let tail = &rest[at + "Result".len()..];
        rest = tail;
        let Some(args) = tail.strip_prefix('<') else {
            continue;
        };
        let (mut depth, mut split, mut end) = (0i32, None, None);
        for (i, ch) in args.char_indices() {
            match ch {
                '<' | '(' | '[' => depth += 1,
                '>' | ')' | ']' if depth > 0 => depth -= 1,
                '>' => {
                    end = Some(i);
                    break;
                }
                ',' if depth == 0 => split = Some(i),
                _ => {}
            }
        }
        if let (Some(split), Some(end)) = (split, end) {
            found.push(args[split + 1..end].split_whitespace().collect::<String>());
        }
    }
    found
}

#[test]
fn library_errors_are_typed_not_strings() {
    let modules = library_modules(&src_dir());
    let mut flattened = Vec::new();
    for (m, module) in &modules {
        for e in result_error_types(&module.code) {
            if e == "String" || e == "(String,String)" || e == "&'staticstr" {
                flattened.push(format!("{}: Result<_, {e}>", show(m)));
            }
        }
    }
    assert!(
        flattened.is_empty(),
        "errors flattened to strings in the library:\n{}",
        flattened.join("\n")
    );
    // The reader sees through nesting, so the check can fail.
    assert_eq!(
        result_error_types("fn f() -> Result<Option<Result<u8, String>>, E> {}"),
        vec!["E".to_owned(), "String".to_owned()]
    );
}

/// Every source file stays readable in one sitting: at most 600 lines
/// (tests and binaries included).
#[test]
fn source_files_stay_under_600_lines() {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    assert!(files.len() > 50, "found only {} files", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f)
                .expect("read source")
                .lines()
                .count();
            (lines > 600).then(|| format!("{}: {lines} lines", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over 600 lines:\n{}",
        long.join("\n")
    );
}

/// The functions of `code` (tests stripped first) longer than `limit`
/// lines, from the `fn` line to the closing brace at its indentation, as
/// `name: lines`. Declarations without a body (`fn f();`) are no function.
fn long_functions(code: &str, limit: usize) -> Vec<String> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let Some(name) = fn_name(trimmed) else {
            continue;
        };
        // A body opens before any `;` ends the signature.
        let sig_end = lines[i..]
            .iter()
            .position(|l| l.contains('{') || l.trim_end().ends_with(';'));
        if sig_end.is_none_or(|k| !lines[i + k].contains('{')) {
            continue;
        }
        let close = format!("{indent}}}");
        let end = lines[i..]
            .iter()
            .position(|l| l.trim_end() == close || (l.trim_end().ends_with('}') && *l == *line));
        let len = end.map_or(lines.len() - i, |e| e + 1);
        if len > limit {
            out.push(format!("{name}: {len} lines"));
        }
    }
    out
}

/// The name of the function a line starts, if it starts one.
fn fn_name(trimmed: &str) -> Option<&str> {
    let mut rest = trimmed;
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("fn ")?;
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    Some(&rest[..end])
}

/// Functions stay readable too: at most 80 lines in the library and the
/// binaries (test code aside).
#[test]
fn library_functions_stay_under_80_lines() {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter(|f| !f.to_string_lossy().ends_with("tests.rs"))
        .flat_map(|f| {
            let code = strip_tests(&std::fs::read_to_string(f).expect("read source"));
            long_functions(&code, 80)
                .into_iter()
                .map(move |l| format!("{}: {l}", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "functions over 80 lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn function_lengths_are_counted_to_the_closing_brace() {
    let body = |n: usize| "    let x = 1;\n".repeat(n);
    let code = format!(
        "fn short() {{\n{}}}\n\npub async fn long(a: u8)\n    -> u8\n{{\n{}}}\n\nfn decl();\n",
        body(10),
        body(85)
    );
    assert_eq!(long_functions(&code, 80), vec!["long: 89 lines".to_owned()]);
    let method = format!(
        "impl A {{\n    pub(crate) fn m(&self) {{\n{}    }}\n}}\n",
        body(78)
    );
    assert!(
        long_functions(&method, 80).is_empty(),
        "80 lines is allowed"
    );
    assert_eq!(long_functions(&method, 70), vec!["m: 80 lines".to_owned()]);
}
