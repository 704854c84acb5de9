//! Turn byte offsets and dotted keys into line numbers for error messages.

/// The 1-based line holding `offset` and the dotted key written there
/// (`section.key`), looking back to the enclosing `[section]` header.
pub(super) fn key_at(text: &str, offset: usize) -> (usize, String) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line_no = before.matches('\n').count() + 1;
    let lines: Vec<&str> = text.lines().collect();
    let idx = line_no.saturating_sub(1).min(lines.len().saturating_sub(1));

    if let Some(header) = lines.get(idx).and_then(|l| header_name(l)) {
        return (line_no, header);
    }
    // A value may span several lines (arrays): walk back to its `key =` line.
    let key = (0..=idx)
        .rev()
        .filter_map(|i| lines.get(i))
        .take_while(|l| header_name(l).is_none())
        .find_map(|l| assignment_key(l))
        .unwrap_or_default();
    let section = (0..=idx)
        .rev()
        .filter_map(|i| lines.get(i))
        .find_map(|l| header_name(l))
        .unwrap_or_default();
    let dotted = match (section.is_empty(), key.is_empty()) {
        (true, true) => "(file)".to_string(),
        (true, false) => key,
        (false, true) => section,
        (false, false) => format!("{section}.{key}"),
    };
    (line_no, dotted)
}

/// The 1-based line where `dotted` (e.g. `portmap.lease`) is written, or where
/// its section starts, or 0 when the file does not mention it.
pub(super) fn line_of_key(text: &str, dotted: &str) -> usize {
    let (section, key) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    let mut current = String::new();
    let mut section_line = 0;
    for (i, line) in text.lines().enumerate() {
        if let Some(h) = header_name(line) {
            if h == dotted {
                return i + 1;
            }
            if h == section && section_line == 0 {
                section_line = i + 1;
            }
            current = h;
            continue;
        }
        if current == section && assignment_key(line).as_deref() == Some(key) {
            return i + 1;
        }
    }
    section_line
}

/// `portmap` for `[portmap]`, `portmap.mapping` for `[[portmap.mapping]]`.
fn header_name(line: &str) -> Option<String> {
    let t = line.trim();
    if !t.starts_with('[') {
        return None;
    }
    let inner = t.trim_start_matches('[');
    let end = inner.find(']')?;
    let name: String = inner
        .get(..end)?
        .split('.')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(".");
    Some(name.trim_matches('"').to_string())
}

/// `lease` for `lease = "1h"`; None for comments and continuation lines.
fn assignment_key(line: &str) -> Option<String> {
    let t = line.trim();
    if t.starts_with('#') || t.starts_with('"') && !t.contains('=') {
        return None;
    }
    let (k, _) = t.split_once('=')?;
    let k = k.trim().trim_matches('"');
    let valid = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    valid.then(|| k.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[gateway]\nsite = \"x\"\n\n[portmap]\nlease = \"5x\"\n[netcheck]\nstun_servers = [\n  \"a:1\",\n  7,\n]\n";

    #[test]
    fn finds_key_and_section() {
        let off = DOC.find("\"5x\"").unwrap();
        assert_eq!(key_at(DOC, off), (5, "portmap.lease".to_string()));
    }

    #[test]
    fn multi_line_values_point_to_their_key() {
        let off = DOC.find("7,").unwrap();
        assert_eq!(key_at(DOC, off), (9, "netcheck.stun_servers".to_string()));
    }

    #[test]
    fn headers_name_themselves() {
        let off = DOC.find("[portmap]").unwrap() + 1;
        assert_eq!(key_at(DOC, off).1, "portmap");
    }

    #[test]
    fn line_of_dotted_key() {
        assert_eq!(line_of_key(DOC, "portmap.lease"), 5);
        assert_eq!(line_of_key(DOC, "portmap.verify_interval"), 4);
        assert_eq!(line_of_key(DOC, "web.listen"), 0);
    }

    #[test]
    fn out_of_range_offset_is_safe() {
        assert_eq!(key_at("", 99).0, 1);
        let _ = key_at("é", 1);
    }
}
