//! `/metrics` on the admin port: calls by method and code, latency,
//! identity cache, pool and streams.

use chat_proto::history::v1::{GetConversationRequest, ListMessagesRequest, Role};
use sqlx::PgPool;
use test_support::{history::TestHistory, sample};
use uuid::Uuid;

use crate::{append, create, new_message};

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn metrics_count_calls_by_method_and_code(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let id = create(&mut alice, "metrics").await.conversation_id;
    append(&mut alice, &id, vec![new_message(Role::User, "a"), new_message(Role::User, "b")]).await;
    for _ in 0..2 {
        let _ = alice.get_conversation(GetConversationRequest { conversation_id: Uuid::now_v7().to_string() }).await;
    }
    let mut stream = alice
        .stream_messages(ListMessagesRequest { conversation_id: id, page_size: 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.unwrap().is_some() {}
    let mut anonymous = history.client_with_token(None).await;
    let _ = anonymous.get_conversation(GetConversationRequest::default()).await;
    // A path no proto declares is counted under "unknown", not under its own name.
    let channel = test_support::channel(history.url()).await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let bogus: Result<tonic::Response<()>, _> = grpc
        .unary(
            tonic::Request::new(()),
            http::uri::PathAndQuery::from_static("/history.v1.HistoryService/Bogus"),
            tonic_prost::ProstCodec::<(), ()>::default(),
        )
        .await;
    assert!(bogus.is_err());

    let text = history.metrics().await;
    let handled = |method: &str, code: &str| {
        sample(
            &text,
            "history_grpc_server_handled_total",
            &[&format!("grpc_method=\"{method}\""), &format!("grpc_code=\"{code}\"")],
        )
    };
    assert_eq!(handled("CreateConversation", "OK"), Some(1.0), "{text}");
    assert_eq!(handled("AppendMessages", "OK"), Some(1.0));
    assert_eq!(handled("GetConversation", "NOT_FOUND"), Some(2.0));
    assert_eq!(handled("GetConversation", "UNAUTHENTICATED"), Some(1.0));
    assert_eq!(handled("StreamMessages", "OK"), Some(1.0));
    assert_eq!(handled("unknown", "UNAUTHENTICATED"), Some(1.0), "made-up paths share one label:\n{text}");
    assert!(!text.contains("Bogus"));
    assert_eq!(
        sample(&text, "history_grpc_server_handling_seconds_count", &["grpc_method=\"GetConversation\""]),
        Some(3.0)
    );
    // One verification for alice, then the cache.
    assert_eq!(sample(&text, "history_auth_verify_calls_total", &[]), Some(1.0));
    assert!(sample(&text, "history_identity_cache_hits_total", &[]).unwrap() >= 4.0);
    assert_eq!(sample(&text, "history_db_pool_max_connections", &[]), Some(5.0), "the sqlx::test pool");
    assert!(sample(&text, "history_db_pool_connections", &[]).unwrap() >= 1.0);
    assert!(sample(&text, "history_db_pool_acquire_seconds_count", &[]).unwrap() >= 5.0);
    assert_eq!(sample(&text, "history_streams_active", &[]), Some(0.0));
}
