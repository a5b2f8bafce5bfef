//! A small line-based scanner for the few TOML keys the runtimes' files hold (section
//! headers, `key = value`, dotted and quoted keys, comments, multi-line arrays): not a TOML
//! parser, but all that reading a cgroup driver needs.

/// One `key = value` line of a TOML file: the full key (table path + dotted key), the raw value
/// text and its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Assignment {
    pub(super) key: Vec<String>,
    pub(super) value: String,
    pub(super) line: usize,
}

/// Line-based TOML scan: tracks `[table]`/`[[array]]` headers and yields every assignment with
/// its full key. Multi-line arrays are joined into one value; multi-line strings are skipped;
/// lines it does not understand are ignored (they cannot set the keys we look for).
pub(super) fn scan_toml(text: &str) -> Vec<Assignment> {
    let mut out = Vec::new();
    let mut table: Vec<String> = Vec::new();
    // An assignment whose array value continues on the next lines: (assignment, open brackets).
    let mut pending: Option<(Assignment, i32)> = None;
    let mut in_multiline_string: Option<&str> = None;

    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        if let Some(delim) = in_multiline_string {
            if raw.contains(delim) {
                in_multiline_string = None;
            }
            continue;
        }
        let line = strip_comment(raw).trim();
        if let Some((mut a, depth)) = pending.take() {
            a.value.push(' ');
            a.value.push_str(line);
            let depth = depth + bracket_delta(line);
            if depth > 0 {
                pending = Some((a, depth));
            } else {
                out.push(a);
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if let Some(inner) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            table = parse_key(inner).unwrap_or_else(|| vec!["\u{0}invalid".into()]);
            continue;
        }
        if let Some(inner) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = parse_key(inner).unwrap_or_else(|| vec!["\u{0}invalid".into()]);
            continue;
        }
        let Some(eq) = find_unquoted(line, '=') else {
            continue;
        };
        let Some(key) = parse_key(&line[..eq]) else {
            continue;
        };
        let value = line[eq + 1..].trim().to_owned();
        for delim in ["\"\"\"", "'''"] {
            if let Some(rest) = value.strip_prefix(delim) {
                if !rest.contains(delim) {
                    in_multiline_string = Some(delim);
                }
            }
        }
        let mut full = table.clone();
        full.extend(key);
        let a = Assignment {
            key: full,
            value,
            line: line_no,
        };
        let depth = bracket_delta(&a.value);
        if a.value.starts_with('[') && depth > 0 {
            pending = Some((a, depth));
        } else {
            out.push(a);
        }
    }
    if let Some((a, _)) = pending {
        out.push(a);
    }
    out
}

/// Calls `f` for every character of `s` outside quoted strings, with its byte index.
pub(super) fn for_each_unquoted(s: &str, mut f: impl FnMut(usize, char) -> bool) {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None => {
                if !f(i, c) {
                    return;
                }
            }
        }
    }
}

pub(super) fn find_unquoted(s: &str, needle: char) -> Option<usize> {
    let mut found = None;
    for_each_unquoted(s, |i, c| {
        if c == needle {
            found = Some(i);
            false
        } else {
            true
        }
    });
    found
}

pub(super) fn strip_comment(line: &str) -> &str {
    match find_unquoted(line, '#') {
        Some(i) => &line[..i],
        None => line,
    }
}

pub(super) fn bracket_delta(s: &str) -> i32 {
    let mut depth = 0;
    for_each_unquoted(s, |_, c| {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        true
    });
    depth
}

/// Parses a (possibly dotted, possibly quoted) TOML key into its parts.
pub(super) fn parse_key(s: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut cuts = Vec::new();
    for_each_unquoted(s, |i, c| {
        if c == '.' {
            cuts.push(i);
        }
        true
    });
    cuts.push(s.len());
    for cut in cuts {
        let part = s[start..cut].trim();
        start = cut + 1;
        let parsed = if let Some(q) = part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
            q.replace("\\\"", "\"").replace("\\\\", "\\")
        } else if let Some(q) = part.strip_prefix('\'').and_then(|p| p.strip_suffix('\'')) {
            q.to_owned()
        } else if !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            part.to_owned()
        } else {
            return None;
        };
        parts.push(parsed);
    }
    Some(parts)
}

pub(super) fn parse_toml_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

pub(super) fn parse_toml_string(value: &str) -> Option<String> {
    let v = value.trim();
    if let Some(s) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(s.replace("\\\"", "\"").replace("\\\\", "\\"))
    } else {
        v.strip_prefix('\'')
            .and_then(|s| s.strip_suffix('\''))
            .map(str::to_owned)
    }
}

pub(super) fn parse_toml_string_array(value: &str) -> Option<Vec<String>> {
    let inner = value.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut items = Vec::new();
    let mut start = 0;
    let mut cuts = Vec::new();
    for_each_unquoted(inner, |i, c| {
        if c == ',' {
            cuts.push(i);
        }
        true
    });
    cuts.push(inner.len());
    for cut in cuts {
        let item = inner[start..cut].trim();
        start = cut + 1;
        if item.is_empty() {
            continue;
        }
        items.push(parse_toml_string(item)?);
    }
    Some(items)
}
