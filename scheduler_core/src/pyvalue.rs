//! Python's `str()` of a JSON-decoded value: what Nova's ComputeCapabilitiesFilter hands to
//! `extra_specs_ops.match` after walking a host's `cpu_info` (or any attribute) key by key.

use serde_json::Value;

/// `str(v)` as Python prints it; `None` for JSON null (Nova's lookup fails on None).
pub(crate) fn py_str(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => {
            let mut out = String::new();
            py_repr(other, &mut out);
            Some(out)
        }
    }
}

fn py_repr(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                out.push_str(&py_float_repr(n.as_f64().unwrap_or(f64::NAN)));
            }
        }
        Value::String(s) => py_str_repr(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_str_repr(k, out);
                out.push_str(": ");
                py_repr(item, out);
            }
            out.push('}');
        }
    }
}

/// Python's `repr(float)`: the shortest round-trip digits, scientific below 1e-4 and from 1e16.
pub(crate) fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let sci = format!("{x:e}"); // shortest digits: "1.5e16", "-2e-5"
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let s = format!("{x:?}"); // shortest round-trip, always with a '.'
        if s.contains('e') {
            // Rust's Debug switches to exponent form at other bounds than Python's
            let digits = format!("{x}");
            if digits.contains('.') {
                digits
            } else {
                format!("{digits}.0")
            }
        } else {
            s
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    }
}

/// Python's `repr(str)`: single quotes unless the text has a single quote and no double one.
fn py_str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prints_like_python_str() {
        assert_eq!(py_str(&json!("Intel")).unwrap(), "Intel");
        assert_eq!(py_str(&json!(46)).unwrap(), "46");
        assert_eq!(py_str(&json!(16.0)).unwrap(), "16.0");
        assert_eq!(py_str(&json!(1.5e16)).unwrap(), "1.5e+16");
        assert_eq!(py_str(&json!(0.00001)).unwrap(), "1e-05");
        assert_eq!(py_str(&json!(true)).unwrap(), "True");
        assert_eq!(
            py_str(&json!(["avx2", "it's"])).unwrap(),
            r#"['avx2', "it's"]"#
        );
        assert_eq!(
            py_str(&json!({"bits": 46, "mode": null, "on": false})).unwrap(),
            "{'bits': 46, 'mode': None, 'on': False}"
        );
        assert_eq!(py_str(&Value::Null), None);
    }
}
