/** A listener of one event: it receives the event's detail. */
export type Listener<T> = (detail: T) => void;

/** A typed event emitter: `on(name, listener)` returns the function that removes it. */
export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Listen to one event; the returned function stops listening. */
  on<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(name);
    if (!set) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(name, listener);
  }

  /** Stop listening (the same as calling what `on` returned). */
  off<K extends keyof Events>(name: K, listener: Listener<Events[K]>): void {
    this.listeners.get(name)?.delete(listener as Listener<never>);
  }

  /** Call each listener; one that throws is reported and does not stop the others. */
  protected emit<K extends keyof Events>(name: K, detail: Events[K]): void {
    const set = this.listeners.get(name);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<Events[K]>)(detail);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
