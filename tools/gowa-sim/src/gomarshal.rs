//! JSON bytes the way Go's `encoding/json` writes them.
//!
//! GOWA signs the exact bytes of `json.Marshal(map[string]any)`: compact, object keys sorted
//! (byte order) at every level, and `<`, `>`, `&`, U+2028, U+2029 escaped as `\u003c`,
//! `\u003e`, `\u0026`, `\u2028`, `\u2029`. Other escapes match Go 1.22+: `\"`, `\\`, `\b`,
//! `\f`, `\n`, `\r`, `\t`, and `\u00xx` (lowercase hex) for the remaining control bytes.

use serde::Serialize;
use serde_json::Value;

/// Marshals `value` like Go's `json.Marshal` of the equivalent `map[string]any`.
///
/// Integers are written exactly (Go maps built by GOWA hold typed integers); other numbers
/// follow Go's `float64` format: shortest round-trip digits, exponent form (`1e+21`,
/// `1e-7`) below `1e-6` and from `1e21` up.
pub fn go_marshal(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value);
    out
}

/// Serialises a struct with serde (keeping its field order, like a Go struct) and then applies
/// Go's HTML escaping. Used for API responses, which GOWA writes from structs.
pub(crate) fn go_json<T: Serialize>(value: &T) -> Vec<u8> {
    let plain = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    escape_html(&plain)
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => write_number(out, number),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Sorted here, not by the map: serde_json's `preserve_order` feature may be on.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, key);
                out.push(b':');
                write_value(out, &map[key.as_str()]);
            }
            out.push(b'}');
        }
    }
}

fn write_number(out: &mut Vec<u8>, number: &serde_json::Number) {
    if let Some(int) = number.as_i64() {
        out.extend_from_slice(int.to_string().as_bytes());
    } else if let Some(int) = number.as_u64() {
        out.extend_from_slice(int.to_string().as_bytes());
    } else if let Some(float) = number.as_f64() {
        out.extend_from_slice(go_float(float).as_bytes());
    } else {
        out.extend_from_slice(number.to_string().as_bytes());
    }
}

/// Go's `encoding/json` format of a finite `float64`.
fn go_float(value: f64) -> String {
    let abs = value.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust writes "1.5e-7" / "1e21"; Go writes "1.5e-7" / "1e+21" (the two-digit
        // exponent Go pads to never applies in this range).
        let formatted = format!("{value:e}");
        match formatted.split_once('e') {
            Some((mantissa, exponent)) if !exponent.starts_with('-') => {
                format!("{mantissa}e+{exponent}")
            }
            _ => formatted,
        }
    } else {
        // Shortest round-trip digits, never an exponent: the same as Go's 'f', -1.
        format!("{value}")
    }
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut buf = [0u8; 4];
    for ch in text.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                let byte = ch as u8;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            }
            '\u{2028}' => out.extend_from_slice(b"\\u2028"),
            '\u{2029}' => out.extend_from_slice(b"\\u2029"),
            other => out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes()),
        }
    }
    out.push(b'"');
}

/// Applies Go's HTML escaping to JSON text written by serde_json, whose other escapes already
/// match Go's. The characters involved can only occur inside strings, so a byte scan is safe.
fn escape_html(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 16);
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            0xE2 if json.get(i + 1) == Some(&0x80) && matches!(json.get(i + 2), Some(0xA8)) => {
                out.extend_from_slice(b"\\u2028");
                i += 2;
            }
            0xE2 if json.get(i + 1) == Some(&0x80) && matches!(json.get(i + 2), Some(0xA9)) => {
                out.extend_from_slice(b"\\u2029");
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn marshal(value: Value) -> String {
        String::from_utf8(go_marshal(&value)).unwrap()
    }

    #[test]
    fn sorts_keys_at_every_level_and_writes_compact() {
        let value = json!({"b": {"z": 1, "a": [true, null]}, "a": "x"});
        assert_eq!(marshal(value), r#"{"a":"x","b":{"a":[true,null],"z":1}}"#);
    }

    #[test]
    fn escapes_html_and_line_separators_like_go() {
        let value = json!({"t": "<a href=\"x\">&</a>\u{2028}\u{2029}"});
        assert_eq!(
            marshal(value),
            r#"{"t":"\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e\u2028\u2029"}"#
        );
    }

    #[test]
    fn escapes_control_characters_like_go_1_22() {
        let value = json!("\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}é😀");
        assert_eq!(marshal(value), "\"\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}é😀\"");
    }

    #[test]
    fn formats_floats_like_go_float64() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(100.0), "100");
        assert_eq!(go_float(0.000001), "0.000001");
        assert_eq!(go_float(0.0000001), "1e-7");
        assert_eq!(go_float(1.5e-10), "1.5e-10");
        assert_eq!(go_float(1e20), "100000000000000000000");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(-2.5e22), "-2.5e+22");
        assert_eq!(go_float(0.0), "0");
    }

    #[test]
    fn writes_integers_exactly() {
        assert_eq!(
            marshal(json!([-7, 1787393822, u64::MAX])),
            "[-7,1787393822,18446744073709551615]"
        );
    }

    #[test]
    fn html_escaping_of_serde_output_matches_go_marshal() {
        let value = json!({"message": "a<b & c>d\u{2028}"});
        assert_eq!(go_json(&value), go_marshal(&value));
    }
}
