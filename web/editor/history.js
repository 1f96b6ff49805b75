// Undo/redo over snapshots of the drag's JSON (compact: masks are run-length encoded).

const LIMIT = 100;

export class History {
  constructor(snapshot) {
    this.reset(snapshot);
  }

  reset(snapshot) {
    this.past = [];
    this.future = [];
    this.current = snapshot;
  }

  push(snapshot) {
    if (snapshot === this.current) return;
    this.past.push(this.current);
    if (this.past.length > LIMIT) this.past.shift();
    this.future = [];
    this.current = snapshot;
  }

  undo() {
    if (!this.past.length) return null;
    this.future.push(this.current);
    this.current = this.past.pop();
    return this.current;
  }

  redo() {
    if (!this.future.length) return null;
    this.past.push(this.current);
    this.current = this.future.pop();
    return this.current;
  }
}
