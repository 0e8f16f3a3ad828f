//! Opaque, versioned page tokens for keyset pagination.
//!
//! A token is base64url of `version ‖ kind ‖ binding ‖ position ‖ check`:
//!
//! - messages: bound to the conversation id and the order; the position is
//!   the last `seq` returned;
//! - conversations: bound to (a digest of) the user; the position is the
//!   last `(updated_at, id)` returned.
//!
//! `check` is a truncated SHA-256 of the rest. It is not a secret MAC: it
//! catches truncation, corruption and casual editing. A token carries no
//! authority: every query is filtered by the caller's user id anyway, so a
//! forged token can only point into the caller's own data. Tokens hold no
//! server state, so they work across replicas and restarts.

use aws_lc_rs::digest;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use time::OffsetDateTime;
use uuid::Uuid;

/// Current token format version.
const VERSION: u8 = 1;
const KIND_MESSAGES: u8 = 1;
const KIND_CONVERSATIONS: u8 = 2;
const CHECK_LEN: usize = 8;
const USER_DIGEST_LEN: usize = 16;
/// Longest token accepted before decoding (real ones are under 80 characters).
const MAX_TOKEN_LEN: usize = 256;

/// Reading order of messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageOrder {
    /// Ascending `seq`.
    OldestFirst,
    /// Descending `seq`.
    NewestFirst,
}

