//! The `history.v1.HistoryService` gRPC implementation: validation, the
//! caller's identity, the store, and proto conversion. The caller comes from
//! the identity layer ([`Caller`]); every store call is scoped to its user id.

use std::{pin::Pin, sync::Arc};

use chat_proto::history::v1::{
    AppendMessagesRequest, AppendMessagesResponse, Conversation, CreateConversationRequest, DeleteConversationRequest,
    GetConversationRequest, ListConversationsRequest, ListConversationsResponse, ListMessagesRequest,
    ListMessagesResponse, Message, UpdateConversationRequest, history_service_server::HistoryService,
};
use prometheus_client::{metrics::gauge::Gauge, registry::Registry};
use service_kit::{Caller, status::FieldViolation};
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    db::{self, ConversationRow, Db, MessageRow},
    error::Error,
    page_token::{self, ConversationCursor, MessageOrder},
    validate::{self, role_from_name},
};

/// Pages a stream may have ready ahead of a slow client. Small on purpose:
/// the pages wait in memory, never in a database connection.
pub const STREAM_BUFFER_PAGES: usize = 2;

/// Collects field violations so one response can report all of them.
#[derive(Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    fn check<T>(&mut self, result: Result<T, FieldViolation>) -> Option<T> {
        result.map_err(|violation| self.0.push(violation)).ok()
    }

    fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() { Ok(()) } else { Err(Error::InvalidArgument(self.0)) }
    }
}

/// Server-streaming tasks: tracked so shutdown can stop and await them,
/// counted so operators (and tests) can see them.
#[derive(Debug, Clone)]
pub struct Streams {
    tracker: TaskTracker,
    stop: CancellationToken,
    active: Arc<watch::Sender<usize>>,
    waiting_on_client: Arc<watch::Sender<usize>>,
    active_gauge: Gauge,
    waiting_gauge: Gauge,
}

impl Default for Streams {
    fn default() -> Self {
        Self::new()
    }
}

impl Streams {
    /// No streams yet.
    pub fn new() -> Self {
        Self {
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            active: Arc::new(watch::Sender::new(0)),
            waiting_on_client: Arc::new(watch::Sender::new(0)),
            active_gauge: Gauge::default(),
            waiting_gauge: Gauge::default(),
        }
    }

    /// Registers the stream gauges.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register("streams_active", "StreamMessages calls still sending", self.active_gauge.clone());
        registry.register(
            "streams_waiting_on_client",
            "Streams waiting for a slow client (holding no database connection)",
            self.waiting_gauge.clone(),
        );
    }

    fn add_active(&self, delta: i64) {
        self.active.send_modify(|n| *n = n.saturating_add_signed(delta as isize));
        self.active_gauge.inc_by(delta);
    }

    fn add_waiting(&self, delta: i64) {
        self.waiting_on_client.send_modify(|n| *n = n.saturating_add_signed(delta as isize));
        self.waiting_gauge.inc_by(delta);
    }

    /// Number of streams still sending.
    pub fn active(&self) -> watch::Receiver<usize> {
        self.active.subscribe()
    }

    /// Number of streams waiting for a slow client to take the next page
    /// (holding no database connection while they wait).
    pub fn waiting_on_client(&self) -> watch::Receiver<usize> {
        self.waiting_on_client.subscribe()
    }

    /// Stops every stream and waits for their tasks to end.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct HistoryGrpc {
    db: Db,
    streams: Streams,
}

impl HistoryGrpc {
    /// A service on `db`, running streams under `streams`.
    pub fn new(db: Db, streams: Streams) -> Self {
        Self { db, streams }
    }
}

fn timestamp(time: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.unix_timestamp(), nanos: time.nanosecond() as i32 }
}

fn conversation(row: ConversationRow) -> Conversation {
    Conversation {
        conversation_id: row.id.to_string(),
        title: row.title,
        metadata: Some(row.metadata.0.0),
        message_count: row.last_seq,
        created_at: Some(timestamp(row.created_at)),
        updated_at: Some(timestamp(row.updated_at)),
    }
}

fn message(row: MessageRow) -> Message {
    Message {
        message_id: row.id.to_string(),
        conversation_id: row.conversation_id.to_string(),
        seq: row.seq,
        role: role_from_name(&row.role) as i32,
        content: row.content,
        sources: row.sources.map(|sources| sources.0.0),
        created_at: Some(timestamp(row.created_at)),
    }
}

/// A validated ListMessages/StreamMessages request.
struct PageRequest {
    conversation_id: Uuid,
    order: MessageOrder,
    page_size: usize,
    limit: Option<u64>,
    after: Option<i64>,
}

