//! `google.protobuf.Struct`/`Value` ⇄ JSON, with the checks PostgreSQL's
//! JSONB needs (finite numbers, no NUL characters) so bad input is an
//! `INVALID_ARGUMENT`, not a failed insert.

use prost_types::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Number, Value as Json};

/// Why a protobuf value cannot be stored as JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// NaN or an infinity: JSON has no such numbers.
    #[error("{0} is not a finite number (JSON has no NaN or Infinity)")]
    NotFinite(String),
    /// PostgreSQL text and JSONB cannot hold U+0000.
    #[error("{0} contains a NUL character (U+0000), which PostgreSQL cannot store")]
    Nul(String),
    /// A `Value` with no kind set.
    #[error("{0} is a google.protobuf.Value with no kind set")]
    NoKind(String),
}

/// Converts a `Struct` into a JSON object; `path` names it in errors.
pub fn struct_to_json(value: &Struct, path: &str) -> Result<Map<String, Json>, JsonError> {
    let mut map = Map::with_capacity(value.fields.len());
    for (key, field) in &value.fields {
        let field_path = format!("{path}.{key}");
        if key.contains('\0') {
            return Err(JsonError::Nul(field_path));
        }
        map.insert(key.clone(), value_to_json(field, &field_path)?);
    }
    Ok(map)
}

/// Converts a `Value` into JSON; `path` names it in errors.
pub fn value_to_json(value: &Value, path: &str) -> Result<Json, JsonError> {
    Ok(match &value.kind {
        None => return Err(JsonError::NoKind(path.to_owned())),
        Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) => {
            Json::Number(Number::from_f64(*n).ok_or_else(|| JsonError::NotFinite(path.to_owned()))?)
        }
        Some(Kind::StringValue(s)) => {
            if s.contains('\0') {
                return Err(JsonError::Nul(path.to_owned()));
            }
            Json::String(s.clone())
        }
        Some(Kind::ListValue(list)) => Json::Array(
            list.values
                .iter()
                .enumerate()
                .map(|(index, item)| value_to_json(item, &format!("{path}[{index}]")))
                .collect::<Result<_, _>>()?,
        ),
        Some(Kind::StructValue(object)) => Json::Object(struct_to_json(object, path)?),
    })
}

/// Converts a JSON object into a `Struct`.
pub fn json_to_struct(map: Map<String, Json>) -> Struct {
    Struct { fields: map.into_iter().map(|(key, value)| (key, json_to_value(value))).collect() }
}

/// Converts JSON into a `Value`.
pub fn json_to_value(json: Json) -> Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Json::String(s) => Kind::StringValue(s),
        Json::Array(items) => Kind::ListValue(ListValue { values: items.into_iter().map(json_to_value).collect() }),
        Json::Object(map) => Kind::StructValue(json_to_struct(map)),
    };
    Value { kind: Some(kind) }
}

/// Size of `json` serialized compactly, in bytes.
pub fn encoded_len(json: &Json) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing into a counter cannot fail.
    let _ = serde_json::to_writer(&mut counter, json);
    counter.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn string(s: &str) -> Value {
        Value { kind: Some(Kind::StringValue(s.to_owned())) }
    }

    #[test]
    fn json_round_trips_through_protobuf_values() {
        let original = json!({"a": [1.5, "x", null, true, {"b": []}], "c": {}});
        let value = json_to_value(original.clone());
        assert_eq!(value_to_json(&value, "sources").unwrap(), original);
    }

    #[test]
    fn non_finite_numbers_are_rejected_with_their_path() {
        let value = Value {
            kind: Some(Kind::ListValue(ListValue {
                values: vec![string("ok"), Value { kind: Some(Kind::NumberValue(f64::NAN)) }],
            })),
        };
        assert_eq!(value_to_json(&value, "sources").unwrap_err(), JsonError::NotFinite("sources[1]".into()));
    }

    #[test]
    fn nul_characters_are_rejected_in_strings_and_keys() {
        assert_eq!(value_to_json(&string("a\0b"), "s").unwrap_err(), JsonError::Nul("s".into()));
        let object = Struct { fields: [("k\0".to_owned(), string("v"))].into_iter().collect() };
        assert_eq!(struct_to_json(&object, "metadata").unwrap_err(), JsonError::Nul("metadata.k\0".into()));
    }

    #[test]
    fn a_value_without_kind_is_rejected() {
        assert_eq!(value_to_json(&Value { kind: None }, "sources").unwrap_err(), JsonError::NoKind("sources".into()));
    }

    #[test]
    fn encoded_len_is_the_compact_serialization_length() {
        let value = json!({"a": [1, "xy"]});
        assert_eq!(encoded_len(&value), serde_json::to_vec(&value).unwrap().len());
    }
}
