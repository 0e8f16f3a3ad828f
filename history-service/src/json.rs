//! `google.protobuf.Struct`/`Value` ⇄ JSON, with the checks PostgreSQL's
//! JSONB needs (finite numbers, no NUL characters) so bad input is an
//! `INVALID_ARGUMENT`, not a failed insert.

use std::collections::BTreeMap;

use prost_types::{ListValue, Struct, Value, value::Kind};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
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

/// A `google.protobuf.Value` decoded straight from JSON text, without a
/// `serde_json::Value` in between (reading pages, this halves the work per
/// `sources` column).
#[derive(Debug, Clone, PartialEq)]
pub struct ProtoValue(pub Value);

/// A `google.protobuf.Struct` decoded straight from a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtoStruct(pub Struct);

struct ValueVisitor;

fn number(n: f64) -> Value {
    Value { kind: Some(Kind::NumberValue(n)) }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value { kind: Some(Kind::BoolValue(v)) })
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(number(v as f64))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(number(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(number(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value { kind: Some(Kind::StringValue(v.to_owned())) })
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value { kind: Some(Kind::StringValue(v)) })
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value { kind: Some(Kind::NullValue(0)) })
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value { kind: Some(Kind::NullValue(0)) })
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(ProtoValue(value)) = seq.next_element()? {
            values.push(value);
        }
        Ok(Value { kind: Some(Kind::ListValue(ListValue { values })) })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        StructVisitor.visit_map(map).map(|object| Value { kind: Some(Kind::StructValue(object)) })
    }
}

struct StructVisitor;

impl<'de> Visitor<'de> for StructVisitor {
    type Value = Struct;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Struct, A::Error> {
        let mut fields = BTreeMap::new();
        while let Some((key, ProtoValue(value))) = map.next_entry::<String, ProtoValue>()? {
            fields.insert(key, value);
        }
        Ok(Struct { fields })
    }
}

impl<'de> Deserialize<'de> for ProtoValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor).map(ProtoValue)
    }
}

impl<'de> Deserialize<'de> for ProtoStruct {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StructVisitor).map(ProtoStruct)
    }
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
    fn json_text_decodes_straight_into_protobuf_values() {
        let text = r#"{"a": [1.5, "x", null, true, {"b": []}], "c": {}, "n": -3, "u": 18446744073709551615}"#;
        let direct: ProtoStruct = serde_json::from_str(text).unwrap();
        let via_json = match json_to_value(serde_json::from_str(text).unwrap()).kind {
            Some(Kind::StructValue(object)) => object,
            other => panic!("{other:?}"),
        };
        assert_eq!(direct.0, via_json);
        let value: ProtoValue = serde_json::from_str("[null, 2]").unwrap();
        assert_eq!(value.0, json_to_value(json!([null, 2])));
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
