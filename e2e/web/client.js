// A history.v1 client over gRPC-web, as a browser frontend builds it.
import { fromJson, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { HistoryService } from "./gen/history/v1/history_pb.js";

/** A HistoryService client for `baseUrl` that sends the Better Auth JWT `token`. */
export function historyClient(baseUrl, token) {
  const transport = createGrpcWebTransport({
    baseUrl,
    interceptors: [
      (next) => async (request) => {
        if (token) request.header.set("authorization", `Bearer ${token}`);
        return next(request);
      },
    ],
  });
  return createClient(HistoryService, transport);
}

/** Any JSON as a google.protobuf.Value (what `sources` holds). */
export const toValue = (json) => fromJson(ValueSchema, json);

/** A google.protobuf.Value back to plain JSON (`null` when absent). */
export const fromValue = (value) => (value === undefined ? null : toJson(ValueSchema, value));
