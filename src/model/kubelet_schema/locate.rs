//! Which line of the config file a field of the kubelet overrides is on.
//!
//! serde_norway's `Value` keeps no positions, but its deserializer stamps an error raised while
//! reading a key or value with that node's position. So the file is read once more with a
//! visitor that walks down the path and raises an error at the last step: the error's location
//! is the line. The YAML itself (flow or block style, quoting, comments) is libyaml's business.
//!
//! The overrides sit at the root of a `KubeletConfiguration` document, or under `kubelet:` of
//! any other document (our `JoinConfiguration`); a text that is just a fragment is searched at
//! its root last.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess};
use serde::Deserialize;
use serde_norway::{Deserializer, Value};

use super::Step;

/// What the walk raises when it gets there; any other error means "not found".
const FOUND: &str = "kaas-join: the field is here";

/// Documents looked at. serde_norway's document iterator keeps yielding the failed document
/// after a syntax error, so it needs a bound; a config file holds two documents.
const MAX_DOCUMENTS: usize = 16;

/// The 1-based line of `path` in `text`, if it can be found.
pub(super) fn line_of(text: &str, path: &[Step]) -> Option<usize> {
    let documents = || Deserializer::from_str(text).take(MAX_DOCUMENTS);
    let kinds: Vec<Option<String>> = documents()
        .map(|doc| {
            let value = Value::deserialize(doc).ok()?;
            value.get("kind")?.as_str().map(str::to_owned)
        })
        .collect();
    let under_kubelet: Vec<Step> = std::iter::once(Step::Field("kubelet".into()))
        .chain(path.iter().cloned())
        .collect();
    let in_document = |i: usize| -> &[Step] {
        if kinds
            .get(i)
            .is_some_and(|k| k.as_deref() == Some("KubeletConfiguration"))
        {
            path
        } else {
            &under_kubelet
        }
    };
    let found = documents()
        .enumerate()
        .find_map(|(i, doc)| seek(doc, in_document(i)));
    found.or_else(|| documents().find_map(|doc| seek(doc, path)))
}

fn seek(doc: Deserializer<'_>, path: &[Step]) -> Option<usize> {
    if path.is_empty() {
        return None;
    }
    match (Seek { path }).deserialize(doc) {
        Err(e) if e.to_string().contains(FOUND) => e.location().map(|l| l.line()),
        _ => None,
    }
}

/// Walks down `path`; raises [`FOUND`] at its end.
struct Seek<'p> {
    path: &'p [Step],
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Step::Field(want) | Step::Key(want), rest)) = self.path.split_first() else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        let at_end = rest.is_empty();
        while let Some(hit) = map.next_key_seed(KeyIs { want, at_end })? {
            if hit {
                map.next_value_seed(Seek { path: rest })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Step::Index(want), rest)) = self.path.split_first() else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        let mut index = 0;
        loop {
            let more = if index == *want && rest.is_empty() {
                seq.next_element_seed(Here)?.is_some()
            } else if index == *want {
                seq.next_element_seed(Seek { path: rest })?.is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(());
            }
            index += 1;
        }
    }

    // Scalars: the path goes no further.
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// A mapping key: whether it is `want`; raises [`FOUND`] when it is and the path ends there.
struct KeyIs<'w> {
    want: &'w str,
    at_end: bool,
}

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        match (key == self.want, self.at_end) {
            (true, true) => Err(E::custom(FOUND)),
            (hit, _) => Ok(hit),
        }
    }
    // A key that is no string is not the one sought (its value is skipped).
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// A list element that is the end of the path: raises [`FOUND`] at once, whatever it holds.
struct Here;

impl<'de> DeserializeSeed<'de> for Here {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for Here {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
}
