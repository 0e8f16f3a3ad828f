//! Keyset pagination over 10,000 messages: unary pages and streams, both
//! orders, several page sizes, resumption from every token, and foreign tokens.

use chat_proto::history::v1::{ListMessagesRequest, ListMessagesResponse, NewMessage, Order, Role};
use sqlx::PgPool;
use test_support::history::{Client, TestHistory};
use tonic::Code;

use crate::{append, assert_status, create, new_message};

const TOTAL: i64 = 10_000;

async fn conversation_with_messages(client: &mut Client) -> String {
    let id = create(client, "ten thousand").await.conversation_id;
    for batch in 0..(TOTAL / 100) {
        let messages: Vec<NewMessage> = (0..100)
            .map(|i| {
                let n = batch * 100 + i + 1;
                let role = if n % 2 == 1 { Role::User } else { Role::Assistant };
                new_message(role, &format!("message {n}"))
            })
            .collect();
        append(client, &id, messages).await;
    }
    id
}

fn request(id: &str, order: Order, page_size: i32, page_token: String) -> ListMessagesRequest {
    ListMessagesRequest { conversation_id: id.to_owned(), page_size, page_token, order: order as i32, limit: 0 }
}

fn expected(order: Order) -> Vec<i64> {
    match order {
        Order::NewestFirst => (1..=TOTAL).rev().collect(),
        _ => (1..=TOTAL).collect(),
    }
}

/// Checks one page's messages are exactly seq, content and role as appended.
fn check_page(page: &ListMessagesResponse) {
    for message in &page.messages {
        assert_eq!(message.content, format!("message {}", message.seq));
        let role = if message.seq % 2 == 1 { Role::User } else { Role::Assistant };
        assert_eq!(message.role, role as i32);
    }
}

async fn read_all_unary(client: &mut Client, id: &str, order: Order, page_size: i32) -> Vec<ListMessagesResponse> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = client.list_messages(request(id, order, page_size, token)).await.unwrap().into_inner();
        check_page(&page);
        token = page.next_page_token.clone();
        pages.push(page);
        if token.is_empty() {
            return pages;
        }
    }
}

async fn read_all_streamed(client: &mut Client, id: &str, order: Order, page_size: i32) -> Vec<ListMessagesResponse> {
    let mut stream = client.stream_messages(request(id, order, page_size, String::new())).await.unwrap().into_inner();
    let mut pages = Vec::new();
    while let Some(page) = stream.message().await.unwrap() {
        check_page(&page);
        pages.push(page);
    }
    pages
}

