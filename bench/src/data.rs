//! The data set, loaded with COPY: 1,000 users, 10,000 conversations of 100
//! messages (1,000,000 messages of ~300 bytes, assistants' with a small
//! `sources` array), one deep conversation of 200,000 messages, and one empty
//! conversation per load-generator client for the append scenarios.

use std::fmt::Write as _;

use anyhow::Context as _;
use sqlx::{PgPool, postgres::PgPoolCopyExt as _};
use uuid::Uuid;

/// Users with ordinary conversations.
pub(crate) const USERS: usize = 1_000;
/// Conversations per ordinary user.
pub(crate) const CONVERSATIONS_PER_USER: usize = 10;
/// Messages per ordinary conversation.
pub(crate) const MESSAGES_PER_CONVERSATION: usize = 100;
/// Messages in the deep conversation.
pub(crate) const DEEP_MESSAGES: i64 = 200_000;
/// Owner of the deep conversation.
pub(crate) const DEEP_USER: &str = "deep-user";
/// Owner of the append conversations.
pub(crate) const APPEND_USER: &str = "bench-appender";

/// The deep conversation's id.
pub(crate) fn deep_conversation() -> Uuid {
    Uuid::from_u128(0x0000dee9_0000_4000_8000_000000000001)
}

/// The append conversation of client `n` (1-based), the same id pgbench
/// computes from `:client_id` (`lpad(n, 32, '0')::uuid`).
pub(crate) fn append_conversation(n: usize) -> Uuid {
    Uuid::parse_str(&format!("{n:032}")).expect("uuid from digits")
}

const CHUNK: usize = 4 << 20;

fn content(seq: i64) -> String {
    // ~300 bytes of plain text, different per message.
    let mut text = format!("Message {seq}: ");
    while text.len() < 300 {
        text.push_str("keyset pagination keeps every page as cheap as the first one; ");
    }
    text.truncate(300);
    text
}

fn sources(seq: i64) -> String {
    format!(r#"[{{"title": "Source {seq}", "url": "https://docs.example.com/{seq}", "score": 0.87}}]"#)
}

/// One message line in COPY text format.
fn message_line(out: &mut String, id: Uuid, conversation: Uuid, user: &str, seq: i64) {
    let (role, sources) = if seq % 2 == 1 { ("user", "\\N".to_owned()) } else { ("assistant", sources(seq)) };
    let _ = writeln!(out, "{id}\t{conversation}\t{user}\t{seq}\t{role}\t{}\t{sources}", content(seq));
}

async fn copy(pool: &PgPool, statement: &'static str, lines: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let mut copy = pool.copy_in_raw(statement).await?;
    let mut buffer = String::with_capacity(CHUNK + 4096);
    for line in lines {
        buffer.push_str(&line);
        if buffer.len() >= CHUNK {
            copy.send(buffer.as_bytes()).await?;
            buffer.clear();
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer.as_bytes()).await?;
    }
    copy.finish().await?;
    Ok(())
}

/// Loads the data set into an empty, migrated database.
pub(crate) async fn load(pool: &PgPool, append_clients: usize) -> anyhow::Result<()> {
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM conversations").fetch_one(pool).await?;
    anyhow::ensure!(existing == 0, "the bench database is not empty");

    let mut conversations: Vec<(Uuid, String, i64)> =
        Vec::with_capacity(USERS * CONVERSATIONS_PER_USER + 1 + append_clients);
    for user in 0..USERS {
        for _ in 0..CONVERSATIONS_PER_USER {
            conversations.push((Uuid::new_v4(), format!("user{user:04}"), MESSAGES_PER_CONVERSATION as i64));
        }
    }
    conversations.push((deep_conversation(), DEEP_USER.to_owned(), DEEP_MESSAGES));
    for n in 1..=append_clients {
        conversations.push((append_conversation(n), APPEND_USER.to_owned(), 0));
    }
    copy(
        pool,
        "COPY conversations (id, user_id, title, metadata, last_seq) FROM STDIN",
        conversations.iter().map(|(id, user, last)| {
            format!("{id}\t{user}\tConversation of {user}\t{{\"model\": \"rag-1\"}}\t{last}\n")
        }),
    )
    .await
    .context("COPY conversations")?;

    let ordinary = conversations[..USERS * CONVERSATIONS_PER_USER].iter().flat_map(|(id, user, _)| {
        (1..=MESSAGES_PER_CONVERSATION as i64).map(move |seq| {
            let mut line = String::with_capacity(512);
            message_line(&mut line, Uuid::new_v4(), *id, user, seq);
            line
        })
    });
    let deep = (1..=DEEP_MESSAGES).map(|seq| {
        let mut line = String::with_capacity(512);
        message_line(&mut line, Uuid::new_v4(), deep_conversation(), DEEP_USER, seq);
        line
    });
    copy(
        pool,
        "COPY messages (id, conversation_id, user_id, seq, role, content, sources) FROM STDIN",
        ordinary.chain(deep),
    )
    .await
    .context("COPY messages")?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(())
}
