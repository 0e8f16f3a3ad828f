//! The SQL. Every query is filtered by the caller's `user_id`; pages are
//! keyset queries on the indexes of the migration (never OFFSET, never a
//! COUNT per page). Functions take any executor, so they run on the pool or
//! inside a transaction.

use std::{collections::HashMap, time::Instant};

use prometheus_client::{
    metrics::{counter::Counter, histogram::Histogram},
    registry::Registry,
};
use serde_json::{Map, Value as Json};
use sqlx::{
    Connection as _, FromRow, PgConnection, PgExecutor, PgPool, Postgres, Row as _, pool::PoolConnection,
    postgres::PgRow, types::Json as Jsonb,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    error::Error,
    json::{ProtoStruct, ProtoValue},
    page_token::{ConversationCursor, MessageOrder},
    validate::NewMessageInput,
};

/// The pool, with the time callers wait for a connection measured.
#[derive(Debug, Clone)]
pub struct Db {
    pool: PgPool,
    prepared_statements: bool,
    acquire_seconds: Histogram,
    acquire_timeouts: Counter,
}

impl Db {
    /// Wraps `pool`. Without `prepared_statements` (a transaction-mode pooler
    /// that cannot keep them, such as PgBouncer before 1.21), every unit of
    /// work runs in an explicit transaction, so all of its protocol messages
    /// reach the same server connection.
    pub fn new(pool: PgPool, prepared_statements: bool) -> Self {
        let buckets = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
        Self {
            pool,
            prepared_statements,
            acquire_seconds: Histogram::new(buckets),
            acquire_timeouts: Counter::default(),
        }
    }

    /// Runs one unit of work on a pooled connection and returns the
    /// connection to the pool before returning.
    pub async fn run<T>(&self, work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, Error>) -> Result<T, Error> {
        let mut connection = self.acquire().await?;
        if self.prepared_statements {
            return work(&mut connection).await;
        }
        let mut transaction = connection.begin().await?;
        match work(&mut transaction).await {
            Ok(value) => {
                transaction.commit().await?;
                Ok(value)
            }
            Err(error) => {
                let _ = transaction.rollback().await;
                Err(error)
            }
        }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A pooled connection; `UNAVAILABLE` after the acquire timeout. Hold it
    /// for one unit of work only: streams drop it before they send.
    pub async fn acquire(&self) -> Result<PoolConnection<Postgres>, Error> {
        let started = Instant::now();
        let connection = self.pool.acquire().await;
        self.acquire_seconds.observe(started.elapsed().as_secs_f64());
        if let Err(sqlx::Error::PoolTimedOut) = &connection {
            self.acquire_timeouts.inc();
        }
        Ok(connection?)
    }

    /// Registers the wait histogram and the timeout counter.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "db_pool_acquire_seconds",
            "Time calls waited for a pooled connection",
            self.acquire_seconds.clone(),
        );
        registry.register(
            "db_pool_acquire_timeouts",
            "Calls that found no free connection within DATABASE_ACQUIRE_TIMEOUT",
            self.acquire_timeouts.clone(),
        );
    }
}

/// A conversation as stored.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct ConversationRow {
    /// Id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// JSON object.
    pub metadata: Jsonb<ProtoStruct>,
    /// Highest seq (= number of messages).
    pub last_seq: i64,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change or append.
    pub updated_at: OffsetDateTime,
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct MessageRow {
    /// Id.
    pub id: Uuid,
    /// Its conversation.
    pub conversation_id: Uuid,
    /// Position, from 1.
    pub seq: i64,
    /// `user`, `assistant`, `system` or `tool`.
    pub role: String,
    /// Text.
    pub content: String,
    /// JSON, or NULL.
    pub sources: Option<Jsonb<ProtoValue>>,
    /// Append time.
    pub created_at: OffsetDateTime,
}

/// Outcome of a create: new, or the identical one a retry finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Inserted now.
    New,
    /// Already stored with the same title and metadata.
    Replayed,
}