fn page_request(request: ListMessagesRequest) -> Result<PageRequest, Error> {
    let mut violations = Violations::default();
    let conversation_id = violations.check(validate::required_id("conversation_id", &request.conversation_id));
    let order = violations.check(validate::order("order", request.order));
    let page_size = violations.check(validate::page_size("page_size", request.page_size));
    let limit = violations.check(validate::limit("limit", request.limit));
    violations.finish()?;
    let (Some(conversation_id), Some(order), Some(page_size), Some(limit)) = (conversation_id, order, page_size, limit)
    else {
        return Err(Error::invalid("request", "invalid"));
    };
    let after = if request.page_token.is_empty() {
        None
    } else {
        Some(page_token::decode_messages(&request.page_token, conversation_id, order)?)
    };
    Ok(PageRequest { conversation_id, order, page_size, limit, after })
}

impl PageRequest {
    /// How many messages the next page may hold, given what was sent so far.
    fn next_fetch(&self, sent: u64) -> i64 {
        let left = self.limit.map_or(u64::MAX, |limit| limit.saturating_sub(sent));
        left.min(self.page_size as u64) as i64
    }
}

/// Fetches one page (the pool connection is returned before this resolves)
/// and builds its response. Returns the response, the position after it and
/// whether more messages follow.
async fn fetch_page(
    db: &Db,
    user_id: &str,
    request: &PageRequest,
    after: Option<i64>,
    fetch: i64,
) -> Result<(ListMessagesResponse, Option<i64>, bool), Error> {
    // The connection goes back to the pool when `run` returns, before
    // anything is sent.
    let page = db
        .run(async |connection| {
            db::message_page(connection, user_id, request.conversation_id, request.order, after, fetch).await
        })
        .await?;
    let last = page.messages.last().map(|row| row.seq);
    let next_page_token = match (page.more, last) {
        (true, Some(seq)) => page_token::encode_messages(request.conversation_id, request.order, seq),
        _ => String::new(),
    };
    let messages = page.messages.into_iter().map(message).collect();
    Ok((ListMessagesResponse { messages, next_page_token }, last.or(after), page.more))
}

