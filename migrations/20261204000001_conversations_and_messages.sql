-- Conversations and their messages, owned by Better Auth users.
--
-- user_id is TEXT: Better Auth ids are strings (32 random alphanumerics by
-- default), not UUIDs. Ids are UUIDv7 (time-ordered, index-friendly), made
-- by the service unless the client chose one for idempotent retries.

CREATE TABLE conversations (
    id         uuid        PRIMARY KEY,
    user_id    text        NOT NULL CHECK (user_id <> ''),
    title      text        NOT NULL DEFAULT '',
    metadata   jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    -- Highest seq handed out: the message count, since seqs have no gaps.
    last_seq   bigint      NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- ListConversations: a user's conversations, most recently active first,
-- paged by the keyset (updated_at, id).
CREATE INDEX conversations_user_recent ON conversations (user_id, updated_at DESC, id DESC);

CREATE TABLE messages (
    id              uuid        PRIMARY KEY,
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- Denormalised owner: every query stays scoped by user on one table,
    -- and the table can later be sharded by user.
    user_id         text        NOT NULL,
    seq             bigint      NOT NULL CHECK (seq > 0),
    role            text        NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content         text        NOT NULL,
    sources         jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Paging in both directions, and the cascade from conversations, use
    -- this constraint's index.
    CONSTRAINT messages_conversation_seq UNIQUE (conversation_id, seq)
);
