//! A small protobuf reader for the two CRI answers read here: a message's fields as
//! (number, value), varints and length-delimited values only kept (fixed-size ones skipped),
//! every length checked against what is left, so a bad answer is an error, never a panic.

use std::collections::BTreeMap;

/// A field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A fixed32 or fixed64 value: not needed, skipped.
    Fixed,
}

/// The fields of `message`, in order.
pub(super) fn fields(mut message: &[u8]) -> Result<Vec<(u64, Value<'_>)>, String> {
    let mut out = Vec::new();
    while !message.is_empty() {
        let key = varint(&mut message)?;
        let (number, wire) = (key >> 3, key & 7);
        let value = match wire {
            0 => Value::Varint(varint(&mut message)?),
            2 => {
                let len = usize::try_from(varint(&mut message)?).map_err(|_| "length too large")?;
                let (bytes, rest) = message
                    .split_at_checked(len)
                    .ok_or("a length-delimited field longer than its message")?;
                message = rest;
                Value::Bytes(bytes)
            }
            1 | 5 => {
                let size = if wire == 1 { 8 } else { 4 };
                message = message.get(size..).ok_or("a fixed-size field cut short")?;
                Value::Fixed
            }
            _ => {
                return Err(format!(
                    "wire type {wire} (field {number}) is not read here"
                ))
            }
        };
        out.push((number, value));
    }
    Ok(out)
}

/// A `map<string, string>` field `number` of `message` (entries: key 1, value 2).
pub(super) fn string_map(message: &[u8], number: u64) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for (n, value) in fields(message)? {
        let (true, Value::Bytes(entry)) = (n == number, value) else {
            continue;
        };
        let (mut key, mut val) = (String::new(), String::new());
        for (n, v) in fields(entry)? {
            match (n, v) {
                (1, Value::Bytes(b)) => key = utf8(b)?,
                (2, Value::Bytes(b)) => val = utf8(b)?,
                _ => {}
            }
        }
        map.insert(key, val);
    }
    Ok(map)
}

/// The last occurrence of field `number` (protobuf: the last one wins).
pub(super) fn last<'a>(fields: &[(u64, Value<'a>)], number: u64) -> Option<Value<'a>> {
    fields
        .iter()
        .rev()
        .find(|(n, _)| *n == number)
        .map(|(_, v)| *v)
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "a string field that is not UTF-8".to_owned())
}

fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first().ok_or("a varint cut short")?;
        *buf = rest;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a varint longer than 10 bytes".to_owned())
}