type MessageStream = Pin<Box<dyn Stream<Item = Result<ListMessagesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl HistoryService for HistoryGrpc {
    async fn create_conversation(
        &self,
        request: Request<CreateConversationRequest>,
    ) -> Result<Response<Conversation>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let mut violations = Violations::default();
        let id = violations.check(validate::optional_id("conversation_id", &request.conversation_id));
        violations.check(validate::title("title", &request.title));
        let metadata = violations.check(validate::metadata("metadata", request.metadata.as_ref()));
        violations.finish()?;
        let (Some(id), Some(metadata)) = (id, metadata) else { return Err(Status::internal("validation")) };
        let id = id.unwrap_or_else(Uuid::now_v7);
        let (row, created) = self
            .db
            .run(async |connection| {
                db::create_conversation(connection, caller.user_id(), id, &request.title, &metadata).await
            })
            .await?;
        tracing::debug!(conversation_id = %row.id, ?created, "conversation created");
        Ok(Response::new(conversation(row)))
    }

    async fn get_conversation(
        &self,
        request: Request<GetConversationRequest>,
    ) -> Result<Response<Conversation>, Status> {
        let caller = Caller::from_request(&request)?;
        let id = validate::required_id("conversation_id", &request.get_ref().conversation_id)
            .map_err(|violation| Error::InvalidArgument(vec![violation]))?;
        let row = self.db.run(async |connection| db::get_conversation(connection, caller.user_id(), id).await).await?;
        Ok(Response::new(conversation(row)))
    }

    async fn update_conversation(
        &self,
        request: Request<UpdateConversationRequest>,
    ) -> Result<Response<Conversation>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let mut violations = Violations::default();
        let id = violations.check(validate::required_id("conversation_id", &request.conversation_id));
        let paths = request.update_mask.map(|mask| mask.paths).unwrap_or_default();
        // AIP-134: without a mask, update the fields the request sets.
        let (mut set_title, mut set_metadata) =
            (paths.is_empty() && !request.title.is_empty(), paths.is_empty() && request.metadata.is_some());
        for (index, path) in paths.iter().enumerate() {
            match path.as_str() {
                "title" => set_title = true,
                "metadata" => set_metadata = true,
                "*" => (set_title, set_metadata) = (true, true),
                other => violations.0.push(FieldViolation::new(
                    format!("update_mask.paths[{index}]"),
                    format!("{other:?} cannot be updated; use title, metadata or *"),
                )),
            }
        }
        if !set_title && !set_metadata && violations.0.is_empty() {
            violations.0.push(FieldViolation::new(
                "update_mask",
                "nothing to update: set title and/or metadata, or name them in update_mask",
            ));
        }
        if set_title {
            violations.check(validate::title("title", &request.title));
        }
        let metadata = if set_metadata {
            violations.check(validate::metadata("metadata", request.metadata.as_ref()))
        } else {
            None
        };
        violations.finish()?;
        let Some(id) = id else { return Err(Status::internal("validation")) };
        let title = set_title.then_some(request.title.as_str());
        let row = self
            .db
            .run(async |connection| {
                db::update_conversation(connection, caller.user_id(), id, title, metadata.as_ref()).await
            })
            .await?;
        Ok(Response::new(conversation(row)))
    }

    async fn delete_conversation(&self, request: Request<DeleteConversationRequest>) -> Result<Response<()>, Status> {
        let caller = Caller::from_request(&request)?;
        let id = validate::required_id("conversation_id", &request.get_ref().conversation_id)
            .map_err(|violation| Error::InvalidArgument(vec![violation]))?;
        self.db.run(async |connection| db::delete_conversation(connection, caller.user_id(), id).await).await?;
        Ok(Response::new(()))
    }

    async fn list_conversations(
        &self,
        request: Request<ListConversationsRequest>,
    ) -> Result<Response<ListConversationsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let page_size = validate::page_size("page_size", request.page_size)
            .map_err(|violation| Error::InvalidArgument(vec![violation]))?;
        let cursor = if request.page_token.is_empty() {
            None
        } else {
            Some(page_token::decode_conversations(&request.page_token, caller.user_id()).map_err(Error::from)?)
        };
        let mut rows = self
            .db
            .run(async |connection| {
                db::list_conversations(connection, caller.user_id(), cursor, page_size as i64 + 1).await
            })
            .await?;
        let more = rows.len() > page_size;
        rows.truncate(page_size);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => page_token::encode_conversations(
                caller.user_id(),
                ConversationCursor { updated_at: last.updated_at, id: last.id },
            ),
            _ => String::new(),
        };
        Ok(Response::new(ListConversationsResponse {
            conversations: rows.into_iter().map(conversation).collect(),
            next_page_token,
        }))
    }

    async fn append_messages(
        &self,
        request: Request<AppendMessagesRequest>,
    ) -> Result<Response<AppendMessagesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let id = validate::required_id("conversation_id", &request.conversation_id);
        let inputs = validate::new_messages(request.messages);
        let (id, inputs) = match (id, inputs) {
            (Ok(id), Ok(inputs)) => (id, inputs),
            (Err(violation), Ok(_)) => return Err(Error::InvalidArgument(vec![violation]).into()),
            (Ok(_), Err(error)) => return Err(error.into()),
            (Err(violation), Err(Error::InvalidArgument(mut more))) => {
                more.insert(0, violation);
                return Err(Error::InvalidArgument(more).into());
            }
            (Err(_), Err(error)) => return Err(error.into()),
        };
        let rows = self
            .db
            .run(async |connection| db::append_messages(connection, caller.user_id(), id, &inputs).await)
            .await?;
        Ok(Response::new(AppendMessagesResponse { messages: rows.into_iter().map(message).collect() }))
    }

    async fn list_messages(
        &self,
        request: Request<ListMessagesRequest>,
    ) -> Result<Response<ListMessagesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let page = page_request(request.into_inner())?;
        let (response, _, _) = fetch_page(&self.db, caller.user_id(), &page, page.after, page.next_fetch(0)).await?;
        Ok(Response::new(response))
    }

    type StreamMessagesStream = MessageStream;

    async fn stream_messages(
        &self,
        request: Request<ListMessagesRequest>,
    ) -> Result<Response<Self::StreamMessagesStream>, Status> {
        let caller = Caller::from_request(&request)?;
        let page = page_request(request.into_inner())?;
        // The first page is fetched before answering, so a missing
        // conversation is a plain NOT_FOUND status, not a broken stream.
        let (first, mut after, mut more) =
            fetch_page(&self.db, caller.user_id(), &page, page.after, page.next_fetch(0)).await?;
        let mut sent = first.messages.len() as u64;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER_PAGES);
        tx.try_send(Ok(first)).map_err(|_| Status::internal("stream buffer"))?;

        if more && page.next_fetch(sent) > 0 {
            let db = self.db.clone();
            let streams = self.streams.clone();
            let user_id = caller.user_id().to_owned();
            self.streams.add_active(1);
            self.streams.tracker.spawn(async move {
                while more {
                    let fetch = page.next_fetch(sent);
                    if fetch == 0 {
                        break;
                    }
                    let fetched = tokio::select! {
                        fetched = fetch_page(&db, &user_id, &page, after, fetch) => fetched,
                        () = tx.closed() => break,
                        () = streams.stop.cancelled() => break,
                    };
                    let item = match fetched {
                        Ok((response, next_after, next_more)) => {
                            sent += response.messages.len() as u64;
                            (after, more) = (next_after, next_more);
                            Ok(response)
                        }
                        Err(error) => {
                            more = false;
                            Err(Status::from(error))
                        }
                    };
                    // The page is in memory and the connection is back in the
                    // pool: a slow client costs a buffer, not a connection.
                    streams.add_waiting(1);
                    let permit = tokio::select! {
                        permit = tx.reserve() => permit.ok(),
                        () = streams.stop.cancelled() => None,
                    };
                    streams.add_waiting(-1);
                    match permit {
                        Some(permit) => permit.send(item),
                        None => break, // the client went away, or shutdown
                    }
                }
                streams.add_active(-1);
            });
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
