//! Field types both config file formats share: [`SecretText`] for a token (never echoed in an
//! error), [`DurationText`] for timeouts, [`ExtraArg`] for `kubeletExtraArgs` entries. Used by
//! `own_format` and `kubeadm_format`.

use std::fmt;

use serde::Deserialize;
use serde_norway::Value;
use zeroize::Zeroizing;

/// A string that holds a secret: deserializes only from a YAML string, and its errors never
/// echo the value (a token of digits only, e.g. `123456.1234567890123456`, reads as a number).
pub(super) struct SecretText(pub(super) Zeroizing<String>);

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const NOT_A_STRING: &str = "the token must be a quoted string (YAML read it as another \
                                    type): write token: \"<id>.<secret>\"";
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SecretText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a quoted string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretText, E> {
                Ok(SecretText(Zeroizing::new(v.to_owned())))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<SecretText, A::Error> {
                Err(serde::de::Error::custom(NOT_A_STRING))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<SecretText, A::Error> {
                Err(serde::de::Error::custom(NOT_A_STRING))
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration as written in a file: `5m`, `"90s"` or a plain number of seconds.
pub(super) struct DurationText(pub(super) String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(DurationText(s)),
            Value::Number(n) => Ok(DurationText(n.to_string())),
            _ => Err(serde::de::Error::custom(
                "a duration must be a string such as 5m or 90s, or a number of seconds",
            )),
        }
    }
}

/// `kubeletExtraArgs` entry (kubeadm v1beta4's `Arg`, also our format).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExtraArg {
    pub(super) name: String,
    pub(super) value: String,
}
