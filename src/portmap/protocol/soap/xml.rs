//! The bounded, non-recursive tag reader behind [`super`]: no DTDs, no
//! namespace resolution (local names only), entities decoded in leaf text.

use super::error::{SoapError, MAX_BODY_LEN};

/// Deepest element nesting the reader accepts.
const MAX_DEPTH: usize = 32;

/// Escapes `& < > " '` for XML text and attribute values and drops
/// characters XML 1.0 cannot carry (C0 controls other than tab, LF and CR,
/// U+FFFE and U+FFFF).
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// One piece of markup or text.
enum Token<'a> {
    /// A start tag: qualified name, and whether it is self-closing.
    Start(&'a str, bool),
    /// An end tag's qualified name.
    End(&'a str),
    /// Character data: raw text, and whether it came from a CDATA section.
    Text(&'a str, bool),
}

/// Strips a namespace prefix: `u:Foo` -> `Foo`.
fn local_name(qname: &str) -> &str {
    qname.rsplit_once(':').map_or(qname, |(_, local)| local)
}

/// A usable tag name: non-empty, no whitespace or markup characters.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || "<>&=\"'/".contains(c))
}

/// Markup skipped (or, for CDATA, returned as text): opener, closer, error.
const SPECIAL: [(&str, &str, &str); 3] = [
    ("<?", "?>", "unterminated processing instruction"),
    ("<!--", "-->", "unterminated comment"),
    ("<![CDATA[", "]]>", "unterminated CDATA section"),
];

/// Returns the token at `*pos` and advances past it; `None` at the end.
fn next_token<'a>(src: &'a str, pos: &mut usize) -> Result<Option<Token<'a>>, SoapError> {
    loop {
        let at = *pos;
        let bad = |reason| SoapError::Malformed(at, reason);
        let rest = src.get(at..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(None);
        }
        if let Some((open, close, what)) = SPECIAL.into_iter().find(|s| rest.starts_with(s.0)) {
            let inner = rest.get(open.len()..).unwrap_or_default();
            let end = inner.find(close).ok_or(bad(what))?;
            *pos = at + open.len() + end + close.len();
            if open == "<![CDATA[" {
                return Ok(Some(Token::Text(
                    inner.get(..end).unwrap_or_default(),
                    true,
                )));
            }
            continue;
        }
        let Some(tag) = rest.strip_prefix('<') else {
            let len = rest.find('<').unwrap_or(rest.len());
            *pos = at + len;
            return Ok(Some(Token::Text(
                rest.get(..len).unwrap_or_default(),
                false,
            )));
        };
        if tag.starts_with('!') {
            return Err(bad("DOCTYPE not allowed"));
        }
        // The tag ends at the first '>' outside a quoted attribute value.
        let mut quote = None;
        let close = tag.bytes().position(|b| {
            match (quote, b) {
                (None, b'>') => return true,
                (None, b'"' | b'\'') => quote = Some(b),
                (Some(q), _) if q == b => quote = None,
                _ => {}
            }
            false
        });
        let close = close.ok_or(bad("unterminated tag"))?;
        let inside = tag.get(..close).unwrap_or_default();
        *pos = at + 1 + close + 1;
        if let Some(name) = inside.strip_prefix('/') {
            let name = name.trim_end();
            return match valid_name(name) {
                true => Ok(Some(Token::End(name))),
                false => Err(bad("invalid end tag")),
            };
        }
        let empty = inside.ends_with('/');
        let inside = inside.strip_suffix('/').unwrap_or(inside);
        let name = inside.split(char::is_whitespace).next().unwrap_or_default();
        return match valid_name(name) {
            true => Ok(Some(Token::Start(name, empty))),
            false => Err(bad("invalid start tag")),
        };
    }
}

/// The character an entity name (between `&` and `;`) stands for.
fn entity(name: &str) -> Option<char> {
    let (digits, radix) = match name {
        "amp" => return Some('&'),
        "lt" => return Some('<'),
        "gt" => return Some('>'),
        "quot" => return Some('"'),
        "apos" => return Some('\''),
        _ => match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
            Some(hex) => (hex, 16),
            None => (name.strip_prefix('#')?, 10),
        },
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    char::from_u32(u32::from_str_radix(digits, radix).ok()?).filter(|&c| c != '\0')
}

/// Appends `text` with predefined and numeric entities decoded; an `&` that
/// starts no known entity is kept literally.
fn decode_into(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        rest = rest.get(amp + 1..).unwrap_or_default();
        let semi = rest.find(';').filter(|&semi| semi <= 8);
        match semi.and_then(|semi| Some((entity(rest.get(..semi)?)?, semi + 1))) {
            Some((c, len)) => {
                out.push(c);
                rest = rest.get(len..).unwrap_or_default();
            }
            None => out.push('&'),
        }
    }
    out.push_str(rest);
}

