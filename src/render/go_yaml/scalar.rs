//! How go-yaml v2 prints one string (`stringv` plus libyaml's style analysis): plain when
//! libyaml allows it and the text would read back as a string, double quotes when plain text
//! would read back as another YAML 1.1 type (`"0"`, `""`, `"on"`, `"1e3"`, `"10:30"`), single
//! quotes for indicators (`'*x'`, `'a: b'`), a literal block for multi-line text, and double
//! quotes with escapes for what is not printable. Keys follow the same rules, never as a block.

use std::fmt::Write as _;

use super::push_indent;

/// go-yaml v2 `stringv` + libyaml's style analysis: literal block for multi-line text, double
/// quotes when plain text would read back as another type (YAML 1.1 rules: `"0"`, `""`, `"on"`),
/// plain when libyaml allows it, else single quotes, else double quotes.
pub(super) fn emit_string(out: &mut String, st: &str, block_indent: usize, is_key: bool) {
    let special = st.chars().any(|c| !is_printable(c));
    if st.contains('\n') {
        let space_break = st.contains(" \n");
        if !is_key && !special && !space_break && !st.ends_with(' ') {
            emit_literal(out, st, block_indent);
        } else {
            emit_double_quoted(out, st);
        }
    } else if resolves_to_non_string(st) || is_base60_float(st) {
        emit_double_quoted(out, st);
    } else if !special && plain_allowed(st) {
        out.push_str(st);
    } else if !special {
        out.push('\'');
        out.push_str(&st.replace('\'', "''"));
        out.push('\'');
    } else {
        emit_double_quoted(out, st);
    }
}

fn emit_literal(out: &mut String, st: &str, indent: usize) {
    out.push('|');
    if st.starts_with(' ') {
        out.push('2'); // indentation indicator, libyaml's best_indent
    }
    let body = match st.strip_suffix('\n') {
        None => {
            out.push('-');
            st
        }
        Some(rest) if rest.ends_with('\n') || rest.is_empty() => {
            out.push('+');
            rest
        }
        Some(rest) => rest,
    };
    out.push('\n');
    for line in body.split('\n') {
        if !line.is_empty() {
            push_indent(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
}

fn emit_double_quoted(out: &mut String, st: &str) {
    out.push('"');
    for c in st.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\x0b' => out.push_str("\\v"),
            '\x0c' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\x1b' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if is_printable(c) => out.push(c),
            c if (c as u32) <= 0xff => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c if (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08X}", c as u32);
            }
        }
    }
    out.push('"');
}

/// libyaml's `is_printable` (tab and astral-plane characters are not).
fn is_printable(c: char) -> bool {
    matches!(c, '\n' | ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
        && c != '\u{feff}'
}

/// libyaml's plain-scalar rules for block context (the string has no line break).
fn plain_allowed(st: &str) -> bool {
    if st.is_empty() || st.starts_with("---") || st.starts_with("...") {
        return false;
    }
    if st.starts_with(' ') || st.ends_with(' ') {
        return false;
    }
    let chars: Vec<char> = st.chars().collect();
    let blank = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    let mut preceded_by_ws = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_ws = chars.get(i + 1).is_none_or(|&n| blank(n));
        let indicator = if i == 0 {
            matches!(
                c,
                '#' | ','
                    | '['
                    | ']'
                    | '{'
                    | '}'
                    | '&'
                    | '*'
                    | '!'
                    | '|'
                    | '>'
                    | '\''
                    | '"'
                    | '%'
                    | '@'
                    | '`'
            ) || (matches!(c, '?' | ':' | '-') && followed_by_ws)
        } else {
            (c == ':' && followed_by_ws) || (c == '#' && preceded_by_ws)
        };
        if indicator {
            return false;
        }
        preceded_by_ws = blank(c);
    }
    true
}

/// go-yaml v2 `resolve("", s)` != `!!str`: YAML 1.1 booleans, nulls, numbers, timestamps.
fn resolves_to_non_string(st: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if SPECIAL.contains(&st) {
        return true;
    }
    match st.as_bytes()[0] {
        b'.' => is_yaml_float(st),
        b'0'..=b'9' | b'+' | b'-' => {
            if looks_like_timestamp(st) {
                return true;
            }
            let plain = st.replace('_', "");
            go_parse_int(&plain) || is_yaml_float(&plain)
        }
        _ => false,
    }
}

