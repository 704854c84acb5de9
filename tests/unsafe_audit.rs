//! The crate's one `unsafe` exception stays in one place: `src/heap.rs` (a
//! single glibc call). Everywhere else in `src/` the keyword must not appear
//! in code, and no lint level may let it back in (`allow(unsafe_code)`,
//! `warn`, `expect`). The library denies it at the root, the binaries forbid
//! it. Comments and string literals are skipped ("'unsafe-inline'" in the
//! page's CSP is text, not code), so the scan works on tokens.

use std::path::{Path, PathBuf};

/// The one file allowed an `unsafe` block and an `allow(unsafe_code)`.
const EXCEPTION: &str = "src/heap.rs";

/// A word or punctuation character of Rust code, with its line.
#[derive(Debug, PartialEq)]
struct Token {
    text: String,
    line: usize,
}

/// Split Rust source into identifiers and punctuation, dropping comments,
/// string, byte-string, raw-string and char literals, and numbers.
fn tokens(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    // Skip to just past the closing `"` of a (non-raw) string starting at i.
    let skip_string = |mut i: usize, line: &mut usize| {
        i += 1;
        while i < c.len() && c[i] != '"' {
            *line += usize::from(c[i] == '\n');
            i += if c[i] == '\\' { 2 } else { 1 };
        }
        i + 1
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(c[i] == '\n');
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_string(i, &mut line);
        } else if ch == '\'' {
            if at(i + 1) == '\\' {
                i += 3; // past the quote, the backslash and the escaped char
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3; // 'x'
            } else {
                i += 1; // a lifetime or label: the name follows as a word
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
            if raw_prefix && (at(i) == '#' || at(i) == '"') {
                let hashes = c[i..].iter().take_while(|&&h| h == '#').count();
                if at(i + hashes) == '"' {
                    // r#"…"#: ends at a quote followed by as many hashes.
                    i += hashes + 1;
                    while i < c.len()
                        && !(c[i] == '"' && c[i + 1..].iter().take(hashes).all(|&h| h == '#'))
                    {
                        line += usize::from(c[i] == '\n');
                        i += 1;
                    }
                    i += 1 + hashes;
                    continue;
                }
                i += hashes; // r#ident: the identifier follows
                continue;
            }
            if matches!(word.as_str(), "b" | "c") && at(i) == '"' {
                i = skip_string(i, &mut line);
            } else if word == "b" && at(i) == '\'' {
                i += if at(i + 1) == '\\' { 4 } else { 3 };
                while i < c.len() && c[i - 1] != '\'' {
                    i += 1;
                }
            } else {
                out.push(Token { text: word, line });
            }
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else {
            if !ch.is_whitespace() {
                out.push(Token {
                    text: ch.to_string(),
                    line,
                });
            }
            i += 1;
        }
    }
    out
}

/// What one file does with `unsafe`: lines of `unsafe` keywords, and the
/// lint levels given to `unsafe_code` with their lines.
fn audit(src: &str) -> (Vec<usize>, Vec<(String, usize)>) {
    let t = tokens(src);
    let keywords = t
        .iter()
        .filter(|x| x.text == "unsafe")
        .map(|x| x.line)
        .collect();
    let levels = t
        .iter()
        .enumerate()
        .filter(|(_, x)| x.text == "unsafe_code")
        .map(|(n, x)| {
            // `level(unsafe_code)` or `level(other, unsafe_code)`: the word
            // before the opening parenthesis.
            let open = t[..n].iter().rposition(|y| y.text == "(");
            let level = open
                .and_then(|o| o.checked_sub(1))
                .map_or("?".to_string(), |l| t[l].text.clone());
            (level, x.line)
        })
        .collect();
    (keywords, levels)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn unsafe_stays_in_the_heap_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    if root.join("build.rs").exists() {
        files.push(root.join("build.rs"));
    }
    assert!(files.len() > 20, "found only {files:?}");
    let mut problems = Vec::new();
    let mut exception_seen = false;
    for path in &files {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let src = std::fs::read_to_string(path).unwrap();
        let (keywords, levels) = audit(&src);
        let loosened: Vec<_> = levels
            .iter()
            .filter(|(level, _)| level != "deny" && level != "forbid")
            .collect();
        if rel == EXCEPTION {
            exception_seen = true;
            if keywords.len() != 1 || loosened.len() != 1 || loosened[0].0 != "allow" {
                problems.push(format!(
                    "{rel}: expected one unsafe block and one allow(unsafe_code), found \
                     unsafe at lines {keywords:?} and lint levels {levels:?}"
                ));
            }
            continue;
        }
        for line in keywords {
            problems.push(format!("{rel}:{line}: `unsafe` outside {EXCEPTION}"));
        }
        for (level, line) in loosened {
            problems.push(format!(
                "{rel}:{line}: {level}(unsafe_code) outside {EXCEPTION}"
            ));
        }
    }
    assert!(
        exception_seen,
        "{EXCEPTION} is gone: tighten src/lib.rs back to forbid(unsafe_code)"
    );
    let roots = [("src/lib.rs", "deny"), ("src/main.rs", "forbid")];
    let bin_roots = files
        .iter()
        .filter(|p| p.starts_with(root.join("src/bin")) && p.ends_with("main.rs"));
    for (path, want) in roots
        .iter()
        .map(|(p, w)| (root.join(p), *w))
        .chain(bin_roots.map(|p| (p.clone(), "forbid")))
    {
        let t = tokens(&std::fs::read_to_string(&path).unwrap());
        let texts: Vec<&str> = t.iter().map(|x| x.text.as_str()).collect();
        let attr = ["#", "!", "[", want, "(", "unsafe_code", ")", "]"];
        if !texts.windows(attr.len()).any(|w| w == attr) {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            problems.push(format!("{rel}: lacks #![{want}(unsafe_code)]"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_scan_sees_code_and_skips_text() {
    let src = r####"
// unsafe in a comment
/* and /* nested */ unsafe */
const CSP: &str = "style-src 'unsafe-inline'";
const RAW: &str = r#"unsafe { "quoted" }"#;
const B: &[u8] = b"unsafe";
const Q: char = '"';
fn f<'a>(x: &'a u8) -> u8 { let _ = (b'\'', '\'', '\u{1F600}'); *x }
#[allow(unsafe_code)]
fn g() { unsafe { h() } }
#![deny(dead_code, unsafe_code)]
"####;
    let (keywords, levels) = audit(src);
    assert_eq!(keywords, vec![10], "{:?}", tokens(src));
    assert_eq!(
        levels,
        vec![("allow".to_string(), 9), ("deny".to_string(), 11)]
    );
    let words: Vec<String> = tokens(src).into_iter().map(|t| t.text).collect();
    assert!(words.contains(&"a".to_string()), "lifetimes stay words");
    assert!(words.contains(&"h".to_string()));
}
