//! history-service integration tests: one binary, one module per concern.
//! Each database test gets a fresh, migrated database (`#[sqlx::test]`).

#![allow(clippy::unwrap_used, missing_docs)]

mod better_auth;
mod concurrency;
mod deploy;
mod faults;
mod hardening;
mod isolation;
mod metrics;
mod pagination;
mod python;
mod readme;
mod rpc;
mod stack;
mod store;
mod streaming;
mod web;

use chat_proto::history::v1::{
    AppendMessagesRequest, Conversation, CreateConversationRequest, Message, NewMessage, Role,
};
use prost_types::{ListValue, Struct, Value, value::Kind};
use serde_json::json;
use test_support::history::Client;
use tonic::{Code, Status};

/// Asserts a status's code and `ErrorInfo` reason; returns its message.
#[track_caller]
pub fn assert_status(status: &Status, code: Code, reason: &str) -> String {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(service_kit::status::reason(status).as_deref(), Some(reason), "{status:?}");
    status.message().to_owned()
}

/// The fields named by a status's `BadRequest`.
pub fn violated_fields(status: &Status) -> Vec<String> {
    service_kit::status::field_violations(status).into_iter().map(|v| v.field).collect()
}

/// JSON → protobuf Value.
pub fn value(json: serde_json::Value) -> Value {
    history_service::json::json_to_value(json)
}

/// JSON object → protobuf Struct.
pub fn object(json: serde_json::Value) -> Struct {
    match json {
        serde_json::Value::Object(map) => history_service::json::json_to_struct(map),
        other => panic!("not an object: {other}"),
    }
}

/// A typical RAG citation list.
pub fn sources() -> Value {
    value(json!([
        {"title": "Neon docs: connection pooling", "url": "https://neon.tech/docs/connect/connection-pooling", "score": 0.92},
        {"title": "PgBouncer config", "url": "https://www.pgbouncer.org/config.html", "score": 0.71, "page": 3}
    ]))
}

/// A new message with this role and content.
pub fn new_message(role: Role, content: &str) -> NewMessage {
    NewMessage { message_id: String::new(), role: role as i32, content: content.to_owned(), sources: None }
}

/// Creates a conversation titled `title`.
pub async fn create(client: &mut Client, title: &str) -> Conversation {
    client
        .create_conversation(CreateConversationRequest { title: title.to_owned(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
}

/// Appends `messages` to `conversation_id`.
pub async fn append(client: &mut Client, conversation_id: &str, messages: Vec<NewMessage>) -> Vec<Message> {
    client
        .append_messages(AppendMessagesRequest { conversation_id: conversation_id.to_owned(), messages })
        .await
        .unwrap()
        .into_inner()
        .messages
}

/// A list value of strings.
pub fn strings(items: &[&str]) -> Value {
    Value {
        kind: Some(Kind::ListValue(ListValue {
            values: items.iter().map(|s| Value { kind: Some(Kind::StringValue((*s).to_owned())) }).collect(),
        })),
    }
}

/// Fills alice's conversation `conversation_id` with `count` messages of
/// `bytes` bytes each, straight in SQL (faster than appending them).
pub async fn seed_messages(pool: &sqlx::PgPool, conversation_id: &str, count: i64, bytes: i32) {
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, user_id, seq, role, content) \
         SELECT gen_random_uuid(), $1::uuid, 'alice', n, 'user', repeat('x', $3) FROM generate_series(1, $2) n",
    )
    .bind(conversation_id)
    .bind(count)
    .bind(bytes)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("UPDATE conversations SET last_seq = $2 WHERE id = $1::uuid")
        .bind(conversation_id)
        .bind(count)
        .execute(pool)
        .await
        .unwrap();
}
