//! Request validation: every limit is a named constant here, and every
//! violation names its field so clients can point at it.

use chat_proto::history::v1::{NewMessage, Order, Role};
use prost_types::Struct;
use serde_json::{Map, Value as Json};
use service_kit::status::FieldViolation;
use uuid::Uuid;

use crate::{
    error::Error,
    json::{encoded_len, struct_to_json, value_to_json},
    page_token::MessageOrder,
};

/// Longest conversation title, in characters.
pub const MAX_TITLE_CHARS: usize = 512;
/// Largest message `content`, in bytes of UTF-8.
pub const MAX_CONTENT_BYTES: usize = 256 * 1024;
/// Largest message `sources`, in bytes of compact JSON.
pub const MAX_SOURCES_BYTES: usize = 256 * 1024;
/// Largest conversation `metadata`, in bytes of compact JSON.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Most messages in one `AppendMessages`.
pub const MAX_MESSAGES_PER_APPEND: usize = 100;
/// Page size when the request says 0.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page; larger requests are coerced down to it.
pub const MAX_PAGE_SIZE: usize = 1000;

/// A required UUID field.
pub fn required_id(field: &str, value: &str) -> Result<Uuid, FieldViolation> {
    if value.is_empty() {
        return Err(FieldViolation::new(field, "required: a UUID such as 0190b6e4-8a3c-7d1e-9f00-1234567890ab"));
    }
    Uuid::try_parse(value).map_err(|_| FieldViolation::new(field, format!("{} is not a UUID", shown(value))))
}

/// An optional client-chosen UUID (empty means "assign one").
pub fn optional_id(field: &str, value: &str) -> Result<Option<Uuid>, FieldViolation> {
    if value.is_empty() {
        return Ok(None);
    }
    let id = required_id(field, value)?;
    if id.is_nil() {
        return Err(FieldViolation::new(field, "the nil UUID cannot be used as an id"));
    }
    Ok(Some(id))
}

/// Shows a client value in a message without echoing megabytes of it.
fn shown(value: &str) -> String {
    let mut text: String = value.chars().take(64).collect();
    if text.len() < value.len() {
        text.push('…');
    }
    format!("{text:?}")
}

/// A conversation title.
pub fn title(field: &str, value: &str) -> Result<(), FieldViolation> {
    let chars = value.chars().count();
    if chars > MAX_TITLE_CHARS {
        return Err(FieldViolation::new(field, format!("{chars} characters; at most {MAX_TITLE_CHARS}")));
    }
    if value.contains('\0') {
        return Err(FieldViolation::new(field, "contains a NUL character (U+0000)"));
    }
    Ok(())
}

/// Conversation metadata: a JSON object of at most [`MAX_METADATA_BYTES`].
pub fn metadata(field: &str, value: Option<&Struct>) -> Result<Map<String, Json>, FieldViolation> {
    let Some(value) = value else { return Ok(Map::new()) };
    let map = struct_to_json(value, field).map_err(|error| FieldViolation::new(field, error.to_string()))?;
    let size = encoded_len(&Json::Object(map.clone()));
    if size > MAX_METADATA_BYTES {
        return Err(FieldViolation::new(field, format!("{size} bytes of JSON; at most {MAX_METADATA_BYTES}")));
    }
    Ok(map)
}

/// AIP-158 page size: 0 → default, above the maximum → the maximum, negative → error.
pub fn page_size(field: &str, value: i32) -> Result<usize, FieldViolation> {
    match value {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => {
            Err(FieldViolation::new(field, format!("{n} is negative; use 0 for the default ({DEFAULT_PAGE_SIZE})")))
        }
        n => Ok((n as usize).min(MAX_PAGE_SIZE)),
    }
}

/// Total message limit of a call: 0 → none.
pub fn limit(field: &str, value: i64) -> Result<Option<u64>, FieldViolation> {
    match value {
        0 => Ok(None),
        n if n < 0 => Err(FieldViolation::new(field, format!("{n} is negative; use 0 for no limit"))),
        n => Ok(Some(n as u64)),
    }
}