fn seqs(pages: &[ListMessagesResponse]) -> Vec<i64> {
    pages.iter().flat_map(|page| page.messages.iter().map(|m| m.seq)).collect()
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn ten_thousand_messages_read_back_exactly_in_every_way(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let id = conversation_with_messages(&mut alice).await;

    for order in [Order::OldestFirst, Order::NewestFirst] {
        for page_size in [7, 100, 1000, 5000] {
            let effective = page_size.min(1000) as usize;
            let unary = read_all_unary(&mut alice, &id, order, page_size).await;
            assert_eq!(seqs(&unary), expected(order), "ListMessages {order:?} page_size {page_size}");
            assert!(unary.iter().all(|page| page.messages.len() <= effective));
            assert_eq!(unary.len(), (TOTAL as usize).div_ceil(effective));

            let streamed = read_all_streamed(&mut alice, &id, order, page_size).await;
            assert_eq!(seqs(&streamed), expected(order), "StreamMessages {order:?} page_size {page_size}");
            assert_eq!(streamed.len(), unary.len());
            // Stream pages and unary pages carry the same resume tokens.
            assert_eq!(
                streamed.iter().map(|p| p.next_page_token.clone()).collect::<Vec<_>>(),
                unary.iter().map(|p| p.next_page_token.clone()).collect::<Vec<_>>()
            );
        }
    }
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn every_page_token_resumes_exactly_after_its_page(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let id = conversation_with_messages(&mut alice).await;

    for order in [Order::OldestFirst, Order::NewestFirst] {
        let pages = read_all_streamed(&mut alice, &id, order, 100).await;
        for page in pages.iter().filter(|page| !page.next_page_token.is_empty()) {
            let last = page.messages.last().unwrap().seq;
            // Resume with a unary call...
            let next =
                alice.list_messages(request(&id, order, 3, page.next_page_token.clone())).await.unwrap().into_inner();
            let step = if order == Order::NewestFirst { -1 } else { 1 };
            assert_eq!(seqs(&[next]), vec![last + step, last + 2 * step, last + 3 * step]);
        }
        // ...and a broken stream resumes with a new stream from its last token.
        let middle = pages[pages.len() / 2].clone();
        let mut resumed = alice
            .stream_messages(request(&id, order, 1000, middle.next_page_token.clone()))
            .await
            .unwrap()
            .into_inner();
        let mut rest = Vec::new();
        while let Some(page) = resumed.message().await.unwrap() {
            rest.extend(page.messages.into_iter().map(|m| m.seq));
        }
        let position = expected(order).iter().position(|seq| *seq == middle.messages.last().unwrap().seq).unwrap();
        assert_eq!(rest, expected(order)[position + 1..].to_vec());
    }
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn limit_bounds_a_stream_and_its_last_token_resumes(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let id = create(&mut alice, "limit").await.conversation_id;
    append(&mut alice, &id, (1..=25).map(|i| new_message(Role::User, &format!("message {i}"))).collect()).await;
    let mut stream = alice
        .stream_messages(ListMessagesRequest {
            conversation_id: id.clone(),
            page_size: 10,
            limit: 15,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut pages = Vec::new();
    while let Some(page) = stream.message().await.unwrap() {
        pages.push(page);
    }
    assert_eq!(seqs(&pages), (1..=15).collect::<Vec<_>>());
    let token = pages.last().unwrap().next_page_token.clone();
    let rest = alice.list_messages(request(&id, Order::OldestFirst, 100, token)).await.unwrap().into_inner();
    assert_eq!(seqs(&[rest]), (16..=25).collect::<Vec<_>>());
}

#[sqlx::test(migrator = "history_service::MIGRATOR")]
async fn a_token_from_another_conversation_or_order_is_rejected(pool: PgPool) {
    let history = TestHistory::start(pool).await;
    let mut alice = history.client("alice").await;
    let first = create(&mut alice, "first").await.conversation_id;
    let second = create(&mut alice, "second").await.conversation_id;
    for id in [&first, &second] {
        append(&mut alice, id, (1..=3).map(|i| new_message(Role::User, &format!("message {i}"))).collect()).await;
    }
    let token = alice
        .list_messages(request(&first, Order::OldestFirst, 1, String::new()))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;

    let error = alice.list_messages(request(&second, Order::OldestFirst, 1, token.clone())).await.unwrap_err();
    let message = assert_status(&error, Code::InvalidArgument, "PAGE_TOKEN_INVALID");
    assert!(message.contains("another conversation"), "{message}");
    let error = alice.list_messages(request(&first, Order::NewestFirst, 1, token.clone())).await.unwrap_err();
    let message = assert_status(&error, Code::InvalidArgument, "PAGE_TOKEN_INVALID");
    assert!(message.contains("the other order"), "{message}");
    let error = alice.stream_messages(request(&second, Order::OldestFirst, 1, token.clone())).await.unwrap_err();
    assert_status(&error, Code::InvalidArgument, "PAGE_TOKEN_INVALID");

    // Tampering with any character is caught.
    let mut tampered: Vec<char> = token.chars().collect();
    tampered[5] = if tampered[5] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let error = alice.list_messages(request(&first, Order::OldestFirst, 1, tampered)).await.unwrap_err();
    let message = assert_status(&error, Code::InvalidArgument, "PAGE_TOKEN_INVALID");
    assert!(message.contains("malformed or was altered"), "{message}");
}
