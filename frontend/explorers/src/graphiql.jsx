// GraphiQL for /graphql: HTTP queries and mutations, subscriptions over graphql-ws, the headers
// editor opened on an Authorization template. Monaco's workers are bundled beside this file.
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import "graphiql/style.css";
import { createClient } from "graphql-ws";
import React from "react";
import { createRoot } from "react-dom/client";
import { readConfig } from "./config.js";

const config = readConfig("graphiql-config");

globalThis.MonacoEnvironment = {
  getWorker(_workerId, label) {
    const url = config.workers[label] || config.workers.editor;
    return new Worker(url);
  },
};

function absolute(path, protocol) {
  const url = new URL(path, window.location.href);
  if (protocol) {
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  }
  url.hash = "";
  url.search = "";
  return url.toString();
}

const endpoint = absolute(config.endpoint || "/graphql");
const wsUrl = absolute(config.endpoint || "/graphql", "ws");
// A browser cannot set headers on a WebSocket upgrade, so the headers pane (the key) goes in
// graphql-transport-ws's connection_init payload; a new connection when the headers change.
let wsClient = null;
let wsHeaders = null;
function clientFor(headers) {
  const key = JSON.stringify(headers || {});
  if (wsClient === null || key !== wsHeaders) {
    if (wsClient !== null) wsClient.dispose();
    wsHeaders = key;
    wsClient = createClient({ url: wsUrl, lazy: true, connectionParams: headers || {} });
  }
  return wsClient;
}
const fetcher = (params, opts) =>
  createGraphiQLFetcher({ url: endpoint, wsClient: clientFor(opts && opts.headers) })(params, opts);
const shared = new URLSearchParams(window.location.search).get("query");

createRoot(document.getElementById("graphiql")).render(
  <GraphiQL
    fetcher={fetcher}
    defaultQuery={config.query}
    initialQuery={shared || undefined}
    defaultHeaders={config.headers}
    isHeadersEditorEnabled={true}
    defaultEditorToolsVisibility="headers"
    shouldPersistHeaders={true}
  />,
);
