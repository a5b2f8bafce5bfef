//! Walks the overrides against the [schema](super::schema) and says what is wrong where.
//!
//! Messages name the field and what was expected; of the value they show a number or a boolean
//! at most, never a string (a token pasted into the wrong field stays out of the output).
//!
//! A `null` for a struct field or a map entry is accepted everywhere: in the merge with the
//! cluster's configuration it removes that field (see `render::kubelet_config`).

use std::net::IpAddr;

use serde_norway::{Mapping, Value};

use super::scalars::{parse_go_duration, parse_percent, parse_quantity, show_duration, Sign};
use super::schema::{Duration, Field, Int, Keys, Type};
use super::suggest::nearest;
use super::Step;

/// At most this many problems are listed; the rest are counted.
pub(super) const MAX_PROBLEMS: usize = 20;

/// One problem, before its line is looked up.
#[derive(Debug)]
pub(super) struct Finding {
    pub path: Vec<Step>,
    pub message: String,
}

/// The walk's state: where it is and what it found.
#[derive(Debug, Default)]
pub(super) struct Checker {
    path: Vec<Step>,
    pub findings: Vec<Finding>,
    /// Problems beyond [`MAX_PROBLEMS`].
    pub more: usize,
}

impl Checker {
    fn report(&mut self, message: String) {
        self.report_with(|| message);
    }

    /// [`Self::report`] for a message that costs something to write (a suggestion): past the
    /// limit it is only counted.
    fn report_with(&mut self, message: impl FnOnce() -> String) {
        if self.findings.len() < MAX_PROBLEMS {
            self.findings.push(Finding {
                path: self.path.clone(),
                message: message(),
            });
        } else {
            self.more += 1;
        }
    }

    fn at(&mut self, step: Step, walk: impl FnOnce(&mut Self)) {
        self.path.push(step);
        walk(self);
        self.path.pop();
    }

    /// `value` is of type `ty`.
    pub(super) fn check(&mut self, value: &Value, ty: &Type) {
        if let Value::Tagged(_) = value {
            return self.report("carries a YAML tag (`!...`), which kubelet does not read".into());
        }
        match ty {
            Type::Bool if value.is_bool() => {}
            Type::Bool => self.wrong(value, "a boolean (true or false)"),
            Type::FalseOnly(why) => match value {
                Value::Bool(false) => {}
                Value::Bool(true) => self.report(format!("is true: {why}")),
                other => self.wrong(other, "a boolean (false)"),
            },
            Type::Int(int) => self.int(value, int),
            Type::Float { above, max } => match value {
                Value::Number(n) if n.as_f64().is_some_and(|f| f > *above && f <= *max) => {}
                Value::Number(n) => self.report(format!(
                    "is {n}, expected a number greater than {above} and at most {max}"
                )),
                other => self.wrong(other, "a number"),
            },
            Type::Str if value.is_string() => {}
            Type::Str => self.wrong(value, "a string"),
            Type::Enum { names, unset_ok } => self.enumeration(value, names, *unset_ok),
            Type::Ip => match value {
                Value::String(s) if s.parse::<IpAddr>().is_ok() => {}
                Value::String(_) => self.report("is not an IP address".into()),
                other => self.wrong(other, "an IP address string"),
            },
            Type::Duration(rule) => self.duration(value, rule),
            Type::DurationOrNanos => match value {
                Value::Number(n) if n.as_u64().is_some_and(|ns| ns <= i64::MAX as u64) => {}
                Value::Number(n) => self.report(format!(
                    "is {n}, expected a duration string like `5s` or a whole number of nanoseconds (0 or more)"
                )),
                other => self.duration(other, &ANY_DURATION),
            },
            Type::Quantity { number_ok } => self.quantity(value, *number_ok),
            Type::QuantityOrPercent => match value {
                Value::String(s) if s.ends_with('%') => self.result(parse_percent(s, false)),
                other => self.quantity(other, false),
            },
            Type::Percent => match value {
                Value::String(s) => self.result(parse_percent(s, true)),
                other => self.wrong(other, "a percentage string like `50%`"),
            },
            Type::List(element) => self.list(value, element),
            Type::Map { keys, values } => self.map(value, keys, values),
            Type::Struct(fields) => self.structure(value, fields),
            Type::Forbidden(why) => self.report(format!("must not be set: {why}")),
        }
    }

    fn result(&mut self, parsed: Result<(), &'static str>) {
        if let Err(why) = parsed {
            self.report(why.into());
        }
    }

    /// "is a string, expected an integer (int32)".
    fn wrong(&mut self, value: &Value, expected: &str) {
        let hint = match value {
            Value::Number(_) | Value::Bool(_) if expected.contains("string") => {
                " (quote it, kubelet refuses a bare number or boolean here)"
            }
            _ => "",
        };
        self.report(format!("is {}, expected {expected}{hint}", describe(value)));
    }

    fn int(&mut self, value: &Value, int: &Int) {
        let Value::Number(n) = value else {
            return self.wrong(value, &format!("an integer ({})", int.go_type));
        };
        match n.as_i64() {
            Some(i) if i >= int.min && i <= int.max && i % int.multiple_of == 0 => {}
            Some(_) => self.report(format!("is {n}, expected {}", range(int))),
            None if n.is_u64() => self.report(format!("is {n}, expected {}", range(int))),
            None => self.report(format!(
                "is {n}, expected an integer ({}): a whole number",
                int.go_type
            )),
        }
    }

