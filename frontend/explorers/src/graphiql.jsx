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
const wsClient = createClient({ url: absolute(config.endpoint || "/graphql", "ws"), lazy: true });
const fetcher = createGraphiQLFetcher({ url: endpoint, wsClient });
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
