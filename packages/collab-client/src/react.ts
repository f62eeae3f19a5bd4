/**
 * React bindings for `@collab/client`, on `useSyncExternalStore`: each hook reads one part of the
 * client's immutable snapshot, so a component re-renders only when that part changed (a card
 * memoised on its task re-renders only when that task did).
 *
 *   <CollabProvider client={client}><Board /></CollabProvider>
 *   const tasks = useTasks();            // readonly TaskView[], a new array only on change
 *   const task = useTask(id);            // TaskView | undefined, the same object until it changes
 */
import { createContext, createElement, useContext, useEffect, useSyncExternalStore } from "react";
import type { ReactNode } from "react";
import type { CollabClient, Connection, Snapshot, TaskView } from "./client.js";
import type { Notification, PresenceEntry } from "./protocol.js";

const ClientContext = createContext<CollabClient | null>(null);

export interface CollabProviderProps {
  client: CollabClient;
  /** Start the client on mount and stop it on unmount (default true). */
  autoStart?: boolean;
  children?: ReactNode;
}

/** Makes `client` available to the hooks below. */
export function CollabProvider({ client, autoStart = true, children }: CollabProviderProps): ReactNode {
  useEffect(() => {
    if (!autoStart) return undefined;
    client.start();
    return () => client.stop();
  }, [client, autoStart]);
  return createElement(ClientContext.Provider, { value: client }, children);
}

/** The client of the nearest `CollabProvider`. */
export function useCollabClient(): CollabClient {
  const client = useContext(ClientContext);
  if (!client) throw new Error("useCollabClient: no <CollabProvider> above this component");
  return client;
}

/** One part of the snapshot; `select` must return a part of it (not a new object), so it is stable. */
export function useSnapshot<T>(select: (snapshot: Snapshot) => T): T {
  const client = useCollabClient();
  const read = (): T => select(client.getSnapshot());
  return useSyncExternalStore(client.subscribe, read, read);
}

/** The board: tasks not deleted, with pending changes on top. */
export function useTasks(): readonly TaskView[] {
  return useSnapshot((s) => s.tasks);
}

/** One task, or undefined (unknown or deleted). */
export function useTask(id: string | null | undefined): TaskView | undefined {
  return useSnapshot((s) => (id ? s.taskById.get(id) : undefined));
}

/** Who is here, by display name. */
export function usePresence(): readonly PresenceEntry[] {
  return useSnapshot((s) => s.presence);
}

/** Notifications, newest first, and how many are unread. */
export function useNotifications(): { items: readonly Notification[]; unreadCount: number } {
  const items = useSnapshot((s) => s.notifications);
  const unreadCount = useSnapshot((s) => s.unreadCount);
  return { items, unreadCount };
}

/** The connection: state, why, the refusal behind a final state, pending changes, online. */
export function useConnection(): Connection {
  return useSnapshot((s) => s.connection);
}