impl MessageOrder {
    fn code(self) -> u8 {
        match self {
            Self::OldestFirst => 1,
            Self::NewestFirst => 2,
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token this service issued (bad encoding, length, version or check).
    #[error("page_token is malformed or was altered; pass next_page_token exactly as received")]
    Malformed,
    /// A valid token issued for another conversation, order or listing.
    #[error("page_token was issued for {0}; start again without a page_token")]
    Foreign(&'static str),
}

fn check(bytes: &[u8]) -> [u8; CHECK_LEN] {
    let digest = digest::digest(&digest::SHA256, bytes);
    let mut out = [0u8; CHECK_LEN];
    out.copy_from_slice(&digest.as_ref()[..CHECK_LEN]);
    out
}

fn seal(mut bytes: Vec<u8>) -> String {
    let check = check(&bytes);
    bytes.extend_from_slice(&check);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes and verifies the check; returns `(kind, body)`.
fn open(token: &str) -> Result<(u8, Vec<u8>), TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| TokenError::Malformed)?;
    if bytes.len() < 2 + CHECK_LEN {
        return Err(TokenError::Malformed);
    }
    let (payload, tail) = bytes.split_at(bytes.len() - CHECK_LEN);
    if check(payload) != tail || payload[0] != VERSION {
        return Err(TokenError::Malformed);
    }
    Ok((payload[1], payload[2..].to_vec()))
}

/// Token for the messages after `last_seq` of `conversation_id` in `order`.
pub fn encode_messages(conversation_id: Uuid, order: MessageOrder, last_seq: i64) -> String {
    let mut bytes = Vec::with_capacity(2 + 16 + 1 + 8 + CHECK_LEN);
    bytes.extend_from_slice(&[VERSION, KIND_MESSAGES]);
    bytes.extend_from_slice(conversation_id.as_bytes());
    bytes.push(order.code());
    bytes.extend_from_slice(&last_seq.to_be_bytes());
    seal(bytes)
}

/// The last `seq` a messages token points after, if it was issued for this
/// conversation and order.
pub fn decode_messages(token: &str, conversation_id: Uuid, order: MessageOrder) -> Result<i64, TokenError> {
    let (kind, body) = open(token)?;
    match kind {
        KIND_MESSAGES => {}
        KIND_CONVERSATIONS => return Err(TokenError::Foreign("ListConversations")),
        _ => return Err(TokenError::Malformed),
    }
    let body: [u8; 16 + 1 + 8] = body.try_into().map_err(|_| TokenError::Malformed)?;
    if body[..16] != conversation_id.as_bytes()[..] {
        return Err(TokenError::Foreign("another conversation"));
    }
    if body[16] != order.code() {
        return Err(TokenError::Foreign("the other order"));
    }
    let last_seq = i64::from_be_bytes(body[17..].try_into().map_err(|_| TokenError::Malformed)?);
    if last_seq < 0 {
        return Err(TokenError::Malformed);
    }
    Ok(last_seq)
}

fn user_digest(user_id: &str) -> [u8; USER_DIGEST_LEN] {
    let digest = digest::digest(&digest::SHA256, user_id.as_bytes());
    let mut out = [0u8; USER_DIGEST_LEN];
    out.copy_from_slice(&digest.as_ref()[..USER_DIGEST_LEN]);
    out
}

/// Position in a conversation listing: the last `(updated_at, id)` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationCursor {
    /// `updated_at` of the last conversation returned.
    pub updated_at: OffsetDateTime,
    /// Its id (tie-breaker).
    pub id: Uuid,
}

/// Token for the conversations after `cursor` in `user_id`'s listing.
pub fn encode_conversations(user_id: &str, cursor: ConversationCursor) -> String {
    let micros = (cursor.updated_at.unix_timestamp_nanos() / 1_000) as i64;
    let mut bytes = Vec::with_capacity(2 + USER_DIGEST_LEN + 8 + 16 + CHECK_LEN);
    bytes.extend_from_slice(&[VERSION, KIND_CONVERSATIONS]);
    bytes.extend_from_slice(&user_digest(user_id));
    bytes.extend_from_slice(&micros.to_be_bytes());
    bytes.extend_from_slice(cursor.id.as_bytes());
    seal(bytes)
}

/// The cursor of a conversations token, if it was issued to `user_id`.
pub fn decode_conversations(token: &str, user_id: &str) -> Result<ConversationCursor, TokenError> {
    let (kind, body) = open(token)?;
    match kind {
        KIND_CONVERSATIONS => {}
        KIND_MESSAGES => return Err(TokenError::Foreign("ListMessages")),
        _ => return Err(TokenError::Malformed),
    }
    let body: [u8; USER_DIGEST_LEN + 8 + 16] = body.try_into().map_err(|_| TokenError::Malformed)?;
    if body[..USER_DIGEST_LEN] != user_digest(user_id) {
        return Err(TokenError::Foreign("another user"));
    }
    let micros =
        i64::from_be_bytes(body[USER_DIGEST_LEN..USER_DIGEST_LEN + 8].try_into().map_err(|_| TokenError::Malformed)?);
    let updated_at =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).map_err(|_| TokenError::Malformed)?;
    let id = Uuid::from_slice(&body[USER_DIGEST_LEN + 8..]).map_err(|_| TokenError::Malformed)?;
    Ok(ConversationCursor { updated_at, id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn message_tokens_round_trip() {
        let id = Uuid::now_v7();
        let token = encode_messages(id, MessageOrder::NewestFirst, 1234);
        assert_eq!(decode_messages(&token, id, MessageOrder::NewestFirst), Ok(1234));
    }

    #[test]
    fn message_tokens_are_bound_to_conversation_and_order() {
        let id = Uuid::now_v7();
        let token = encode_messages(id, MessageOrder::OldestFirst, 10);
        assert_eq!(
            decode_messages(&token, Uuid::now_v7(), MessageOrder::OldestFirst),
            Err(TokenError::Foreign("another conversation"))
        );
        assert_eq!(decode_messages(&token, id, MessageOrder::NewestFirst), Err(TokenError::Foreign("the other order")));
        assert_eq!(decode_conversations(&token, "u"), Err(TokenError::Foreign("ListMessages")));
    }

    #[test]
    fn conversation_tokens_round_trip_to_the_microsecond_and_are_bound_to_the_user() {
        let cursor = ConversationCursor {
            updated_at: OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_000).unwrap(),
            id: Uuid::now_v7(),
        };
        let token = encode_conversations("alice", cursor);
        assert_eq!(decode_conversations(&token, "alice"), Ok(cursor));
        assert_eq!(decode_conversations(&token, "bob"), Err(TokenError::Foreign("another user")));
    }

    #[test]
    fn tampered_tokens_are_malformed() {
        let id = Uuid::now_v7();
        let token = encode_messages(id, MessageOrder::OldestFirst, 10);
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[20] ^= 0x40; // change the seq
        let tampered = URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(decode_messages(&tampered, id, MessageOrder::OldestFirst), Err(TokenError::Malformed));
        for garbage in ["", "x", "!!!!", &"A".repeat(300), &token[..token.len() - 2]] {
            assert_eq!(
                decode_messages(garbage, id, MessageOrder::OldestFirst),
                Err(TokenError::Malformed),
                "{garbage}"
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic_or_decode(token in ".{0,300}") {
            let id = Uuid::nil();
            prop_assert!(decode_messages(&token, id, MessageOrder::OldestFirst).is_err());
            prop_assert!(decode_conversations(&token, "u").is_err());
        }

        #[test]
        fn any_single_byte_change_is_detected(seq in 0i64..i64::MAX, index in 0usize..35, flip in 1u8..=255) {
            let id = Uuid::from_u128(42);
            let token = encode_messages(id, MessageOrder::OldestFirst, seq);
            let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
            let index = index % bytes.len();
            bytes[index] ^= flip;
            let changed = URL_SAFE_NO_PAD.encode(&bytes);
            prop_assert!(decode_messages(&changed, id, MessageOrder::OldestFirst).is_err());
        }
    }
}
