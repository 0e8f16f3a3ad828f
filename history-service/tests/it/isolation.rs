//! Tenancy: another user's conversation is NOT_FOUND for every RPC, exactly
//! as a missing one, and never appears in their listings.

use chat_proto::history::v1::{
    AppendMessagesRequest, CreateConversationRequest, DeleteConversationRequest, GetConversationRequest,
    ListConversationsRequest, ListMessagesRequest, Role, UpdateConversationRequest,
};
use sqlx::PgPool;
use test_support::history::TestHistory;
use tonic::{Code, Status};
use uuid::Uuid;

use crate::{append, assert_status, create, new_message};

/// Both errors say the same thing, apart from the id itself.
fn assert_indistinguishable(theirs: &Status, missing: &Status, their_id: &str, missing_id: &str) {
    assert_status(theirs, Code::NotFound, "CONVERSATION_NOT_FOUND");
    assert_status(missing, Code::NotFound, "CONVERSATION_NOT_FOUND");
    assert_eq!(theirs.message().replace(their_id, "ID"), missing.message().replace(missing_id, "ID"));
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn another_users_conversation_is_not_found_for_every_rpc(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let mut bob = history.client("bob").await;
    let a = create(&mut alice, "alice's secret").await.conversation_id;
    append(&mut alice, &a, vec![new_message(Role::User, "private")]).await;
    let m = Uuid::now_v7().to_string();

    macro_rules! both {
        ($call:ident, $request:expr) => {{
            let make = $request;
            let theirs = bob.$call(make(a.clone())).await.err().expect("bob must not reach alice's conversation");
            let missing = bob.$call(make(m.clone())).await.err().expect("missing conversation");
            assert_indistinguishable(&theirs, &missing, &a, &m);
        }};
    }
    both!(get_conversation, |id| GetConversationRequest { conversation_id: id });
    both!(update_conversation, |id| UpdateConversationRequest {
        conversation_id: id,
        title: "pwned".into(),
        ..Default::default()
    });
    both!(delete_conversation, |id| DeleteConversationRequest { conversation_id: id });
    both!(append_messages, |id| AppendMessagesRequest {
        conversation_id: id,
        messages: vec![new_message(Role::User, "hi")]
    });
    both!(list_messages, |id| ListMessagesRequest { conversation_id: id, ..Default::default() });
    both!(stream_messages, |id| ListMessagesRequest { conversation_id: id, ..Default::default() });

    // Nothing of alice's changed.
    let got = alice.get_conversation(GetConversationRequest { conversation_id: a.clone() }).await.unwrap().into_inner();
    assert_eq!((got.title.as_str(), got.message_count), ("alice's secret", 1));
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn listings_only_show_the_callers_conversations(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let mut bob = history.client("bob").await;
    for i in 0..3 {
        create(&mut alice, &format!("a{i}")).await;
    }
    let mine = create(&mut bob, "b0").await.conversation_id;
    let listed = bob.list_conversations(ListConversationsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.conversations.iter().map(|c| c.conversation_id.clone()).collect::<Vec<_>>(), vec![mine]);

    // A page token issued to alice is refused for bob.
    let token = alice
        .list_conversations(ListConversationsRequest { page_size: 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let error = bob.list_conversations(ListConversationsRequest { page_size: 1, page_token: token }).await.unwrap_err();
    assert_status(&error, Code::InvalidArgument, "PAGE_TOKEN_INVALID");
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn identity_metadata_from_the_client_is_ignored(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let a = create(&mut alice, "alice's").await.conversation_id;
    let mut bob = history.client("bob").await;
    let mut request = tonic::Request::new(GetConversationRequest { conversation_id: a });
    for name in ["x-user-id", "x-auth-user-id", "x-forwarded-user", "user-id"] {
        request.metadata_mut().insert(name, "alice".parse().unwrap());
    }
    let error = bob.get_conversation(request).await.unwrap_err();
    assert_status(&error, Code::NotFound, "CONVERSATION_NOT_FOUND");
    let mine = bob
        .create_conversation(CreateConversationRequest { title: "bob's".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let owner: String = sqlx::query_scalar("SELECT user_id FROM conversations WHERE id = $1::uuid")
        .bind(&mine.conversation_id)
        .fetch_one(&history.pool)
        .await
        .unwrap();
    assert_eq!(owner, "bob");
}
