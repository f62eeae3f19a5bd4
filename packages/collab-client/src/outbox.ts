/**
 * The durable outbox: changes not yet acknowledged, kept where a reload or a closed tab does not
 * lose them. The client writes each change before it may be sent and deletes it on its answer
 * (committed or refused); a new page of the same user and workspace sends what is left first, in
 * order, with the same `request_id`, so the server's request ledger makes a change that had already
 * landed land once.
 */

/** One change waiting for its answer, as stored. */
export interface OutboxEntry {
  requestId: string;
  workspaceId: string;
  userId: string;
  /** Increasing in the order the changes were made. */
  order: number;
  action: "task.create" | "task.update" | "task.delete" | "notification.read" | "task.undo" | "task.redo";
  taskId: string | null;
  /** The frame exactly as it is sent. */
  frame: Record<string, unknown>;
}

/** Where the client keeps its unanswered changes. */
export interface Outbox {
  put(entry: OutboxEntry): Promise<void>;
  delete(requestId: string): Promise<void>;
  /** This user's entries for this workspace, any order. */
  list(workspaceId: string, userId: string): Promise<OutboxEntry[]>;
}

const STORE = "ops";

function done<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error("IndexedDB request failed"));
  });
}

/** The outbox in IndexedDB (one database per origin, `collab-outbox` by default). */
export class IndexedDbOutbox implements Outbox {
  private _db: Promise<IDBDatabase> | null = null;

  constructor(readonly name = "collab-outbox") {}

  private db(): Promise<IDBDatabase> {
    this._db ??= new Promise((resolve, reject) => {
      const open = indexedDB.open(this.name, 1);
      open.onupgradeneeded = () => {
        open.result.createObjectStore(STORE, { keyPath: "requestId" });
      };
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error ?? new Error("IndexedDB unavailable"));
    });
    return this._db;
  }

  /** Resolves once the transaction is durable (committed), not merely queued. */
  private async write(apply: (store: IDBObjectStore) => void): Promise<void> {
    const db = await this.db();
    await new Promise<void>((resolve, reject) => {
      const tx = db.transaction(STORE, "readwrite");
      apply(tx.objectStore(STORE));
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error ?? new Error("IndexedDB write failed"));
      tx.onabort = () => reject(tx.error ?? new Error("IndexedDB write aborted"));
    });
  }

  put(entry: OutboxEntry): Promise<void> {
    return this.write((store) => store.put(entry));
  }

  delete(requestId: string): Promise<void> {
    return this.write((store) => store.delete(requestId));
  }

  async list(workspaceId: string, userId: string): Promise<OutboxEntry[]> {
    const db = await this.db();
    const all = await done(db.transaction(STORE, "readonly").objectStore(STORE).getAll() as IDBRequest<OutboxEntry[]>);
    return all.filter((e) => e.workspaceId === workspaceId && e.userId === userId);
  }
}
