// The public GraphQL API, as any customer's frontend uses it: POST /graphql with the key in
// `Authorization`, subscriptions over graphql-transport-ws (graphql-ws) on the same path with
// the key in the `connection_init` payload.

import { type Client, createClient } from "graphql-ws";

import type { TypedDocumentString } from "./generated/graphql";

/** A refusal the viewer can act on: a 401 (key not accepted) or a 403 (key of another site). */
export class AuthError extends Error {
  constructor(
    readonly status: 401 | 403,
    message: string,
  ) {
    super(message);
  }
}

/** Any other failure: network, server error, bad arguments. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

interface GraphQLError {
  message: string;
  extensions?: { code?: string };
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: GraphQLError[];
}

/** Run one query; resolve with its data or reject with an AuthError / ApiError. */
export async function query<TResult, TVariables>(
  key: string,
  document: TypedDocumentString<TResult, TVariables>,
  variables: TVariables,
  signal?: AbortSignal,
): Promise<TResult> {
  let response: Response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/graphql-response+json, application/json",
        Authorization: `Bearer ${key}`,
      },
      body: JSON.stringify({ query: document.toString(), variables }),
      signal,
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiError("The server could not be reached. Is it running?");
  }
  let body: GraphQLResponse<TResult> | null = null;
  try {
    body = (await response.json()) as GraphQLResponse<TResult>;
  } catch {
    body = null;
  }
  const first = body?.errors?.[0];
  if (response.status === 401 || response.status === 403) {
    throw new AuthError(response.status, first?.message ?? response.statusText);
  }
  if (first) {
    const code = first.extensions?.code ?? null;
    if (code === "UNAUTHENTICATED") throw new AuthError(401, first.message);
    if (code === "FORBIDDEN") throw new AuthError(403, first.message);
    throw new ApiError(first.message, code);
  }
  if (!response.ok || !body?.data) {
    throw new ApiError(`The server answered ${response.status} ${response.statusText}.`);
  }
  return body.data;
}

export type LiveStatus = "connecting" | "live" | "reconnecting" | "closed";

/** A graphql-ws client for this page's origin, authenticated with `key`. */
export function liveClient(key: string, onStatus: (status: LiveStatus, reason?: string) => void): Client {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let connectedOnce = false;
  return createClient({
    url: `${scheme}//${location.host}/graphql`,
    connectionParams: { Authorization: `Bearer ${key}` },
    lazy: false,
    retryAttempts: 20,
    shouldRetry: (event) => {
      // A refused key (4401/4403 from the server, 4400 for a bad request) will not get better.
      const code = (event as CloseEvent | undefined)?.code;
      return !(code && code >= 4400 && code < 4500);
    },
    on: {
      connecting: () => onStatus(connectedOnce ? "reconnecting" : "connecting"),
      connected: () => {
        connectedOnce = true;
        onStatus("live");
      },
      closed: (event) => {
        const close = event as CloseEvent | undefined;
        onStatus("closed", close?.reason || undefined);
      },
    },
  });
}

/** Subscribe to a typed document; returns the unsubscribe function. */
export function subscribe<TResult, TVariables extends Record<string, unknown>>(
  client: Client,
  document: TypedDocumentString<TResult, TVariables>,
  variables: TVariables,
  onData: (data: TResult) => void,
  onError: (message: string) => void,
): () => void {
  return client.subscribe<TResult>(
    { query: document.toString(), variables },
    {
      next: (result) => {
        if (result.errors?.length) onError(result.errors[0]?.message ?? "subscription error");
        else if (result.data) onData(result.data);
      },
      error: (error) => {
        const message =
          error instanceof Error
            ? error.message
            : Array.isArray(error)
              ? String((error[0] as { message?: string } | undefined)?.message ?? "refused")
              : error instanceof CloseEvent
                ? error.reason || `connection closed (${error.code})`
                : "live updates stopped";
        onError(message);
      },
      complete: () => undefined,
    },
  );
}
