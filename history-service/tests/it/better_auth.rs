//! End to end with the real Better Auth: a signed-up user's JWT, verified by
//! auth-service against Better Auth's JWKS, drives history-service.

use chat_proto::history::v1::{AppendMessagesRequest, CreateConversationRequest, ListMessagesRequest, Role};
use history_service::ServeOptions;
use serde_json::json;
use sqlx::PgPool;
use test_support::{
    better_auth::BetterAuth,
    history::{Bearer, TestHistory},
};

use crate::{new_message, object, sources};

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn a_better_auth_user_keeps_a_conversation_with_cited_answers(pool: PgPool) {
    let better_auth = BetterAuth::start("EdDSA").await;
    let history = TestHistory::start_for_better_auth(pool, ServeOptions::default(), &better_auth).await;

    let session = better_auth.sign_up("reader@example.com", "Grace Reader").await;
    let token = better_auth.token(&session).await;
    let mut client = chat_proto::history::v1::history_service_client::HistoryServiceClient::with_interceptor(
        test_support::channel(history.url()).await,
        Bearer::new(Some(&token)),
    );

    let conversation = client
        .create_conversation(CreateConversationRequest {
            title: "What is keyset pagination?".into(),
            metadata: Some(object(json!({"model": "rag-1"}))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut answer = new_message(Role::Assistant, "Page by the last key seen, never by OFFSET.");
    answer.sources = Some(sources());
    let appended = client
        .append_messages(AppendMessagesRequest {
            conversation_id: conversation.conversation_id.clone(),
            messages: vec![new_message(Role::User, "What is keyset pagination?"), answer],
        })
        .await
        .unwrap()
        .into_inner()
        .messages;

    let mut stream = client
        .stream_messages(ListMessagesRequest {
            conversation_id: conversation.conversation_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut streamed = Vec::new();
    while let Some(page) = stream.message().await.unwrap() {
        streamed.extend(page.messages);
    }
    assert_eq!(streamed, appended, "streamed back identical");
    assert_eq!(streamed[1].sources, Some(sources()));

    let owner: String = sqlx::query_scalar("SELECT user_id FROM conversations WHERE id = $1::uuid")
        .bind(&conversation.conversation_id)
        .fetch_one(&history.pool)
        .await
        .unwrap();
    assert_eq!(owner, session.user_id, "owned by the Better Auth user id");
}
