import { describe, expect, it } from 'vitest';
import { SSEParser, parseSSE, type SSEMessage } from '../src/core/sse';

function feedAll(chunks: string[]) {
  const messages: SSEMessage[] = [];
  const retries: number[] = [];
  const comments: string[] = [];
  const p = new SSEParser({
    onMessage: (m) => messages.push(m),
    onRetry: (r) => retries.push(r),
    onComment: (c) => comments.push(c),
  });
  for (const c of chunks) p.feed(c);
  return { messages, retries, comments, parser: p };
}

describe('SSEParser', () => {
  it('parses id, event and data', () => {
    const { messages } = parseSSE('id: 42\nevent: notification\ndata: {"seq":42}\n\n');
    expect(messages).toEqual([{ id: '42', event: 'notification', data: '{"seq":42}' }]);
  });

  it('defaults the event type to "message" and resets it after each event', () => {
    const { messages } = parseSSE('event: a\ndata: 1\n\ndata: 2\n\n');
    expect(messages.map((m) => m.event)).toEqual(['a', 'message']);
  });

  it('joins multi-line data with \\n', () => {
    const { messages } = parseSSE('data: line1\ndata: line2\ndata:\ndata: line4\n\n');
    expect(messages[0].data).toBe('line1\nline2\n\nline4');
  });

  it('accepts LF, CR and CRLF line endings, mixed', () => {
    const { messages } = parseSSE('data: a\r\ndata: b\rdata: c\n\r\nid: 7\revent: x\rdata: d\r\r');
    expect(messages).toEqual([
      { event: 'message', data: 'a\nb\nc', id: '' },
      { event: 'x', data: 'd', id: '7' },
    ]);
  });

  it('treats a CRLF split across two chunks as one line ending', () => {
    const { messages } = feedAll(['data: a\r', '\ndata: b\r', '\n\r', '\n']);
    expect(messages).toEqual([{ event: 'message', data: 'a\nb', id: '' }]);
  });

  it('gives the same result when fed one character at a time', () => {
    const text = 'retry: 10\r\n: hi\r\nid: 1\r\nevent: notification\r\ndata: {"x":"é ✓"}\r\n\r\ndata: second\n\n';
    const whole = feedAll([text]);
    const bytewise = feedAll(text.split(''));
    expect(bytewise.messages).toEqual(whole.messages);
    expect(bytewise.messages).toHaveLength(2);
    expect(bytewise.retries).toEqual([10]);
  });

  it('reports comments (heartbeats) and never dispatches them', () => {
    const { messages, comments } = parseSSE(': ping\n\n:another\n\n');
    expect(messages).toEqual([]);
    expect(comments).toEqual(['ping', 'another']);
  });

  it('honours retry only when it is all ASCII digits', () => {
    expect(parseSSE('retry: 2000\n\n').retry).toBe(2000);
    expect(parseSSE('retry: 20a0\n\n').retry).toBeUndefined();
    expect(parseSSE('retry: -5\n\n').retry).toBeUndefined();
    expect(parseSSE('retry:\n\n').retry).toBeUndefined();
  });

  it('strips exactly one leading space from the value and handles fields without a colon', () => {
    const { messages } = parseSSE('data:x\n\ndata:  y\n\ndata\n\ndata\ndata\n\n');
    expect(messages.map((m) => m.data)).toEqual(['x', ' y', '', '\n']);
  });

  it('keeps the last event id across events, ignores ids containing NUL, and an empty id resets it', () => {
    const { messages } = parseSSE('id: 1\ndata: a\n\ndata: b\n\nid: 2\u00003\ndata: c\n\nid\ndata: d\n\n');
    expect(messages.map((m) => m.id)).toEqual(['1', '1', '1', '']);
  });

  it('does not dispatch a block without data, but still applies its id', () => {
    const { messages, parser } = feedAll(['event: foo\nid: 9\n\n', 'data: z\n\n']);
    expect(messages).toEqual([{ event: 'message', data: 'z', id: '9' }]);
    expect(parser.lastEventId).toBe('9');
  });

  it('drops a leading BOM and ignores unknown fields', () => {
    const { messages } = parseSSE('\uFEFFdata: a\nfoo: bar\n\n');
    expect(messages).toEqual([{ event: 'message', data: 'a', id: '' }]);
  });

  it('discards an unterminated event at the end of the stream', () => {
    const { messages, parser } = feedAll(['data: complete\n\ndata: incomplete\n']);
    parser.reset();
    parser.feed('data: next\n\n');
    expect(messages.map((m) => m.data)).toEqual(['complete', 'next']);
  });

  it('does not treat a colon inside the value as a separator', () => {
    const { messages } = parseSSE('data: {"a":"b:c"}\n\n');
    expect(JSON.parse(messages[0].data)).toEqual({ a: 'b:c' });
  });
});

describe('SSEParser: the last event id (WHATWG dispatch step 1)', () => {
  function withIds(chunks: string[], initial = '') {
    const messages: SSEMessage[] = [];
    const ids: string[] = [];
    const p = new SSEParser({ onMessage: (m) => messages.push(m), onLastEventId: (id) => ids.push(id) }, initial);
    for (const c of chunks) p.feed(c);
    return { messages, ids, parser: p };
  }

  it('an id-only block sets the last event id without dispatching an event', () => {
    const { messages, ids, parser } = withIds(['retry: 2000\n: connected\n\n', 'id: 7\n\n']);
    expect(messages).toEqual([]);
    expect(ids).toEqual(['7']);
    expect(parser.lastEventId).toBe('7');
  });

  it('the id takes effect at the blank line, not before', () => {
    const { ids, parser } = withIds(['id: 7\n']);
    expect(parser.lastEventId).toBe('');
    expect(ids).toEqual([]);
    parser.feed('\n');
    expect(parser.lastEventId).toBe('7');
    expect(ids).toEqual(['7']);
  });

  it('ignores an id containing NUL in an id-only block', () => {
    const { ids, parser } = withIds(['id: 7\n\n', 'id: 8\u00009\n\n']);
    expect(ids).toEqual(['7']);
    expect(parser.lastEventId).toBe('7');
  });

  it('an empty id-only block clears the last event id', () => {
    const { ids, parser } = withIds(['id\n\n'], '5');
    expect(ids).toEqual(['']);
    expect(parser.lastEventId).toBe('');
  });

  it('the id of an unterminated block at the end of the stream is discarded', () => {
    const { ids, parser } = withIds(['id: 7\n\nid: 8\n']);
    parser.reset();
    expect(parser.lastEventId).toBe('7');
    parser.feed('data: x\n\n');
    expect(ids).toEqual(['7']);
  });

  it('a later event without an id carries the id set by an id-only block', () => {
    const { messages, ids } = withIds(['id: 7\n\n', 'event: notification\ndata: {}\n\n']);
    expect(ids).toEqual(['7']);
    expect(messages).toEqual([{ event: 'notification', data: '{}', id: '7' }]);
  });

  it('does not report blocks without an id field (comments, retry, heartbeats)', () => {
    const { ids, parser } = withIds([': ping\n\nretry: 10\n\nevent: x\n\n'], '3');
    expect(ids).toEqual([]);
    expect(parser.lastEventId).toBe('3');
  });
});
