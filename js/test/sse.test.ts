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