/// Go `strconv.ParseInt(s, 0, 64)` or `ParseUint` would accept it (range aside).
fn go_parse_int(st: &str) -> bool {
    let digits = st.strip_prefix(['+', '-']).unwrap_or(st);
    let (radix, rest) = if let Some(r) = digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
        (16, r)
    } else if let Some(r) = digits.strip_prefix("0b").or(digits.strip_prefix("0B")) {
        (2, r)
    } else if let Some(r) = digits.strip_prefix("0o").or(digits.strip_prefix("0O")) {
        (8, r)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    !rest.is_empty() && rest.chars().all(|c| c.is_digit(radix))
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$` (go-yaml's yamlStyleFloat).
fn is_yaml_float(st: &str) -> bool {
    let b = st.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// go-yaml's timestamp hint: four digits and a dash, then a date (and maybe a time).
fn looks_like_timestamp(st: &str) -> bool {
    let b = st.as_bytes();
    b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && {
        let rest = &st[5..];
        let date_end = rest.find(['T', 't', ' ']).unwrap_or(rest.len());
        let mut parts = rest[..date_end].split('-');
        let ok = |p: Option<&str>| {
            p.is_some_and(|p| (1..=2).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit()))
        };
        ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
    }
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$` (YAML 1.1 sexagesimal, quoted by go-yaml).
fn is_base60_float(st: &str) -> bool {
    let body = st.strip_prefix(['+', '-']).unwrap_or(st);
    let (main, frac) = match body.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (body, None),
    };
    if frac.is_some_and(|f| !f.bytes().all(|c| c.is_ascii_digit() || c == b'_')) {
        return false;
    }
    let mut groups = main.split(':');
    let head = groups.next().unwrap_or("");
    let head_ok = head.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && head.bytes().all(|c| c.is_ascii_digit() || c == b'_');
    let mut n = 0;
    let rest_ok = groups.all(|g| {
        n += 1;
        let g = g.as_bytes();
        match g {
            [d] => d.is_ascii_digit(),
            [a, d] => (b'0'..=b'5').contains(a) && d.is_ascii_digit(),
            _ => false,
        }
    });
    head_ok && n > 0 && rest_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_yaml_scalar_styles() {
        let one = |st: &str| {
            let mut o = String::new();
            emit_string(&mut o, st, 2, false);
            o
        };
        assert_eq!(one(""), "\"\"");
        assert_eq!(one("0"), "\"0\"");
        assert_eq!(one("0s"), "0s");
        assert_eq!(one("10.96.0.10"), "10.96.0.10");
        assert_eq!(one("1.5"), "\"1.5\"");
        assert_eq!(one("1e3"), "\"1e3\"");
        assert_eq!(one("0x1F"), "\"0x1F\"");
        assert_eq!(one("on"), "\"on\"");
        assert_eq!(one("y"), "\"y\"");
        assert_eq!(one("null"), "\"null\"");
        assert_eq!(one("10:30"), "\"10:30\"");
        assert_eq!(one("2001-12-14"), "\"2001-12-14\"");
        assert_eq!(one("*x"), "'*x'");
        assert_eq!(one("a: b"), "'a: b'");
        assert_eq!(one("a #b"), "'a #b'");
        assert_eq!(one("a#b"), "a#b");
        assert_eq!(one(" lead"), "' lead'");
        assert_eq!(one("- x"), "'- x'");
        assert_eq!(one("-x"), "-x");
        assert_eq!(one("it's"), "it's");
        assert_eq!(one("'q'"), "'''q'''");
        assert_eq!(one("tab\there"), "\"tab\\there\"");
        assert_eq!(
            one("/etc/kubernetes/pki/ca.crt"),
            "/etc/kubernetes/pki/ca.crt"
        );
        assert_eq!(one("a\nb\n"), "|\n  a\n  b\n");
        assert_eq!(one("a\nb"), "|-\n  a\n  b\n");
        assert_eq!(one("a \nb"), "\"a \\nb\"");
    }
}