/// Inserts a conversation, or finds the identical one stored by an earlier
/// attempt with the same id.
pub async fn create_conversation(
    connection: &mut PgConnection,
    user_id: &str,
    id: Uuid,
    title: &str,
    metadata: &Map<String, Json>,
) -> Result<(ConversationRow, Created), Error> {
    let inserted: Option<ConversationRow> = sqlx::query_as(
        "INSERT INTO conversations (id, user_id, title, metadata) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO NOTHING \
         RETURNING id, title, metadata, last_seq, created_at, updated_at",
    )
    .bind(id)
    .bind(user_id)
    .bind(title)
    .bind(Jsonb(metadata))
    .fetch_optional(&mut *connection)
    .await?;
    if let Some(row) = inserted {
        return Ok((row, Created::New));
    }
    // The id is taken: a retry of this very create, or a different conversation.
    let same: Option<ConversationRow> = sqlx::query_as(
        "SELECT id, title, metadata, last_seq, created_at, updated_at FROM conversations \
         WHERE id = $1 AND user_id = $2 AND title = $3 AND metadata = $4",
    )
    .bind(id)
    .bind(user_id)
    .bind(title)
    .bind(Jsonb(metadata))
    .fetch_optional(&mut *connection)
    .await?;
    same.map(|row| (row, Created::Replayed)).ok_or(Error::ConversationExists(id))
}

/// One of the caller's conversations.
pub async fn get_conversation(
    executor: impl PgExecutor<'_>,
    user_id: &str,
    id: Uuid,
) -> Result<ConversationRow, Error> {
    sqlx::query_as("SELECT id, title, metadata, last_seq, created_at, updated_at FROM conversations WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .fetch_optional(executor)
        .await?
        .ok_or(Error::ConversationNotFound(id))
}

/// Sets the title and/or metadata (each only when given) and bumps `updated_at`.
pub async fn update_conversation(
    executor: impl PgExecutor<'_>,
    user_id: &str,
    id: Uuid,
    title: Option<&str>,
    metadata: Option<&Map<String, Json>>,
) -> Result<ConversationRow, Error> {
    sqlx::query_as(
        "UPDATE conversations SET title = COALESCE($3, title), metadata = COALESCE($4, metadata), updated_at = now() \
         WHERE id = $1 AND user_id = $2 \
         RETURNING id, title, metadata, last_seq, created_at, updated_at",
    )
    .bind(id)
    .bind(user_id)
    .bind(title)
    .bind(metadata.map(Jsonb))
    .fetch_optional(executor)
    .await?
    .ok_or(Error::ConversationNotFound(id))
}

/// Deletes a conversation; its messages go with it (ON DELETE CASCADE).
pub async fn delete_conversation(executor: impl PgExecutor<'_>, user_id: &str, id: Uuid) -> Result<(), Error> {
    let deleted = sqlx::query("DELETE FROM conversations WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(executor)
        .await?
        .rows_affected();
    if deleted == 0 { Err(Error::ConversationNotFound(id)) } else { Ok(()) }
}

/// Up to `limit` of the caller's conversations after `cursor`, most recently
/// active first (index `conversations_user_recent`).
pub async fn list_conversations(
    executor: impl PgExecutor<'_>,
    user_id: &str,
    cursor: Option<ConversationCursor>,
    limit: i64,
) -> Result<Vec<ConversationRow>, Error> {
    let rows = match cursor {
        None => {
            sqlx::query_as(
                "SELECT id, title, metadata, last_seq, created_at, updated_at FROM conversations \
                 WHERE user_id = $1 \
                 ORDER BY updated_at DESC, id DESC LIMIT $2",
            )
            .bind(user_id)
            .bind(limit)
            .fetch_all(executor)
            .await?
        }
        Some(cursor) => {
            sqlx::query_as(
                "SELECT id, title, metadata, last_seq, created_at, updated_at FROM conversations \
                 WHERE user_id = $1 AND (updated_at, id) < ($2, $3) \
                 ORDER BY updated_at DESC, id DESC LIMIT $4",
            )
            .bind(user_id)
            .bind(cursor.updated_at)
            .bind(cursor.id)
            .bind(limit)
            .fetch_all(executor)
            .await?
        }
    };
    Ok(rows)
}

/// The SQL of a message page, oldest first: the conversation (ownership and
/// `last_seq`) joined with up to `$4` messages after seq `$3`, in one round
/// trip, on the `messages_conversation_seq` index. No outer ORDER BY: it
/// would add a Sort node; the rows are put in order in Rust instead.
pub const PAGE_OLDEST_FIRST: &str = "\
SELECT c.last_seq, m.id, m.seq, m.role, m.content, m.sources, m.created_at \
FROM conversations c \
LEFT JOIN LATERAL ( \
    SELECT id, seq, role, content, sources, created_at FROM messages \
    WHERE conversation_id = c.id AND user_id = c.user_id AND seq > $3 \
    ORDER BY seq ASC LIMIT $4 \
) m ON true \
WHERE c.id = $1 AND c.user_id = $2";

/// The SQL of a message page, newest first (messages before seq `$3`).
pub const PAGE_NEWEST_FIRST: &str = "\
SELECT c.last_seq, m.id, m.seq, m.role, m.content, m.sources, m.created_at \
FROM conversations c \
LEFT JOIN LATERAL ( \
    SELECT id, seq, role, content, sources, created_at FROM messages \
    WHERE conversation_id = c.id AND user_id = c.user_id AND seq < $3 \
    ORDER BY seq DESC LIMIT $4 \
) m ON true \
WHERE c.id = $1 AND c.user_id = $2";

struct PageRow {
    last_seq: i64,
    id: Option<Uuid>,
    seq: Option<i64>,
    role: Option<String>,
    content: Option<String>,
    sources: Option<Jsonb<ProtoValue>>,
    created_at: Option<OffsetDateTime>,
}

// By position, not by name: this runs for every message of every page.
impl<'r> FromRow<'r, PgRow> for PageRow {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        Ok(Self {
            last_seq: row.try_get(0)?,
            id: row.try_get(1)?,
            seq: row.try_get(2)?,
            role: row.try_get(3)?,
            content: row.try_get(4)?,
            sources: row.try_get(5)?,
            created_at: row.try_get(6)?,
        })
    }
}

/// One page of messages and whether more follow.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    /// The messages, in the requested order.
    pub messages: Vec<MessageRow>,
    /// Whether messages exist beyond the last one returned.
    pub more: bool,
}

