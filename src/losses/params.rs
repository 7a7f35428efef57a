//! Reading a loss's `params`, and JSON text, with errors that say what is
//! wrong and where: the one place every loss's configuration is parsed.
//!
//! serde's own messages name the type a field expected (`invalid type:
//! string "2.0", expected f64`) but not the field. `serde_path_to_error`
//! finds the field's path; the message is then said in the vocabulary of
//! SPEC.md and the JSON the user wrote: `gamma must be a number, not the
//! string "2.0"`.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Deserializes `params` into a loss's configuration type. An error names
/// the parameter's path (`gamma`, `class_weights[2]`), what it must be (a
/// number, an integer, a list, …, "or null" where null is accepted) and
/// what it was.
pub(crate) fn from_params<T: DeserializeOwned>(params: &Value) -> Result<T, String> {
    let first = match serde_path_to_error::deserialize::<_, T>(params) {
        Ok(config) => return Ok(config),
        Err(e) => e,
    };
    let path = first.path().clone();
    let message = first.inner().to_string();
    let Some((_, expected)) = message.strip_prefix("invalid type: ").and_then(|m| m.rsplit_once(", expected ")) else {
        // Unknown fields and variants, out-of-range values: serde says them well; add where.
        return Err(if path.iter().next().is_none() { message } else { format!("{path}: {message}") });
    };
    let found = lookup_mut(&mut params.clone(), &path).map_or_else(|| "missing".to_string(), |v| describe(v));
    let or_null = accepts_null::<T>(params, &path);
    Err(format!("{path} must be {}{}, not {found}", expected_words(expected), if or_null { " or null" } else { "" }))
}

/// Whether the field at `path` would take `null`: the same params with null
/// there deserialize, or fail elsewhere.
fn accepts_null<T: DeserializeOwned>(params: &Value, path: &serde_path_to_error::Path) -> bool {
    let mut with_null = params.clone();
    let Some(slot) = lookup_mut(&mut with_null, path) else { return false };
    if slot.is_null() {
        return false;
    }
    *slot = Value::Null;
    match serde_path_to_error::deserialize::<_, T>(&with_null) {
        Ok(_) => true,
        Err(e) => e.path().to_string() != path.to_string(),
    }
}

/// serde's name of a type, as SPEC.md says it.
fn expected_words(expected: &str) -> String {
    match expected {
        "f64" | "f32" => "a number".into(),
        "usize" | "u64" | "u32" | "u16" | "u8" => "a non-negative integer".into(),
        "i64" | "i32" | "i16" | "i8" | "isize" => "an integer".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "a list".into(),
        "a string" | "a borrowed string" => "a string".into(),
        e if e.starts_with("struct ") || e == "a map" => "an object".into(),
        // An enum's options: SPEC.md names them, serde says how it reads them.
        e if e == "string or map" || e.contains("variant") => "one of its names, a string".into(),
        other => other.into(),
    }
}

/// A JSON value in words: `the string "2.0"`, `a list`, `the number 3`, …
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// The value at `path` of `v`, if the path leads to one.
fn lookup_mut<'v>(mut v: &'v mut Value, path: &serde_path_to_error::Path) -> Option<&'v mut Value> {
    use serde_path_to_error::Segment;
    for segment in path.iter() {
        v = match segment {
            Segment::Seq { index } => v.get_mut(*index)?,
            Segment::Map { key } => v.get_mut(key.as_str())?,
            Segment::Enum { .. } | Segment::Unknown => return None,
        };
    }
    Some(v)
}

/// A `serde_json` error on `text` in words: for a syntax error, what stands
/// at its position when that is a token JSON does not have (`NaN`,
/// `Infinity`, `-Infinity`, which Python's `json` writes by default), then
/// serde_json's message with its line and column.
pub(crate) fn json_error(text: &str, e: &serde_json::Error) -> String {
    if e.is_syntax() && e.line() > 0 {
        let line = text.lines().nth(e.line() - 1).unwrap_or_default();
        // serde_json's column is 1-based and points at (or just past) the offending character.
        let from = line.char_indices().map(|(i, _)| i).nth(e.column().saturating_sub(1)).unwrap_or(line.len());
        let start = line[..from].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '+' || c == '.')).map_or(0, |i| i + 1);
        let token: String = line[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '+' || *c == '.').collect();
        if let Some(bad) = ["-Infinity", "+Infinity", "Infinity", "-NaN", "NaN", "-inf", "inf", "nan"].iter().find(|t| token.eq_ignore_ascii_case(t)) {
            return format!(
                "{bad} at line {} column {} is not JSON: JSON has no NaN or infinite numbers (write finite numbers; the inputs must be finite anyway)",
                e.line(),
                start + 1
            );
        }
    }
    format!("not valid JSON: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nan_token_is_named_with_its_position() {
        for (text, token, column) in [
            (r#"{"data": [1.0, NaN]}"#, "NaN", 16),
            (r#"{"data": [Infinity]}"#, "Infinity", 11),
            (r#"{"data": [0.5, -Infinity, 2]}"#, "-Infinity", 16),
        ] {
            let e = serde_json::from_str::<Value>(text).unwrap_err();
            let m = json_error(text, &e);
            assert!(m.starts_with(&format!("{token} at line 1 column {column} is not JSON")), "{text}: {m}");
        }
        let text = r#"{"data": [1.0,, 2]}"#;
        let m = json_error(text, &serde_json::from_str::<Value>(text).unwrap_err());
        assert!(m.starts_with("not valid JSON: expected value at line 1 column 15"), "{m}");
    }
}