/// Message order; unspecified means oldest first.
pub fn order(field: &str, value: i32) -> Result<MessageOrder, FieldViolation> {
    match Order::try_from(value) {
        Ok(Order::Unspecified | Order::OldestFirst) => Ok(MessageOrder::OldestFirst),
        Ok(Order::NewestFirst) => Ok(MessageOrder::NewestFirst),
        Err(_) => Err(FieldViolation::new(field, format!("{value} is not an Order"))),
    }
}

/// The stored name of a role.
pub fn role_name(field: &str, value: i32) -> Result<&'static str, FieldViolation> {
    match Role::try_from(value) {
        Ok(Role::User) => Ok("user"),
        Ok(Role::Assistant) => Ok("assistant"),
        Ok(Role::System) => Ok("system"),
        Ok(Role::Tool) => Ok("tool"),
        Ok(Role::Unspecified) => {
            Err(FieldViolation::new(field, "required: ROLE_USER, ROLE_ASSISTANT, ROLE_SYSTEM or ROLE_TOOL"))
        }
        Err(_) => Err(FieldViolation::new(field, format!("{value} is not a Role"))),
    }
}

/// The protobuf role of a stored name.
pub fn role_from_name(name: &str) -> Role {
    match name {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" => Role::System,
        "tool" => Role::Tool,
        _ => Role::Unspecified,
    }
}

/// A validated message to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessageInput {
    /// The message id (client-chosen or a fresh UUIDv7).
    pub id: Uuid,
    /// Whether the client chose the id (a retry may find it stored already).
    pub client_id: bool,
    /// Stored role name.
    pub role: &'static str,
    /// Text.
    pub content: String,
    /// JSON sources, `None` when absent.
    pub sources: Option<Json>,
}