/// Finds the first element whose local name is `container` and returns the
/// trimmed, decoded text of its direct leaf children named in `wanted`
/// (`None` if there is no such element).
pub(in crate::portmap::protocol) fn extract<const N: usize>(
    body: &str,
    container: &str,
    wanted: [&'static str; N],
) -> Result<Option<[Option<String>; N]>, SoapError> {
    Ok(extract_all(body, container, wanted, 1)?.pop())
}

/// Like [`extract`], for every element named `container` in document order,
/// stopping after `limit` of them (the rest of the body is not read).
pub(in crate::portmap::protocol) fn extract_all<const N: usize>(
    body: &str,
    container: &str,
    wanted: [&'static str; N],
    limit: usize,
) -> Result<Vec<[Option<String>; N]>, SoapError> {
    if body.len() > MAX_BODY_LEN {
        return Err(SoapError::TooLarge(body.len()));
    }
    let mut found = Vec::new();
    let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
    let mut stack: Vec<&str> = Vec::new();
    let mut container_depth = None;
    let mut leaf: Option<(usize, String)> = None;
    let mut pos = 0;
    while found.len() < limit {
        let at = pos;
        let bad = |reason| SoapError::Malformed(at, reason);
        let token = next_token(body, &mut pos)?;
        match token {
            None if container_depth.is_some() => return Err(bad("unclosed response element")),
            None => break,
            Some(Token::Start(qname, empty)) => {
                if leaf.is_some() {
                    return Err(bad("element inside an argument"));
                }
                let (local, depth) = (local_name(qname), stack.len());
                match container_depth {
                    None if local == container && empty => {
                        found.push(std::mem::replace(&mut out, std::array::from_fn(|_| None)));
                    }
                    None if local == container => container_depth = Some(depth),
                    Some(d) if depth == d + 1 => {
                        if let Some(i) = wanted.iter().position(|w| *w == local) {
                            if out[i].is_some() {
                                return Err(SoapError::DuplicateElement(wanted[i]));
                            }
                            match empty {
                                true => out[i] = Some(String::new()),
                                false => leaf = Some((i, String::new())),
                            }
                        }
                    }
                    _ => {}
                }
                if !empty && depth >= MAX_DEPTH {
                    return Err(bad("elements nested too deeply"));
                } else if !empty {
                    stack.push(qname);
                }
            }
            Some(Token::End(qname)) => {
                if stack.pop() != Some(qname) {
                    return Err(bad("end tag does not match start tag"));
                }
                if let Some((i, text)) = leaf.take() {
                    out[i] = Some(text.trim().to_owned());
                }
                if container_depth == Some(stack.len()) {
                    container_depth = None;
                    found.push(std::mem::replace(&mut out, std::array::from_fn(|_| None)));
                }
            }
            Some(Token::Text(text, cdata)) => match leaf.as_mut() {
                Some((_, buf)) if cdata => buf.push_str(text),
                Some((_, buf)) => decode_into(text, buf),
                None => {}
            },
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_and_entities() {
        let escaped = xml_escape("a&b<c>d\"e'f\tg\u{1}\u{FFFF}é");
        assert_eq!(escaped, "a&amp;b&lt;c&gt;d&quot;e&apos;f\tgé");
        let mut out = String::new();
        let text = "&amp;&lt;&gt;&quot;&apos;&#65;&#x42;&#X43; &b; & &#; &#0; &#x110000;";
        decode_into(text, &mut out);
        assert_eq!(out, "&<>\"'ABC &b; & &#; &#0; &#x110000;");
    }

    #[test]
    fn extracts_direct_leaf_children() {
        let body = "<?xml?><r:R a='>' b=\"/>\"><x> 1 &amp; 2 </x><n><y>deep</y></n><y/>\
<!-- <x> --><z><![CDATA[<&amp;]]></z ></r:R><x>after</x>";
        let got = extract(body, "R", ["x", "y", "z", "w"]);
        let want = [Some("1 & 2"), Some(""), Some("<&amp;"), None];
        assert_eq!(got, Ok(Some(want.map(|v| v.map(String::from)))));
        assert_eq!(extract("<a><R/></a>", "R", ["x"]), Ok(Some([None])));
        assert_eq!(extract("<a>text</a>", "R", ["x"]), Ok(None));
        let dup = extract("<R><x>1</x><x>2</x></R>", "R", ["x"]);
        assert_eq!(dup, Err(SoapError::DuplicateElement("x")));
    }

    #[test]
    fn malformed_xml() {
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        for (body, offset, reason) in [
            ("<a><b></a>", 6, "end tag does not match start tag"),
            ("</a>", 0, "end tag does not match start tag"),
            ("<a", 0, "unterminated tag"),
            ("<a b='>", 0, "unterminated tag"),
            ("< a>", 0, "invalid start tag"),
            ("<a></a b>", 3, "invalid end tag"),
            ("<?xml", 0, "unterminated processing instruction"),
            ("<!-- x", 0, "unterminated comment"),
            ("<R><![CDATA[", 3, "unterminated CDATA section"),
            (
                "<!DOCTYPE x [<!ENTITY a 'b'>]><a/>",
                0,
                "DOCTYPE not allowed",
            ),
            (&deep, 96, "elements nested too deeply"),
            ("<R><x>1</x>", 11, "unclosed response element"),
            ("<R><x><b/>1</x></R>", 6, "element inside an argument"),
        ] {
            let got = extract(body, "R", ["x"]);
            assert_eq!(got, Err(SoapError::Malformed(offset, reason)), "{body}");
        }
        let huge = " ".repeat(MAX_BODY_LEN + 1);
        assert_eq!(
            extract(&huge, "R", ["x"]),
            Err(SoapError::TooLarge(huge.len()))
        );
        let msg = SoapError::Malformed(3, "x").to_string();
        assert_eq!(msg, "malformed SOAP XML at byte 3: x");
    }
}
