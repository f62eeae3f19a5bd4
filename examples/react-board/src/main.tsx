/**
 * The React board's entry: one CollabClient for the page, given to React by <CollabProvider>, and
 * one QueryClient for the HTTP reads (workspace, members) made through the same client's `api()`.
 *
 * URL: `?token=<access token>&workspace=<workspace id>` (the links `collab dev` prints, with
 * `/react-board/` or the Vite dev server in place of `/`).
 */
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { CollabClient } from "@collab/client";
import { CollabProvider } from "@collab/client/react";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";

const params = new URLSearchParams(location.search);
const workspaceId = params.get("workspace") ?? "";

/**
 * Where a real app asks its auth library for a fresh access token. `reason` is "connect" on every
 * (re)connect and "unauthorized" when the server refused the last token (refresh it then). This demo
 * has one token in the address; an app with refresh tokens would call its token endpoint here.
 */
async function getToken(reason: "connect" | "unauthorized"): Promise<string> {
  const token = params.get("token") ?? "";
  if (reason === "unauthorized") console.info("access token refused: a real app refreshes it here");
  return token;
}

const client = new CollabClient({ workspaceId, getToken });
const queries = new QueryClient({ defaultOptions: { queries: { staleTime: 60_000, retry: 1 } } });
(window as unknown as { collab: unknown }).collab = { client }; // for the console and the e2e test

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <QueryClientProvider client={queries}>
        <CollabProvider client={client}>
          <App />
        </CollabProvider>
      </QueryClientProvider>
    </StrictMode>,
  );
}
