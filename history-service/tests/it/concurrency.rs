//! Concurrent appends to one conversation get gap-free, unique seqs.

use std::collections::HashSet;

use chat_proto::history::v1::{AppendMessagesRequest, GetConversationRequest, Role};
use sqlx::PgPool;
use test_support::history::TestHistory;
use uuid::Uuid;

use crate::{create, new_message};

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn thirty_two_concurrent_appends_get_seqs_one_to_n(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let id = create(&mut alice, "busy").await.conversation_id;

    let calls: Vec<_> = (0..32)
        .map(|call| {
            let mut client = alice.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let messages = (0..3).map(|i| new_message(Role::User, &format!("call {call} part {i}"))).collect();
                client
                    .append_messages(AppendMessagesRequest { conversation_id: id, messages })
                    .await
                    .unwrap()
                    .into_inner()
                    .messages
            })
        })
        .collect();
    let mut all = Vec::new();
    for call in calls {
        let messages = call.await.unwrap();
        // One call's messages are contiguous and in request order.
        let seqs: Vec<i64> = messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![seqs[0], seqs[0] + 1, seqs[0] + 2]);
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=96).collect::<Vec<_>>());

    let stored: Vec<i64> =
        sqlx::query_scalar("SELECT seq FROM messages ORDER BY seq").fetch_all(&history.pool).await.unwrap();
    assert_eq!(stored, (1..=96).collect::<Vec<_>>());
    let conversation =
        alice.get_conversation(GetConversationRequest { conversation_id: id }).await.unwrap().into_inner();
    assert_eq!(conversation.message_count, 96);
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn concurrent_retries_of_one_message_store_it_once(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let id = create(&mut alice, "retries").await.conversation_id;
    let mut message = new_message(Role::Assistant, "the answer");
    message.message_id = Uuid::now_v7().to_string();

    let calls: Vec<_> = (0..16)
        .map(|_| {
            let mut client = alice.clone();
            let request = AppendMessagesRequest { conversation_id: id.clone(), messages: vec![message.clone()] };
            tokio::spawn(async move { client.append_messages(request).await.unwrap().into_inner().messages })
        })
        .collect();
    let mut answers = HashSet::new();
    for call in calls {
        let messages = call.await.unwrap();
        answers.insert((messages[0].message_id.clone(), messages[0].seq));
    }
    assert_eq!(answers, HashSet::from([(message.message_id.clone(), 1)]), "every retry saw the one stored message");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&history.pool).await.unwrap();
    assert_eq!(rows, 1);
}
