"""How a RAG backend records an answer and reads the conversation back.

The backend forwards the user's Better Auth JWT, so history-service scopes
everything to that user. Run against a stack (`scripts/stack`):

    source target/stack/env
    python examples/python/generate.py
    python examples/python/rag_answer.py --history "$HISTORY" --token "$TOKEN"

It creates a conversation (or uses --conversation), appends the user's question
and an assistant answer with its sources, retries the append to show that a
client-chosen message_id makes retries harmless, then streams the whole
conversation back page by page.
"""

import argparse
import json
import pathlib
import sys
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "generated"))

import grpc  # noqa: E402
from google.protobuf import json_format, struct_pb2  # noqa: E402
from google.rpc import error_details_pb2  # noqa: E402
from grpc_status import rpc_status  # noqa: E402
from history.v1 import history_pb2, history_pb2_grpc  # noqa: E402


def explain(error: grpc.RpcError) -> str:
    """The code, ErrorInfo reason and field violations of a failed call."""
    text = f"{error.code().name}: {error.details()}"
    status = rpc_status.from_call(error)
    for detail in status.details if status else []:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            text += f" [reason {info.reason}]"
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            text += "".join(f"\n  {v.field}: {v.description}" for v in bad.field_violations)
    return text


def sources_value(sources: list) -> struct_pb2.Value:
    value = struct_pb2.Value()
    value.list_value.extend(sources)
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", required=True, help="history-service address, e.g. 127.0.0.1:50052")
    parser.add_argument("--token", required=True, help="the user's Better Auth JWT")
    parser.add_argument("--conversation", help="an existing conversation id (default: create one)")
    args = parser.parse_args()

    metadata = (("authorization", f"Bearer {args.token}"),)
    with grpc.insecure_channel(args.history) as channel:
        history = history_pb2_grpc.HistoryServiceStub(channel)
        try:
            conversation_id = args.conversation
            if not conversation_id:
                conversation = history.CreateConversation(
                    history_pb2.CreateConversationRequest(title="Asked from Python"), metadata=metadata, timeout=10
                )
                conversation_id = conversation.conversation_id
                print(f"created conversation {conversation_id}")

            answer = history_pb2.NewMessage(
                message_id=str(uuid.uuid4()),  # chosen here, so a retry stores nothing twice
                role=history_pb2.ROLE_ASSISTANT,
                content="Neon's pooler runs PgBouncer in transaction mode; use the -pooler host.",
                sources=sources_value(
                    [
                        {"title": "Connection pooling", "url": "https://neon.tech/docs/connect/connection-pooling", "score": 0.92},
                        {"title": "PgBouncer features", "url": "https://www.pgbouncer.org/features.html", "score": 0.71},
                    ]
                ),
            )
            question = history_pb2.NewMessage(
                message_id=str(uuid.uuid4()),
                role=history_pb2.ROLE_USER,
                content="How should I pool connections to Neon?",
            )
            request = history_pb2.AppendMessagesRequest(conversation_id=conversation_id, messages=[question, answer])
            stored = history.AppendMessages(request, metadata=metadata, timeout=10).messages
            retried = history.AppendMessages(request, metadata=metadata, timeout=10).messages
            assert [m.seq for m in retried] == [m.seq for m in stored], "a retry returns the stored messages"
            print(f"appended seq {stored[0].seq}..{stored[-1].seq} (retry stored nothing new)")

            pages = history.StreamMessages(
                history_pb2.ListMessagesRequest(conversation_id=conversation_id, page_size=1),
                metadata=metadata,
                timeout=30,
            )
            for page in pages:
                for message in page.messages:
                    sources = json_format.MessageToDict(message.sources) if message.HasField("sources") else None
                    role = history_pb2.Role.Name(message.role)
                    print(json.dumps({"seq": message.seq, "role": role, "content": message.content, "sources": sources}))
        except grpc.RpcError as error:
            print(explain(error), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