/// Validates the messages of an `AppendMessages`, collecting every violation.
pub fn new_messages(messages: Vec<NewMessage>) -> Result<Vec<NewMessageInput>, Error> {
    if messages.is_empty() {
        return Err(Error::invalid("messages", "at least one message is required"));
    }
    if messages.len() > MAX_MESSAGES_PER_APPEND {
        return Err(Error::invalid(
            "messages",
            format!("{} messages; at most {MAX_MESSAGES_PER_APPEND} per call", messages.len()),
        ));
    }
    let mut violations = Vec::new();
    let mut inputs = Vec::with_capacity(messages.len());
    let mut seen = std::collections::HashSet::new();
    for (index, message) in messages.into_iter().enumerate() {
        let field = |name: &str| format!("messages[{index}].{name}");
        let id = match optional_id(&field("message_id"), &message.message_id) {
            Ok(Some(id)) => {
                if !seen.insert(id) {
                    violations.push(FieldViolation::new(field("message_id"), "appears twice in this request"));
                }
                Some(id)
            }
            Ok(None) => None,
            Err(violation) => {
                violations.push(violation);
                None
            }
        };
        let role = role_name(&field("role"), message.role).map_err(|v| violations.push(v)).ok();
        if message.content.len() > MAX_CONTENT_BYTES {
            violations.push(FieldViolation::new(
                field("content"),
                format!("{} bytes; at most {MAX_CONTENT_BYTES}", message.content.len()),
            ));
        } else if message.content.contains('\0') {
            violations.push(FieldViolation::new(field("content"), "contains a NUL character (U+0000)"));
        }
        let sources = match &message.sources {
            None => None,
            Some(value) => match value_to_json(value, &field("sources")) {
                Ok(json) => {
                    let size = encoded_len(&json);
                    if size > MAX_SOURCES_BYTES {
                        violations.push(FieldViolation::new(
                            field("sources"),
                            format!("{size} bytes of JSON; at most {MAX_SOURCES_BYTES}"),
                        ));
                    }
                    Some(json)
                }
                Err(error) => {
                    violations.push(FieldViolation::new(field("sources"), error.to_string()));
                    None
                }
            },
        };
        if let Some(role) = role {
            inputs.push(NewMessageInput {
                id: id.unwrap_or_else(Uuid::now_v7),
                client_id: id.is_some(),
                role,
                content: message.content,
                sources,
            });
        }
    }
    if violations.is_empty() { Ok(inputs) } else { Err(Error::InvalidArgument(violations)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{Value, value::Kind};

    fn message(role: Role, content: &str) -> NewMessage {
        NewMessage { message_id: String::new(), role: role as i32, content: content.to_owned(), sources: None }
    }

    fn violations(error: Error) -> Vec<FieldViolation> {
        match error {
            Error::InvalidArgument(violations) => violations,
            other => panic!("not invalid argument: {other:?}"),
        }
    }

    #[test]
    fn page_size_follows_aip_158() {
        assert_eq!(page_size("page_size", 0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size("page_size", 7), Ok(7));
        assert_eq!(page_size("page_size", 5000), Ok(MAX_PAGE_SIZE));
        assert_eq!(page_size("page_size", -1).unwrap_err().field, "page_size");
    }

    #[test]
    fn ids_must_be_uuids() {
        assert_eq!(required_id("conversation_id", "").unwrap_err().description.split(':').next(), Some("required"));
        assert_eq!(required_id("conversation_id", "abc").unwrap_err().description, "\"abc\" is not a UUID");
        assert!(optional_id("conversation_id", "00000000-0000-0000-0000-000000000000").is_err());
        assert_eq!(optional_id("x", "").unwrap(), None);
    }

    #[test]
    fn title_is_limited_in_characters_not_bytes() {
        assert!(title("title", &"é".repeat(MAX_TITLE_CHARS)).is_ok());
        assert_eq!(
            title("title", &"é".repeat(MAX_TITLE_CHARS + 1)).unwrap_err().description,
            "513 characters; at most 512"
        );
    }

    #[test]
    fn every_bad_message_is_reported_with_its_index() {
        let mut with_bad_id = message(Role::User, "hi");
        with_bad_id.message_id = "nope".into();
        let mut with_nan = message(Role::Assistant, "ok");
        with_nan.sources = Some(Value { kind: Some(Kind::NumberValue(f64::INFINITY)) });
        let messages = vec![
            message(Role::Unspecified, "x"),
            with_bad_id,
            message(Role::User, &"x".repeat(MAX_CONTENT_BYTES + 1)),
            with_nan,
            NewMessage { role: 42, ..message(Role::User, "") },
        ];
        let fields: Vec<String> =
            violations(new_messages(messages).unwrap_err()).into_iter().map(|v| v.field).collect();
        assert_eq!(
            fields,
            vec![
                "messages[0].role",
                "messages[1].message_id",
                "messages[2].content",
                "messages[3].sources",
                "messages[4].role"
            ]
        );
    }

    #[test]
    fn too_many_or_no_messages_are_rejected() {
        let many = vec![message(Role::User, "x"); MAX_MESSAGES_PER_APPEND + 1];
        assert_eq!(violations(new_messages(many).unwrap_err())[0].description, "101 messages; at most 100 per call");
        assert_eq!(violations(new_messages(vec![]).unwrap_err())[0].field, "messages");
    }

    #[test]
    fn duplicate_ids_in_one_request_are_rejected() {
        let id = Uuid::now_v7().to_string();
        let mut a = message(Role::User, "a");
        a.message_id = id.clone();
        let mut b = message(Role::User, "b");
        b.message_id = id;
        let found = violations(new_messages(vec![a, b]).unwrap_err());
        assert_eq!(found, vec![FieldViolation::new("messages[1].message_id", "appears twice in this request")]);
    }

    #[test]
    fn metadata_is_limited_to_16_kib_of_json() {
        let big = Struct {
            fields: [("k".to_owned(), Value { kind: Some(Kind::StringValue("x".repeat(MAX_METADATA_BYTES))) })]
                .into_iter()
                .collect(),
        };
        assert!(metadata("metadata", Some(&big)).unwrap_err().description.ends_with("at most 16384"));
    }
}
