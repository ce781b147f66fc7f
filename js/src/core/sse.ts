/**
 * A streaming parser for `text/event-stream`, following the WHATWG HTML
 * "server-sent events" interpretation rules:
 * lines end in CRLF, LF or CR (also split across chunks), a leading BOM is
 * dropped, `:` lines are comments, `data` accumulates over several lines,
 * `id` sets the (persistent) last event id buffer unless it contains NUL,
 * `retry` is honoured only when it is all ASCII digits, a blank line
 * dispatches and an unterminated event at the end of the stream is discarded.
 *
 * Dispatching first sets the last event id (used for `Last-Event-ID` on
 * reconnect) to the buffer, then fires an event only when there is data
 * (dispatch steps 1 and 2): a block such as `id: 7\n\n` moves the resume
 * position without an event (`onLastEventId` reports it).
 */

export interface SSEMessage {
  /** Event type, `message` when the stream gave none. */
  event: string;
  /** Data lines joined with `\n`. */
  data: string;
  /** The last event id in force when this event was dispatched ('' if none). */
  id: string;
}

export interface SSEParserCallbacks {
  onMessage: (msg: SSEMessage) => void;
  onRetry?: (ms: number) => void;
  onComment?: (text: string) => void;
  /**
   * A block with an `id` field but no data was dispatched: the last event id
   * is now `id` (no `onMessage`). For blocks with data, `SSEMessage.id`
   * carries it instead.
   */
  onLastEventId?: (id: string) => void;
}

export class SSEParser {
  private buffer = '';
  private pendingCR = false;
  private sawFirstChunk = false;
  private data = '';
  private hasData = false;
  private eventType = '';
  /** The last event id buffer: set by `id` fields, persists across events as per spec. */
  private idBuffer: string;
  /** An `id` field was seen since the last dispatch. */
  private sawId = false;
  /** The last event id string: the buffer as of the last dispatch (what to resume from). */
  lastEventId: string;

  constructor(private readonly cb: SSEParserCallbacks, initialLastEventId = '') {
    this.lastEventId = initialLastEventId;
    this.idBuffer = initialLastEventId;
  }

  /** Feed decoded text. */
  feed(chunk: string): void {
    if (!chunk) return;
    if (!this.sawFirstChunk) {
      this.sawFirstChunk = true;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    if (this.pendingCR) {
      this.pendingCR = false;
      if (chunk[0] === '\n') chunk = chunk.slice(1);
    }
    let text = this.buffer + chunk;
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 13 /* CR */ || c === 10 /* LF */) {
        this.line(text.slice(start, i));
        if (c === 13) {
          if (i + 1 < text.length) {
            if (text.charCodeAt(i + 1) === 10) i++;
          } else {
            // CR at the very end of the chunk: an LF may follow in the next one.
            this.pendingCR = true;
          }
        }
        start = i + 1;
      }
    }
    this.buffer = text.slice(start);
    text = '';
  }

  /** End of stream: an unterminated event is discarded. */
  reset(): void {
    this.buffer = '';
    this.pendingCR = false;
    this.sawFirstChunk = false;
    this.data = '';
    this.hasData = false;
    this.eventType = '';
    // An id of the discarded, undispatched block never took effect.
    this.idBuffer = this.lastEventId;
    this.sawId = false;
  }

  private line(line: string): void {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line.charCodeAt(0) === 58 /* : */) {
      this.cb.onComment?.(line.slice(1).replace(/^ /, ''));
      return;
    }
    const colon = line.indexOf(':');
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = '';
    } else {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charCodeAt(0) === 32) value = value.slice(1);
    }
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.data += value + '\n';
        this.hasData = true;
        break;
      case 'id':
        if (!value.includes('\u0000')) {
          this.idBuffer = value;
          this.sawId = true;
        }
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.cb.onRetry?.(parseInt(value, 10));
        break;
      default:
      // unknown field: ignored
    }
  }

  private dispatch(): void {
    // Step 1: the last event id string takes the buffer's value, data or not.
    this.lastEventId = this.idBuffer;
    const sawId = this.sawId;
    this.sawId = false;
    if (!this.hasData) {
      this.eventType = '';
      this.data = '';
      if (sawId) this.cb.onLastEventId?.(this.lastEventId);
      return;
    }
    const data = this.data.endsWith('\n') ? this.data.slice(0, -1) : this.data;
    const msg: SSEMessage = { event: this.eventType || 'message', data, id: this.lastEventId };
    this.data = '';
    this.hasData = false;
    this.eventType = '';
    this.cb.onMessage(msg);
  }
}

/** Convenience: parse a complete stream text into messages. */
export function parseSSE(text: string): { messages: SSEMessage[]; retry?: number; comments: string[] } {
  const messages: SSEMessage[] = [];
  const comments: string[] = [];
  let retry: number | undefined;
  const p = new SSEParser({
    onMessage: (m) => messages.push(m),
    onRetry: (ms) => (retry = ms),
    onComment: (c) => comments.push(c),
  });
  p.feed(text);
  return { messages, retry, comments };
}
