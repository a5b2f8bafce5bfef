//! Prometheus' text exposition format, version 0.0.4: a `# HELP` and a `# TYPE` line per metric
//! family, then its samples, `name{label="value",...} value`. Label values and help texts are
//! escaped as the format says (`\\`, `\"` in label values, `\n`); values are integers where
//! they are whole, else the shortest decimal that reads back the same, `NaN`, `+Inf`, `-Inf`.
//! No timestamps: the scrape's time is the sample's.

use std::fmt::Write as _;

/// The `Content-Type` of a scrape's answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A family's `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// The text of one scrape, family by family.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a family: its help and type lines. Its samples follow with [`Exposition::sample`].
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(is_metric_name(name), "{name}");
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// A family of one unlabelled sample, `value` (none when `None`: nothing to say yet).
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: Option<f64>) {
        self.family(name, kind, help);
        if let Some(value) = value {
            self.sample(name, &[], value);
        }
    }

    /// One sample of the family just started.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                debug_assert!(is_label_name(label), "{label}");
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape_label_value(value));
            }
            self.text.push('}');
        }
        self.text.push(' ');
        self.text.push_str(&format_value(value));
        self.text.push('\n');
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// `\` and newlines escaped (help text).
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// `\`, `"` and newlines escaped (label values).
fn escape_label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value as the format spells it (Go's `ParseFloat` reads it back).
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if value.fract() == 0.0 && value.abs() < 9.0e15 {
        // Whole numbers (counters, timestamps in seconds) without a trailing ".0".
        format!("{}", value as i64)
    } else {
        // Rust's shortest round-trip representation, never in exponent form.
        format!("{value}")
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_samples() {
        let mut e = Exposition::default();
        e.family("x_total", Kind::Counter, "Things\\done\nso far.");
        e.sample("x_total", &[("call", "node_get"), ("code", "200")], 3.0);
        e.sample(
            "x_total",
            &[("call", "a\"b\\c\nd"), ("code", "<error>")],
            1.0,
        );
        e.family("y_seconds", Kind::Gauge, "A time.");
        e.sample("y_seconds", &[], 1_700_000_000.25);
        assert_eq!(
            e.finish(),
            "# HELP x_total Things\\\\done\\nso far.\n\
             # TYPE x_total counter\n\
             x_total{call=\"node_get\",code=\"200\"} 3\n\
             x_total{call=\"a\\\"b\\\\c\\nd\",code=\"<error>\"} 1\n\
             # HELP y_seconds A time.\n\
             # TYPE y_seconds gauge\n\
             y_seconds 1700000000.25\n"
        );
    }

    #[test]
    fn values() {
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(-0.0), "0");
        assert_eq!(format_value(42.0), "42");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(1e-7), "0.0000001");
        assert_eq!(format_value(1e20), "100000000000000000000");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        for v in [0.1, 1.0 / 3.0, 1_751_000_000.123_456, 12.5e-3] {
            assert_eq!(format_value(v).parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn names() {
        assert!(is_metric_name("kaas_join_build_info"));
        assert!(is_metric_name("a:b_c1"));
        assert!(!is_metric_name("1a"));
        assert!(!is_metric_name("a-b"));
        assert!(!is_metric_name(""));
        assert!(is_label_name("code"));
        assert!(!is_label_name("__name__"));
        assert!(!is_label_name("a-b"));
    }
}