/// Up to `limit` messages of the caller's conversation after position
/// `after` (a seq; `None` starts at the oldest or newest end).
pub async fn message_page(
    executor: impl PgExecutor<'_>,
    user_id: &str,
    conversation_id: Uuid,
    order: MessageOrder,
    after: Option<i64>,
    limit: i64,
) -> Result<MessagePage, Error> {
    let (sql, start) = match order {
        MessageOrder::OldestFirst => (PAGE_OLDEST_FIRST, after.unwrap_or(0)),
        MessageOrder::NewestFirst => (PAGE_NEWEST_FIRST, after.unwrap_or(i64::MAX)),
    };
    let rows: Vec<PageRow> =
        sqlx::query_as(sql).bind(conversation_id).bind(user_id).bind(start).bind(limit).fetch_all(executor).await?;
    let last_seq = rows.first().ok_or(Error::ConversationNotFound(conversation_id))?.last_seq;
    let mut rows = rows;
    match order {
        MessageOrder::OldestFirst => rows.sort_unstable_by_key(|row| row.seq),
        MessageOrder::NewestFirst => rows.sort_unstable_by_key(|row| std::cmp::Reverse(row.seq)),
    }
    let mut messages = Vec::with_capacity(rows.len());
    for row in rows {
        if let (Some(id), Some(seq), Some(role), Some(content), Some(created_at)) =
            (row.id, row.seq, row.role, row.content, row.created_at)
        {
            messages.push(MessageRow { id, conversation_id, seq, role, content, sources: row.sources, created_at });
        }
    }
    // Seqs have no gaps, so the conversation's last_seq tells whether more
    // follow without another query.
    let more = match (order, messages.last()) {
        (_, None) => false,
        (MessageOrder::OldestFirst, Some(last)) => last.seq < last_seq,
        (MessageOrder::NewestFirst, Some(last)) => last.seq > 1,
    };
    Ok(MessagePage { messages, more })
}

