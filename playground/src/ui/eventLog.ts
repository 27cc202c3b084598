// A timestamped list of what happened: state RPCs (with seq), RPC calls, errors.

export type LogKind = 'info' | 'state' | 'rpc' | 'error';

export interface LogEntry {
  time: string;
  kind: LogKind;
  message: string;
}

const MAX_ENTRIES = 300;

function clock(date = new Date()): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

export class EventLog {
  constructor(
    private readonly list: HTMLElement,
    private readonly onEntry: (entry: LogEntry) => void = () => {},
  ) {}

  add(kind: LogKind, message: string): void {
    const entry: LogEntry = { time: clock(), kind, message };
    const item = document.createElement('li');
    item.dataset.role = 'log-entry';
    item.dataset.kind = kind;
    const time = document.createElement('time');
    time.textContent = entry.time;
    item.append(time, ` ${message}`);
    this.list.appendChild(item);
    while (this.list.childElementCount > MAX_ENTRIES) this.list.firstElementChild?.remove();
    this.list.scrollTop = this.list.scrollHeight;
    this.onEntry(entry);
  }
}
