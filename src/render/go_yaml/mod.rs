//! YAML output in go-yaml v2's style: what sigs.k8s.io/yaml, and so kubeadm, prints. Keys
//! sorted the way go-yaml sorts them, sequences not indented under their key, empty collections
//! as `{}` and `[]`, floats as Go's `%g`, and each string in the style go-yaml picks
//! (`scalar`).
//!
//! serde_norway prints `''` and `'0'` where go-yaml prints `""` and `"0"`, and keeps input key
//! order where go-yaml sorts; a kubelet reads both the same, but byte-identity with kubeadm's
//! file is what lets the golden test (tests/golden_kubelet_config.rs) catch real differences.
//! Used by `super::kubelet_config` for `/var/lib/kubelet/config.yaml`.

mod scalar;

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_norway::{Mapping, Value};

use scalar::emit_string;

/// A YAML tag (`!foo`) at `field` (a dotted path): kubeadm's file goes through JSON, which has
/// no tags, so there is no go-yaml output to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tagged {
    pub(super) field: String,
}

/// The document `v`, as go-yaml v2 prints it.
pub(super) fn to_string(v: &Value) -> Result<String, Tagged> {
    let mut out = String::new();
    emit_document(&mut out, v)?;
    Ok(out)
}

/// A scalar as text (for keys and messages); collections and tags by their kind.
pub(super) fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "null".into(),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

fn emit_document(out: &mut String, v: &Value) -> Result<(), Tagged> {
    match v {
        Value::Mapping(m) if !m.is_empty() => emit_mapping(out, m, 0, false, ""),
        Value::Sequence(q) if !q.is_empty() => emit_sequence(out, q, 0, false, ""),
        other => {
            emit_inline(out, other, 0, "")?;
            out.push('\n');
            Ok(())
        }
    }
}

fn key_string(k: &Value) -> String {
    // kubeadm goes through JSON, where every key is a string.
    match k {
        Value::String(s) => s.clone(),
        other => scalar_text(other),
    }
}

fn field_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Entries of a non-empty mapping at `indent`; the first line's indentation is already written
/// when it follows a `- `.
fn emit_mapping(
    out: &mut String,
    m: &Mapping,
    indent: usize,
    first_inline: bool,
    parent: &str,
) -> Result<(), Tagged> {
    let mut entries: Vec<(String, &Value)> = m.iter().map(|(k, v)| (key_string(k), v)).collect();
    entries.sort_by(|a, b| go_yaml_key_cmp(&a.0, &b.0));
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 || !first_inline {
            push_indent(out, indent);
        }
        let path = field_path(parent, &key);
        emit_string(out, &key, indent, true);
        out.push(':');
        match value {
            Value::Mapping(c) if !c.is_empty() => {
                out.push('\n');
                emit_mapping(out, c, indent + 2, false, &path)?;
            }
            // go-yaml does not indent a sequence under its mapping key.
            Value::Sequence(q) if !q.is_empty() => {
                out.push('\n');
                emit_sequence(out, q, indent, false, &path)?;
            }
            other => {
                out.push(' ');
                emit_inline(out, other, indent + 2, &path)?;
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
    }
    Ok(())
}

fn emit_sequence(
    out: &mut String,
    q: &[Value],
    indent: usize,
    first_inline: bool,
    parent: &str,
) -> Result<(), Tagged> {
    for (i, item) in q.iter().enumerate() {
        if i > 0 || !first_inline {
            push_indent(out, indent);
        }
        out.push_str("- ");
        let path = format!("{parent}[{i}]");
        match item {
            Value::Mapping(c) if !c.is_empty() => emit_mapping(out, c, indent + 2, true, &path)?,
            Value::Sequence(c) if !c.is_empty() => emit_sequence(out, c, indent + 2, true, &path)?,
            other => {
                emit_inline(out, other, indent + 2, &path)?;
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
    }
    Ok(())
}

pub(super) fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A scalar or an empty collection on the current line (a literal block continues below it at
/// `block_indent`).
fn emit_inline(out: &mut String, v: &Value, block_indent: usize, path: &str) -> Result<(), Tagged> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else {
                out.push_str(&go_float(n.as_f64().unwrap_or(f64::NAN)));
            }
        }
        Value::String(st) => emit_string(out, st, block_indent, false),
        Value::Mapping(_) => out.push_str("{}"),
        Value::Sequence(_) => out.push_str("[]"),
        Value::Tagged(_) => {
            return Err(Tagged {
                field: path.to_owned(),
            })
        }
    }
    Ok(())
}

/// go-yaml v2 `floatv`: `strconv.FormatFloat(f, 'g', -1, 64)` plus YAML's infinities.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    let sci = format!("{f:e}"); // shortest digits, e.g. "1.5e6"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // Go switches to an exponent outside [-4, 6) for the shortest representation.
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// go-yaml v2's key order (`keyList.Less`): runes compared one by one, letters after other
/// characters, runs of digits compared as numbers.
fn go_yaml_key_cmp(a: &str, b: &str) -> Ordering {
    if a == b {
        Ordering::Equal
    } else if go_yaml_key_less(a, b) {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

fn go_yaml_key_less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            for j in (0..i).rev() {
                if !ar[j].is_ascii_digit() {
                    break;
                }
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an
                .wrapping_mul(10)
                .wrapping_add(i64::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn
                .wrapping_mul(10)
                .wrapping_add(i64::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_norway::from_str(s).unwrap()
    }

    #[test]
    fn go_yaml_key_order() {
        let mut keys = vec![
            "clusterDomain",
            "clusterDNS",
            "address",
            "apiVersion",
            "a10",
            "a9",
            "a-b",
            "ab",
        ];
        keys.sort_by(|a, b| go_yaml_key_cmp(a, b));
        assert_eq!(
            keys,
            [
                "a-b",
                "a9",
                "a10",
                "ab",
                "address",
                "apiVersion",
                "clusterDNS",
                "clusterDomain"
            ]
        );
    }

    #[test]
    fn nested_collections_layout() {
        let v = yaml("b: [[1, 2], {x: 1, z: [a]}]\na: {}\nc: []\nd: 1.5\ne: null\ny: 1\n");
        let out = to_string(&v).unwrap();
        // `y` is a YAML 1.1 boolean: go-yaml quotes it even as a key.
        assert_eq!(
            out,
            "a: {}\nb:\n- - 1\n  - 2\n- x: 1\n  z:\n  - a\nc: []\nd: 1.5\ne: null\n\"y\": 1\n"
        );
        assert_eq!(yaml(&out), v);
        // Tags have no go-yaml output to match: refused, with where they are.
        assert_eq!(
            to_string(&yaml("a:\n  b:\n  - 1\n  - !t x\n")),
            Err(Tagged {
                field: "a.b[1]".into()
            })
        );
    }

    #[test]
    fn floats_like_go() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(100000.0), "100000");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(f64::INFINITY), ".inf");
    }
}