/// Appends messages in one transaction: locks the conversation row (so
/// concurrent appends serialize and seqs stay gap-free), returns stored
/// messages for retried client ids (or `MessageExists` if the stored one
/// differs), inserts the rest with the next seqs and bumps `updated_at`.
/// Returns the messages in request order.
pub async fn append_messages(
    connection: &mut PgConnection,
    user_id: &str,
    conversation_id: Uuid,
    inputs: &[NewMessageInput],
) -> Result<Vec<MessageRow>, Error> {
    let mut tx = connection.begin().await?;
    let last_seq: i64 =
        sqlx::query_scalar("SELECT last_seq FROM conversations WHERE id = $1 AND user_id = $2 FOR UPDATE")
            .bind(conversation_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::ConversationNotFound(conversation_id))?;

    // Retries: client-chosen ids that are already stored must match exactly.
    let retried: Vec<&NewMessageInput> = inputs.iter().filter(|input| input.client_id).collect();
    let mut stored: HashMap<Uuid, MessageRow> = HashMap::new();
    if !retried.is_empty() {
        #[derive(FromRow)]
        struct Existing {
            #[sqlx(flatten)]
            row: MessageRow,
            same: bool,
        }
        let existing: Vec<Existing> = sqlx::query_as(
            "SELECT m.id, m.conversation_id, m.seq, m.role, m.content, m.sources, m.created_at, \
                    (m.conversation_id = $1 AND m.user_id = $2 AND m.role = i.role AND m.content = i.content \
                     AND m.sources IS NOT DISTINCT FROM i.sources) AS same \
             FROM UNNEST($3::uuid[], $4::text[], $5::text[], $6::jsonb[]) AS i(id, role, content, sources) \
             JOIN messages m ON m.id = i.id",
        )
        .bind(conversation_id)
        .bind(user_id)
        .bind(retried.iter().map(|input| input.id).collect::<Vec<_>>())
        .bind(retried.iter().map(|input| input.role).collect::<Vec<_>>())
        .bind(retried.iter().map(|input| input.content.as_str()).collect::<Vec<_>>())
        .bind(retried.iter().map(|input| input.sources.as_ref().map(Jsonb)).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        for Existing { row, same } in existing {
            if !same {
                return Err(Error::MessageExists(row.id));
            }
            stored.insert(row.id, row);
        }
    }

    let fresh: Vec<&NewMessageInput> = inputs.iter().filter(|input| !stored.contains_key(&input.id)).collect();
    if !fresh.is_empty() {
        let first = last_seq + 1;
        let new_last = last_seq + fresh.len() as i64;
        let inserted: Vec<MessageRow> = sqlx::query_as(
            "INSERT INTO messages (id, conversation_id, user_id, seq, role, content, sources) \
             SELECT m.id, $1, $2, m.seq, m.role, m.content, m.sources \
             FROM UNNEST($3::uuid[], $4::int8[], $5::text[], $6::text[], $7::jsonb[]) AS m(id, seq, role, content, sources) \
             RETURNING id, conversation_id, seq, role, content, sources, created_at",
        )
        .bind(conversation_id)
        .bind(user_id)
        .bind(fresh.iter().map(|input| input.id).collect::<Vec<_>>())
        .bind((first..=new_last).collect::<Vec<i64>>())
        .bind(fresh.iter().map(|input| input.role).collect::<Vec<_>>())
        .bind(fresh.iter().map(|input| input.content.as_str()).collect::<Vec<_>>())
        .bind(fresh.iter().map(|input| input.sources.as_ref().map(Jsonb)).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await
        .map_err(|error| match &error {
            // Same id stored concurrently under another conversation: a retry
            // will find it and answer precisely.
            sqlx::Error::Database(db) if db.constraint() == Some("messages_pkey") => Error::Aborted(error),
            _ => Error::from(error),
        })?;
        sqlx::query("UPDATE conversations SET last_seq = $2, updated_at = now() WHERE id = $1")
            .bind(conversation_id)
            .bind(new_last)
            .execute(&mut *tx)
            .await?;
        stored.extend(inserted.into_iter().map(|row| (row.id, row)));
    }
    tx.commit().await?;

    inputs
        .iter()
        .map(|input| stored.remove(&input.id).ok_or_else(|| Error::Database(sqlx::Error::RowNotFound)))
        .collect()
}
