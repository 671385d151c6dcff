// A peer that sends PINGs and never reads is cut off once our unread replies
// pass 1 MiB; a peer that reads is not, however much DATA one turn of the
// event loop queues for it. Both on a weft H2ServerConnection over a real
// socket: 20 responses of 100 KiB answered in one turn, then a PING read in
// the same turn, must all arrive, with no GOAWAY.
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, test } from 'node:test';
import { H2ServerConnection, type H2ServerHandler } from '../../../src/proxy/http2/codec/server-connection';
import { ERROR_NAMES, Flag, FrameType, literalBlock, PREFACE, Setting, frame, settingsFrame, u32 } from '../../helpers/h2-tools';

const BODY = 100 * 1024;
const STREAMS = 20;

const handler: H2ServerHandler = {
  onRequest(stream) {
    stream.respond({ ':status': 200 });
    stream.end(Buffer.alloc(BODY, 0x61));
  },
  onError() {},
  onOversizedHeaders(stream) {
    stream.respond({ ':status': 431 }, { endStream: true });
  },
};

let server: net.Server;
let port = 0;

before(async () => {
  server = net.createServer((socket) => {
    socket.on('error', () => {});
    new H2ServerConnection(socket, handler);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

test('DATA queued in one turn does not count as unread replies: a PING in that turn is answered, every body arrives', async () => {
  const request = literalBlock([
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'example'],
  ]);
  const parts = [PREFACE, settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 1 << 20], [Setting.HEADER_TABLE_SIZE, 0]]), frame(FrameType.WINDOW_UPDATE, 0, 0, u32(64 << 20))];
  for (let i = 0; i < STREAMS; i++) parts.push(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 2 * i + 1, request));
  // Frames of an unknown type (ignored, RFC 9113 §5.5) push the PING past the first read of 64 KiB:
  // the responses are queued after that read, the PING is answered in the next one, in the same turn.
  for (let i = 0; i < 5; i++) parts.push(frame(0xfa, 0, 0, Buffer.alloc(16_000)));
  parts.push(frame(FrameType.PING, 0, 0, Buffer.from('guardpng')));

  const outcome = await new Promise<{ bodyBytes: Map<number, number>; ended: Set<number>; pingAcked: boolean; goaway: string | undefined }>((resolve, reject) => {
    const bodyBytes = new Map<number, number>();
    const ended = new Set<number>();
    let pingAcked = false;
    let goaway: string | undefined;
    let got = Buffer.alloc(0);
    const socket = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => finish(), 10_000);
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ bodyBytes, ended, pingAcked, goaway });
    };
    socket.on('error', reject);
    socket.on('close', finish);
    socket.on('connect', () => socket.write(Buffer.concat(parts)));
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      let at = 0;
      while (at + 9 <= got.length) {
        const length = got.readUIntBE(at, 3);
        if (at + 9 + length > got.length) break;
        const [type, flags] = [got[at + 3], got[at + 4]];
        const streamId = got.readUInt32BE(at + 5) & 0x7fffffff;
        const payload = got.subarray(at + 9, at + 9 + length);
        at += 9 + length;
        if (type === FrameType.SETTINGS && !(flags & Flag.ACK)) socket.write(settingsFrame([], true));
        else if (type === FrameType.PING && flags & Flag.ACK) pingAcked = payload.toString('latin1') === 'guardpng';
        else if (type === FrameType.GOAWAY) goaway = ERROR_NAMES[payload.readUInt32BE(4)];
        else if (type === FrameType.DATA) {
          bodyBytes.set(streamId, (bodyBytes.get(streamId) ?? 0) + length);
          if (flags & Flag.END_STREAM) ended.add(streamId);
        }
      }
      got = got.subarray(at);
      if (ended.size === STREAMS && pingAcked) finish();
    });
  });

  assert.equal(outcome.goaway, undefined, 'no GOAWAY');
  assert.ok(outcome.pingAcked, 'the PING is answered');
  assert.equal(outcome.ended.size, STREAMS, 'every response ends');
  for (const [id, bytes] of outcome.bodyBytes) assert.equal(bytes, BODY, `stream ${id}'s body`);
});
