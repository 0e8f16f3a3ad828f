//! Every RPC over gRPC against the real server (auth-service verifying real
//! EdDSA tokens): the happy path with every returned field, and the errors.

use chat_proto::history::v1::{
    AppendMessagesRequest, CreateConversationRequest, DeleteConversationRequest, GetConversationRequest,
    ListConversationsRequest, ListMessagesRequest, NewMessage, Order, Role, UpdateConversationRequest,
};
use history_service::validate::{MAX_CONTENT_BYTES, MAX_MESSAGES_PER_APPEND, MAX_SOURCES_BYTES, MAX_TITLE_CHARS};
use prost_types::FieldMask;
use serde_json::json;
use sqlx::PgPool;
use test_support::history::TestHistory;
use time::OffsetDateTime;
use tonic::Code;
use uuid::Uuid;

use crate::{append, assert_status, create, new_message, object, sources, value, violated_fields};

fn seconds_ago(timestamp: &prost_types::Timestamp) -> i64 {
    OffsetDateTime::now_utc().unix_timestamp() - timestamp.seconds
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn create_conversation_returns_every_field(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let created = alice
        .create_conversation(CreateConversationRequest {
            conversation_id: String::new(),
            title: "Pooling on Neon".into(),
            metadata: Some(object(json!({"model": "gpt-x", "tags": ["db", "neon"], "temperature": 0.2}))),
        })
        .await
        .unwrap()
        .into_inner();
    let id = Uuid::parse_str(&created.conversation_id).unwrap();
    assert_eq!(id.get_version_num(), 7, "server-assigned ids are UUIDv7");
    assert_eq!(created.title, "Pooling on Neon");
    assert_eq!(created.metadata, Some(object(json!({"model": "gpt-x", "tags": ["db", "neon"], "temperature": 0.2}))));
    assert_eq!(created.message_count, 0);
    let created_at = created.created_at.unwrap();
    assert_eq!(Some(created_at), created.updated_at);
    assert!((0..60).contains(&seconds_ago(&created_at)));
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn create_conversation_with_a_client_id_is_idempotent(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let id = Uuid::now_v7().to_string();
    let request = CreateConversationRequest {
        conversation_id: id.clone(),
        title: "Retry me".into(),
        metadata: Some(object(json!({"a": 1}))),
    };
    let first = alice.create_conversation(request.clone()).await.unwrap().into_inner();
    let again = alice.create_conversation(request.clone()).await.unwrap().into_inner();
    assert_eq!(first, again, "a retry returns the stored conversation");
    assert_eq!(first.conversation_id, id);

    let different = CreateConversationRequest { title: "Something else".into(), ..request };
    let error = alice.create_conversation(different).await.unwrap_err();
    let message = assert_status(&error, Code::AlreadyExists, "CONVERSATION_ALREADY_EXISTS");
    assert!(message.starts_with(&format!("conversation_id {id} is already used")), "{message}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM conversations").fetch_one(&history.pool).await.unwrap();
    assert_eq!(count, 1);
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn create_conversation_rejects_bad_input_field_by_field(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let error = alice
        .create_conversation(CreateConversationRequest {
            conversation_id: "not-a-uuid".into(),
            title: "t".repeat(MAX_TITLE_CHARS + 1),
            metadata: Some(object(json!({"blob": "x".repeat(17 * 1024)}))),
        })
        .await
        .unwrap_err();
    assert_status(&error, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&error), vec!["conversation_id", "title", "metadata"]);
    assert!(error.message().contains("conversation_id: \"not-a-uuid\" is not a UUID"), "{}", error.message());

    let error = alice
        .create_conversation(CreateConversationRequest { title: "nul \0 byte".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&error), vec!["title"]);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM conversations").fetch_one(&history.pool).await.unwrap();
    assert_eq!(count, 0, "nothing was written");
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn calls_without_a_valid_token_are_unauthenticated(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut anonymous = history.client_with_token(None).await;
    let error = anonymous.create_conversation(CreateConversationRequest::default()).await.unwrap_err();
    assert_status(&error, Code::Unauthenticated, "TOKEN_MISSING");

    let expired = history.token_with("alice", json!({"exp": OffsetDateTime::now_utc().unix_timestamp() - 600}));
    let mut stale = history.client_with_token(Some(&expired)).await;
    let error = stale.list_conversations(ListConversationsRequest::default()).await.unwrap_err();
    assert_status(&error, Code::Unauthenticated, "TOKEN_EXPIRED");

    let mut forged = history.client_with_token(Some("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.")).await;
    let error = forged.list_conversations(ListConversationsRequest::default()).await.unwrap_err();
    assert_status(&error, Code::Unauthenticated, "ALGORITHM_NOT_ALLOWED");
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn get_conversation_counts_messages_and_tracks_activity(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let created = create(&mut alice, "Counting").await;
    append(&mut alice, &created.conversation_id, vec![new_message(Role::User, "a"), new_message(Role::Assistant, "b")])
        .await;
    let got = alice
        .get_conversation(GetConversationRequest { conversation_id: created.conversation_id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.conversation_id, created.conversation_id);
    assert_eq!(got.title, "Counting");
    assert_eq!(got.metadata, Some(object(json!({}))));
    assert_eq!(got.message_count, 2);
    assert_eq!(got.created_at, created.created_at);
    let (updated, created_at) = (got.updated_at.unwrap(), created.created_at.unwrap());
    assert!((updated.seconds, updated.nanos) > (created_at.seconds, created_at.nanos), "appends bump updated_at");
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn get_conversation_errors(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let error = alice.get_conversation(GetConversationRequest { conversation_id: "42".into() }).await.unwrap_err();
    assert_status(&error, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&error), vec!["conversation_id"]);
    let missing = Uuid::now_v7().to_string();
    let error = alice.get_conversation(GetConversationRequest { conversation_id: missing.clone() }).await.unwrap_err();
    let message = assert_status(&error, Code::NotFound, "CONVERSATION_NOT_FOUND");
    assert_eq!(message, format!("conversation {missing} not found"));
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn update_conversation_follows_the_update_mask(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let created = alice
        .create_conversation(CreateConversationRequest {
            title: "Old".into(),
            metadata: Some(object(json!({"keep": true}))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let id = created.conversation_id.clone();
    let mask = |paths: &[&str]| Some(FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() });

    // Only the title, although metadata is sent too.
    let updated = alice
        .update_conversation(UpdateConversationRequest {
            conversation_id: id.clone(),
            title: "New".into(),
            metadata: Some(object(json!({"ignored": 1}))),
            update_mask: mask(&["title"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.title, "New");
    assert_eq!(updated.metadata, Some(object(json!({"keep": true}))));
    assert_eq!(updated.created_at, created.created_at);
    assert_ne!(updated.updated_at, created.updated_at);

    // Only the metadata; an empty title in the request does not matter.
    let updated = alice
        .update_conversation(UpdateConversationRequest {
            conversation_id: id.clone(),
            title: String::new(),
            metadata: Some(object(json!({"replaced": [1, 2]}))),
            update_mask: mask(&["metadata"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.title, "New");
    assert_eq!(updated.metadata, Some(object(json!({"replaced": [1, 2]}))));

    // `*` replaces both, so an empty title clears it.
    let updated = alice
        .update_conversation(UpdateConversationRequest {
            conversation_id: id.clone(),
            update_mask: mask(&["*"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((updated.title.as_str(), updated.metadata), ("", Some(object(json!({})))));

    // No mask: the fields the request sets.
    let updated = alice
        .update_conversation(UpdateConversationRequest {
            conversation_id: id.clone(),
            title: "Again".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.title, "Again");
    assert_eq!(updated.message_count, 0);
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn update_conversation_errors(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let id = create(&mut alice, "x").await.conversation_id;
    let error = alice
        .update_conversation(UpdateConversationRequest {
            conversation_id: id.clone(),
            update_mask: Some(FieldMask { paths: vec!["title".into(), "message_count".into()] }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(&error, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&error), vec!["update_mask.paths[1]"]);

    let error = alice
        .update_conversation(UpdateConversationRequest { conversation_id: id.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&error), vec!["update_mask"]);

    let error = alice
        .update_conversation(UpdateConversationRequest {
            conversation_id: Uuid::now_v7().to_string(),
            title: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(&error, Code::NotFound, "CONVERSATION_NOT_FOUND");

    let error = alice
        .update_conversation(UpdateConversationRequest {
            conversation_id: id,
            title: "t".repeat(MAX_TITLE_CHARS + 1),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&error), vec!["title"]);
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn delete_conversation_removes_its_messages(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let keep = create(&mut alice, "keep").await.conversation_id;
    let gone = create(&mut alice, "gone").await.conversation_id;
    append(&mut alice, &keep, vec![new_message(Role::User, "stay")]).await;
    append(&mut alice, &gone, vec![new_message(Role::User, "a"), new_message(Role::Assistant, "b")]).await;

    alice.delete_conversation(DeleteConversationRequest { conversation_id: gone.clone() }).await.unwrap();
    let error = alice.get_conversation(GetConversationRequest { conversation_id: gone.clone() }).await.unwrap_err();
    assert_status(&error, Code::NotFound, "CONVERSATION_NOT_FOUND");
    let left: Vec<String> =
        sqlx::query_scalar("SELECT content FROM messages ORDER BY content").fetch_all(&history.pool).await.unwrap();
    assert_eq!(left, vec!["stay"]);

    let error = alice.delete_conversation(DeleteConversationRequest { conversation_id: gone }).await.unwrap_err();
    assert_status(&error, Code::NotFound, "CONVERSATION_NOT_FOUND");
    let error =
        alice.delete_conversation(DeleteConversationRequest { conversation_id: String::new() }).await.unwrap_err();
    assert_eq!(violated_fields(&error), vec!["conversation_id"]);
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn list_conversations_is_most_recently_active_first_and_pages(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(create(&mut alice, &format!("c{i}")).await.conversation_id);
    }
    // Activity in the oldest moves it to the top.
    append(&mut alice, &ids[0], vec![new_message(Role::User, "bump")]).await;
    let expected = vec![ids[0].clone(), ids[4].clone(), ids[3].clone(), ids[2].clone(), ids[1].clone()];

    let all = alice.list_conversations(ListConversationsRequest::default()).await.unwrap().into_inner();
    assert_eq!(all.conversations.iter().map(|c| c.conversation_id.clone()).collect::<Vec<_>>(), expected);
    assert_eq!(all.next_page_token, "");
    assert_eq!(all.conversations[0].message_count, 1);
    assert_eq!(all.conversations[0].title, "c0");

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = alice
            .list_conversations(ListConversationsRequest { page_size: 2, page_token: token })
            .await
            .unwrap()
            .into_inner();
        assert!(page.conversations.len() <= 2);
        seen.extend(page.conversations.into_iter().map(|c| c.conversation_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, expected);
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn list_conversations_errors(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let error =
        alice.list_conversations(ListConversationsRequest { page_size: -1, ..Default::default() }).await.unwrap_err();
    assert_status(&error, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&error), vec!["page_size"]);
    let error = alice
        .list_conversations(ListConversationsRequest { page_token: "garbage".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_status(&error, Code::InvalidArgument, "PAGE_TOKEN_INVALID");
    assert_eq!(violated_fields(&error), vec!["page_token"]);

    // A ListMessages token is not a ListConversations token.
    let id = create(&mut alice, "x").await.conversation_id;
    append(&mut alice, &id, vec![new_message(Role::User, "1"), new_message(Role::User, "2")]).await;
    let messages_token = alice
        .list_messages(ListMessagesRequest { conversation_id: id, page_size: 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let error = alice
        .list_conversations(ListConversationsRequest { page_token: messages_token, ..Default::default() })
        .await
        .unwrap_err();
    assert_status(&error, Code::InvalidArgument, "PAGE_TOKEN_INVALID");
    assert!(error.message().contains("issued for ListMessages"), "{}", error.message());
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn append_messages_stores_user_and_assistant_messages_in_order(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let conversation = create(&mut alice, "RAG").await;
    let mut answer = new_message(Role::Assistant, "Use the -pooler endpoint.");
    answer.sources = Some(sources());
    let stored =
        append(&mut alice, &conversation.conversation_id, vec![new_message(Role::User, "How do I pool?"), answer])
            .await;

    assert_eq!(stored.len(), 2);
    assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(stored[0].role, Role::User as i32);
    assert_eq!(stored[0].content, "How do I pool?");
    assert_eq!(stored[0].sources, None);
    assert_eq!(stored[1].role, Role::Assistant as i32);
    assert_eq!(stored[1].content, "Use the -pooler endpoint.");
    assert_eq!(stored[1].sources, Some(sources()));
    for message in &stored {
        assert_eq!(message.conversation_id, conversation.conversation_id);
        assert_eq!(Uuid::parse_str(&message.message_id).unwrap().get_version_num(), 7);
        assert!((0..60).contains(&seconds_ago(message.created_at.as_ref().unwrap())));
    }
    let more = append(
        &mut alice,
        &conversation.conversation_id,
        vec![new_message(Role::System, "s"), new_message(Role::Tool, "t")],
    )
    .await;
    assert_eq!(
        more.iter().map(|m| (m.seq, m.role)).collect::<Vec<_>>(),
        vec![(3, Role::System as i32), (4, Role::Tool as i32)]
    );
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn a_retried_append_with_the_same_message_id_stores_one_row(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let id = create(&mut alice, "retries").await.conversation_id;
    let mut message = new_message(Role::Assistant, "answer");
    message.message_id = Uuid::now_v7().to_string();
    message.sources = Some(sources());
    let first = append(&mut alice, &id, vec![message.clone()]).await;
    let retry = append(&mut alice, &id, vec![message.clone()]).await;
    assert_eq!(first, retry, "the retry returns the stored message");
    // A retry that also carries a new message stores only the new one.
    let mixed = append(&mut alice, &id, vec![message.clone(), new_message(Role::User, "next")]).await;
    assert_eq!(mixed[0], first[0]);
    assert_eq!(mixed[1].seq, 2);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&history.pool).await.unwrap();
    assert_eq!(rows, 2);

    // The same id with different content is a conflict, and writes nothing.
    let mut changed = message.clone();
    changed.content = "a different answer".into();
    let error = alice
        .append_messages(AppendMessagesRequest {
            conversation_id: id.clone(),
            messages: vec![new_message(Role::User, "x"), changed],
        })
        .await
        .unwrap_err();
    let text = assert_status(&error, Code::AlreadyExists, "MESSAGE_ALREADY_EXISTS");
    assert!(text.starts_with(&format!("message_id {} is already used", message.message_id)), "{text}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&history.pool).await.unwrap();
    assert_eq!(rows, 2, "nothing half-written");
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn append_messages_rejects_bad_messages_and_writes_nothing(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let id = create(&mut alice, "limits").await.conversation_id;
    let request = |messages: Vec<NewMessage>| AppendMessagesRequest { conversation_id: id.clone(), messages };

    let error = alice.append_messages(request(vec![])).await.unwrap_err();
    assert_eq!(violated_fields(&error), vec!["messages"]);
    let error = alice
        .append_messages(request(vec![new_message(Role::User, "x"); MAX_MESSAGES_PER_APPEND + 1]))
        .await
        .unwrap_err();
    assert_status(&error, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(error.message(), "messages: 101 messages; at most 100 per call");

    let mut huge_sources = new_message(Role::Assistant, "ok");
    huge_sources.sources = Some(value(json!(["x".repeat(MAX_SOURCES_BYTES)])));
    let mut unknown_role = new_message(Role::User, "x");
    unknown_role.role = 99;
    let error = alice
        .append_messages(request(vec![
            new_message(Role::User, "fine"),
            new_message(Role::Unspecified, "no role"),
            new_message(Role::User, &"x".repeat(MAX_CONTENT_BYTES + 1)),
            huge_sources,
            unknown_role,
        ]))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&error),
        vec!["messages[1].role", "messages[2].content", "messages[3].sources", "messages[4].role"]
    );

    let error = alice
        .append_messages(AppendMessagesRequest {
            conversation_id: "nope".into(),
            messages: vec![new_message(Role::User, "x")],
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&error), vec!["conversation_id"]);
    let error = alice
        .append_messages(AppendMessagesRequest {
            conversation_id: Uuid::now_v7().to_string(),
            messages: vec![new_message(Role::User, "x")],
        })
        .await
        .unwrap_err();
    assert_status(&error, Code::NotFound, "CONVERSATION_NOT_FOUND");

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&history.pool).await.unwrap();
    assert_eq!(rows, 0);
    let got = alice.get_conversation(GetConversationRequest { conversation_id: id }).await.unwrap().into_inner();
    assert_eq!(got.message_count, 0);
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn list_messages_returns_pages_in_either_order(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let id = create(&mut alice, "pages").await.conversation_id;
    let mut answer = new_message(Role::Assistant, "two");
    answer.sources = Some(sources());
    let stored =
        append(&mut alice, &id, vec![new_message(Role::User, "one"), answer, new_message(Role::User, "three")]).await;

    let page = alice
        .list_messages(ListMessagesRequest { conversation_id: id.clone(), page_size: 2, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.messages, stored[..2].to_vec(), "every field as stored");
    let rest = alice
        .list_messages(ListMessagesRequest {
            conversation_id: id.clone(),
            page_size: 2,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.messages, stored[2..].to_vec());
    assert_eq!(rest.next_page_token, "");

    let newest = alice
        .list_messages(ListMessagesRequest {
            conversation_id: id.clone(),
            order: Order::NewestFirst as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(newest.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![3, 2, 1]);
    assert_eq!(newest.next_page_token, "");

    let limited = alice
        .list_messages(ListMessagesRequest { conversation_id: id.clone(), limit: 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(limited.messages.len(), 1);
    assert_ne!(limited.next_page_token, "", "a limit still says where to resume");

    let empty = create(&mut alice, "empty").await.conversation_id;
    let page = alice
        .list_messages(ListMessagesRequest { conversation_id: empty, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((page.messages.len(), page.next_page_token.as_str()), (0, ""));
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn list_messages_errors(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let id = create(&mut alice, "x").await.conversation_id;
    let error = alice
        .list_messages(ListMessagesRequest {
            conversation_id: "x".into(),
            page_size: -5,
            order: 7,
            limit: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(&error, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&error), vec!["conversation_id", "order", "page_size", "limit"]);
    let error = alice
        .list_messages(ListMessagesRequest { conversation_id: id, page_token: "AAAA".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_status(&error, Code::InvalidArgument, "PAGE_TOKEN_INVALID");
    let error = alice
        .list_messages(ListMessagesRequest { conversation_id: Uuid::now_v7().to_string(), ..Default::default() })
        .await
        .unwrap_err();
    assert_status(&error, Code::NotFound, "CONVERSATION_NOT_FOUND");
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn stream_messages_sends_every_page_then_ends(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let id = create(&mut alice, "stream").await.conversation_id;
    let stored = append(&mut alice, &id, (1..=5).map(|i| new_message(Role::User, &i.to_string())).collect()).await;
    let mut stream = alice
        .stream_messages(ListMessagesRequest { conversation_id: id.clone(), page_size: 2, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let mut pages = Vec::new();
    while let Some(page) = stream.message().await.unwrap() {
        pages.push(page);
    }
    assert_eq!(pages.iter().map(|p| p.messages.len()).collect::<Vec<_>>(), vec![2, 2, 1]);
    assert_eq!(pages.iter().flat_map(|p| p.messages.clone()).collect::<Vec<_>>(), stored);
    assert!(pages[0].next_page_token.len() > 10 && pages[1].next_page_token.len() > 10);
    assert_eq!(pages[2].next_page_token, "");
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn stream_messages_errors_are_plain_statuses(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let error = alice
        .stream_messages(ListMessagesRequest { conversation_id: Uuid::now_v7().to_string(), ..Default::default() })
        .await
        .unwrap_err();
    assert_status(&error, Code::NotFound, "CONVERSATION_NOT_FOUND");
    let error = alice
        .stream_messages(ListMessagesRequest { conversation_id: "bad".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&error), vec!["conversation_id"]);
    let mut anonymous = history.client_with_token(None).await;
    let error = anonymous.stream_messages(ListMessagesRequest::default()).await.unwrap_err();
    assert_status(&error, Code::Unauthenticated, "TOKEN_MISSING");
}