    fn enumeration(&mut self, value: &Value, names: &[&str], unset_ok: bool) {
        let Value::String(s) = value else {
            let expected = if names.len() <= 8 {
                format!("one of {}", quoted_list(names))
            } else {
                "one of the names kubelet accepts".to_owned()
            };
            return self.wrong(value, &expected);
        };
        if names.contains(&s.as_str()) || (unset_ok && s.is_empty()) {
            return;
        }
        self.report_with(|| {
            let hint = suggestion(nearest(s, names.iter().copied()));
            if names.len() <= 8 {
                format!("is not one of {}{hint}", quoted_list(names))
            } else {
                let count = names.len();
                format!("is not one of the {count} names kubelet accepts{hint}")
            }
        });
    }

    fn duration(&mut self, value: &Value, rule: &Duration) {
        let Value::String(s) = value else {
            return self.wrong(value, "a duration string like `10s` or `1m30s`");
        };
        let ns = match parse_go_duration(s) {
            Ok(ns) => ns,
            Err(why) => {
                return self.report(format!(
                    "is not a Go duration: it {why}; write it like `10s`, `1m30s` or `2h`"
                ))
            }
        };
        if ns < 0 {
            return self.report("is negative, expected a duration of 0 or more".into());
        }
        if (ns == 0 && rule.zero_ok) || (ns >= rule.min && ns <= rule.max) {
            return;
        }
        let span = if rule.max == ANY_DURATION.max {
            format!("at least {}", show_duration(rule.min))
        } else {
            format!(
                "from {} to {}",
                show_duration(rule.min),
                show_duration(rule.max)
            )
        };
        let zero = if rule.zero_ok {
            "0 (kubelet's default) or "
        } else {
            ""
        };
        self.report(format!("is {}, expected {zero}{span}", show_duration(ns)));
    }

    fn quantity(&mut self, value: &Value, number_ok: bool) {
        match value {
            Value::String(s) => match parse_quantity(s) {
                Ok(Sign::NotNegative) => {}
                Ok(Sign::Negative) => {
                    self.report("is negative, expected a quantity of 0 or more".into())
                }
                Err(why) => self.report(why.into()),
            },
            Value::Number(n) if number_ok && n.as_f64().is_some_and(|f| f >= 0.0) => {}
            Value::Number(n) if number_ok => {
                self.report(format!("is {n}, expected a quantity of 0 or more"))
            }
            other => self.wrong(other, "a quantity string like `100m`, `512Mi` or `10%`"),
        }
    }

    fn list(&mut self, value: &Value, element: &Type) {
        let Value::Sequence(items) = value else {
            return self.wrong(value, "a list");
        };
        for (i, item) in items.iter().enumerate() {
            self.at(Step::Index(i), |c| {
                if item.is_null() {
                    c.report("is null: give a value or remove the entry".into());
                } else {
                    c.check(item, element);
                }
            });
        }
    }

    fn map(&mut self, value: &Value, keys: &Keys, values: &Type) {
        let Value::Mapping(entries) = value else {
            return self.wrong(value, "a mapping");
        };
        for (key, item) in entries {
            let Some(key) = key.as_str() else {
                self.report("has a key that is not a string".into());
                continue;
            };
            self.at(Step::Key(key.to_owned()), |c| match keys {
                Keys::OneOf(names) if !names.contains(&key) => c.report_with(|| {
                    format!(
                        "is not a key kubelet accepts here: expected one of {}{}",
                        quoted_list(names),
                        suggestion(nearest(key, names.iter().copied()))
                    )
                }),
                Keys::Matching(accepts, what) if !accepts(key) => c.report(format!(
                    "is not a key kubelet accepts here: expected {what}"
                )),
                _ if item.is_null() => {}
                _ => c.check(item, values),
            });
        }
    }

    fn structure(&mut self, value: &Value, fields: &[Field]) {
        let Value::Mapping(entries) = value else {
            return self.wrong(value, "a mapping of KubeletConfiguration fields");
        };
        for (key, item) in entries {
            let Some(key) = key.as_str() else {
                self.report("has a key that is not a string".into());
                continue;
            };
            let Some(field) = fields.iter().find(|f| f.name == key) else {
                self.at(Step::Field(key.to_owned()), |c| {
                    c.report_with(|| unknown(key, fields))
                });
                continue;
            };
            if !item.is_null() {
                self.at(Step::Field(key.to_owned()), |c| c.check(item, &field.ty));
            }
        }
        for field in fields.iter().filter(|f| f.required) {
            if !is_given(entries, field.name) {
                self.report(format!("lacks `{}`, which kubelet requires", field.name));
            }
        }
    }
}

const ANY_DURATION: Duration = Duration {
    min: 0,
    max: i64::MAX as i128,
    zero_ok: true,
};

fn is_given(entries: &Mapping, name: &str) -> bool {
    entries.get(name).is_some_and(|v| !v.is_null())
}

/// The message for a field that is not in `fields`: the nearest name, or the names there are.
fn unknown(key: &str, fields: &[Field]) -> String {
    let names = fields.iter().map(|f| f.name);
    let base = "is not a field kubelet v1.33 knows (KubeletConfiguration v1beta1)";
    match nearest(key, names.clone()) {
        Some(name) => format!("{base}; did you mean `{name}`?"),
        None if fields.len() <= 8 => {
            let all: Vec<&str> = names.collect();
            format!("{base}; the fields here are {}", quoted_list(&all))
        }
        None => base.to_owned(),
    }
}

fn suggestion(name: Option<&str>) -> String {
    name.map(|n| format!("; did you mean `{n}`?"))
        .unwrap_or_default()
}

fn quoted_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

/// What a value is, for a message: numbers and booleans are shown, strings are not.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".into(),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

/// "an integer from 0 to 65535", "a multiple of 65536 from 65536 to 4294901760".
fn range(int: &Int) -> String {
    let what = if int.multiple_of > 1 {
        format!("a multiple of {}", int.multiple_of)
    } else {
        format!("an integer ({})", int.go_type)
    };
    format!("{what} from {} to {}", int.min, int.max)
}
