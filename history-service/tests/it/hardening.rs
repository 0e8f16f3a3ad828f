//! Hostile input, limits, deadlines and shutdown, as seen by clients of
//! history-service.

use std::time::Duration;

use chat_proto::history::v1::{
    AppendMessagesRequest, CreateConversationRequest, ListConversationsRequest, ListMessagesRequest, Role,
};
use history_service::{ServeOptions, config::DatabaseSettings, server::pool_with};
use serde_json::json;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use test_support::{TestKey, history::TestHistory, keys::unsigned_token};
use time::OffsetDateTime;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::{assert_status, create, new_message, object, violated_fields};

async fn assert_serving(history: &TestHistory) {
    let response = HealthClient::new(test_support::channel(history.url()).await)
        .check(HealthCheckRequest { service: String::new() })
        .await
        .unwrap();
    assert_eq!(response.into_inner().status, ServingStatus::Serving as i32);
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn hostile_tokens_through_history_service_get_their_reasons(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let valid = history.token("alice");
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    let flipped = if parts[2].as_bytes()[10] == b'A' { "B" } else { "A" };
    parts[2].replace_range(10..11, flipped);
    let tampered = parts.join(".");
    let cases = [
        ("alg none", unsigned_token(&json!({"sub": "alice", "exp": now + 600})), "ALGORITHM_NOT_ALLOWED"),
        ("tampered", tampered, "SIGNATURE_INVALID"),
        ("expired", history.token_with("alice", json!({"exp": now - 600})), "TOKEN_EXPIRED"),
        ("wrong issuer", history.token_with("alice", json!({"iss": "https://evil.example"})), "ISSUER_MISMATCH"),
        (
            "unknown kid",
            TestKey::generate("EdDSA", "stranger").sign(&json!({"sub": "alice", "exp": now + 600})),
            "KEY_UNKNOWN",
        ),
        ("garbage", "not.a.token".to_owned(), "TOKEN_MALFORMED"),
        ("17 KB", history.token_with("alice", json!({"pad": "x".repeat(17 * 1024)})), "TOKEN_MALFORMED"),
    ];
    for (name, token, reason) in cases {
        let mut client = history.client_with_token(Some(&token)).await;
        let error = client.list_conversations(ListConversationsRequest::default()).await.expect_err(name);
        assert_status(&error, Code::Unauthenticated, reason);
    }
    // A 1 MB authorization header is refused at the HTTP/2 layer, before any
    // work; the service is unharmed.
    let mut client = history.client_with_token(Some(&"a".repeat(1024 * 1024))).await;
    let error = client.list_conversations(ListConversationsRequest::default()).await.unwrap_err();
    assert_ne!(error.code(), Code::Ok);
    assert_serving(&history).await;
    let mut alice = history.client("alice").await;
    alice.list_conversations(ListConversationsRequest::default()).await.unwrap();
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn oversized_requests_are_refused_before_they_are_read(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let id = create(&mut alice, "limits").await.conversation_id;

    let huge = AppendMessagesRequest {
        conversation_id: id.clone(),
        messages: vec![new_message(Role::User, &"x".repeat(9 << 20))],
    };
    let error = alice.append_messages(huge).await.unwrap_err();
    let message = assert_status(&error, Code::ResourceExhausted, "MESSAGE_TOO_LARGE");
    assert!(message.ends_with("this service accepts at most 8388608 bytes per message"), "{message}");

    let many =
        AppendMessagesRequest { conversation_id: id.clone(), messages: vec![new_message(Role::User, "x"); 1001] };
    let error = alice.append_messages(many).await.unwrap_err();
    assert_status(&error, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(error.message(), "messages: 1001 messages; at most 100 per call");

    let error = alice
        .create_conversation(CreateConversationRequest {
            metadata: Some(object(json!({"blob": "x".repeat(1 << 20)}))),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&error), vec!["metadata"]);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&history.pool).await.unwrap();
    assert_eq!(rows, 0);
    assert_serving(&history).await;
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn a_statement_stuck_on_a_lock_hits_the_statement_timeout(_options: PgPoolOptions, connect: PgConnectOptions) {
    let settings = DatabaseSettings {
        connect: connect.clone(),
        migrate: connect.clone(),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Some(Duration::from_millis(300)),
    };
    let pool = pool_with(connect, &settings);
    let history = TestHistory::start_direct(pool.clone(), ServeOptions::default()).await;
    let mut alice = history.client("alice").await;
    let id = create(&mut alice, "locked").await.conversation_id;

    // Another session holds the conversation row.
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM conversations WHERE id = $1::uuid FOR UPDATE")
        .bind(&id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let error = alice
        .append_messages(AppendMessagesRequest {
            conversation_id: id.clone(),
            messages: vec![new_message(Role::User, "x")],
        })
        .await
        .unwrap_err();
    let message = assert_status(&error, Code::DeadlineExceeded, "DATABASE_TIMEOUT");
    assert!(message.contains("nothing was written"), "{message}");
    blocker.rollback().await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 0);
    history.stop().await;
    pool.close().await;
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn sigterm_turns_health_off_at_once_and_lets_in_flight_streams_finish(pool: PgPool) {
    let history = TestHistory::start_with(
        pool,
        ServeOptions { shutdown_grace: Duration::from_secs(20), ..ServeOptions::default() },
    )
    .await;
    let mut alice = history.client("alice").await;
    let id = create(&mut alice, "draining").await.conversation_id;
    crate::seed_messages(&history.pool, &id, 500, 512).await;

    let mut health = HealthClient::new(test_support::channel(history.url()).await)
        .watch(HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.message().await.unwrap().unwrap().status, ServingStatus::Serving as i32);
    let mut stream = alice
        .stream_messages(ListMessagesRequest { conversation_id: id.clone(), page_size: 10, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let mut received = stream.message().await.unwrap().unwrap().messages.len();

    history.begin_shutdown();
    assert_eq!(
        health.message().await.unwrap().unwrap().status,
        ServingStatus::NotServing as i32,
        "NOT_SERVING at once"
    );
    // A health Watch never ends by itself; a prober that saw NOT_SERVING goes away.
    drop(health);
    // New connections are refused.
    let refused = tonic::transport::Endpoint::from_shared(history.url()).unwrap().connect().await;
    assert!(refused.is_err(), "a new connection was accepted during shutdown");
    // The stream in flight finishes.
    while let Some(page) = stream.message().await.unwrap() {
        received += page.messages.len();
    }
    assert_eq!(received, 500);
    let streams = history.streams.clone();
    tokio::time::timeout(Duration::from_secs(30), history.join()).await.expect("drained").unwrap();
    assert_eq!(*streams.active().borrow(), 0);
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn a_stalled_stream_cannot_hold_shutdown_past_the_grace_period(pool: PgPool) {
    let history = TestHistory::start_with(
        pool,
        ServeOptions { shutdown_grace: Duration::from_millis(300), ..ServeOptions::default() },
    )
    .await;
    let mut alice = history.client("alice").await;
    let id = create(&mut alice, "stalled").await.conversation_id;
    crate::seed_messages(&history.pool, &id, 2000, 1024).await;
    let mut stream = alice
        .stream_messages(ListMessagesRequest { conversation_id: id, page_size: 10, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap();
    let mut waiting = history.streams.waiting_on_client();
    tokio::time::timeout(Duration::from_secs(30), waiting.wait_for(|n| *n == 1)).await.unwrap().unwrap();

    let streams = history.streams.clone();
    history.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(30), history.join())
        .await
        .expect("stopped after the grace period")
        .unwrap();
    assert_eq!(*streams.active().borrow(), 0, "the stream task was stopped too");
    drop(stream);
}
