// FrameOutput (a connection's frames of one turn, built in place): the bytes
// it hands over are the frames in order, split as the peer's frame size asks,
// and bytes handed to the socket stay as they were while later turns are
// written after them in the same buffer.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FrameOutput } from '../../../src/proxy/http2/codec/frame-output';
import { Flag, FrameType } from '../../../src/proxy/http2/codec/frames';
import { seeded } from '../../helpers/prng';

interface ParsedFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

function parse(bytes: Buffer): ParsedFrame[] {
  const frames: ParsedFrame[] = [];
  for (let at = 0; at < bytes.length; ) {
    const length = bytes.readUIntBE(at, 3);
    frames.push({ type: bytes[at + 3], flags: bytes[at + 4], streamId: bytes.readUInt32BE(at + 5), payload: bytes.subarray(at + 9, at + 9 + length) });
    at += 9 + length;
  }
  return frames;
}

function pattern(n: number, seed: number): Buffer {
  const random = seeded(seed);
  return Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
}

describe('FrameOutput', () => {
  test('a turn of heads and DATA of every size comes out as those frames, in order', () => {
    const out = new FrameOutput();
    const block = pattern(40_000, 1);
    const bodies = [0, 1, 63, 64, 65, 1023, 1024, 5000, 20_000].map((n, i) => pattern(n, 10 + i));
    for (const [i, body] of bodies.entries()) {
      out.headerBlock(2 * i + 1, block, 30 + i * 100, false, 16_384);
      out.frameHeader(body.length, FrameType.DATA, Flag.END_STREAM, 2 * i + 1);
      out.bytes(body);
    }
    const expectedLength = bodies.reduce((sum, body, i) => sum + 9 + 30 + i * 100 + 9 + body.length, 0);
    assert.equal(out.length, expectedLength);
    const frames = parse(Buffer.concat(out.take()));
    assert.equal(out.length, 0);
    assert.equal(frames.length, 2 * bodies.length);
    for (const [i, body] of bodies.entries()) {
      assert.deepEqual(frames[2 * i], { type: FrameType.HEADERS, flags: Flag.END_HEADERS, streamId: 2 * i + 1, payload: block.subarray(0, 30 + i * 100) });
      assert.deepEqual(frames[2 * i + 1], { type: FrameType.DATA, flags: Flag.END_STREAM, streamId: 2 * i + 1, payload: body });
    }
  });

  test('a header block larger than the frame size goes as HEADERS and CONTINUATION frames', () => {
    const out = new FrameOutput();
    const block = pattern(40_000, 2);
    out.headerBlock(7, block, 40_000, true, 16_384);
    const frames = parse(Buffer.concat(out.take()));
    assert.deepEqual(
      frames.map((f) => [f.type, f.flags, f.payload.length]),
      [
        [FrameType.HEADERS, Flag.END_STREAM, 16_384],
        [FrameType.CONTINUATION, 0, 16_384],
        [FrameType.CONTINUATION, Flag.END_HEADERS, 40_000 - 2 * 16_384],
      ],
    );
    assert.deepEqual(Buffer.concat(frames.map((f) => f.payload)), block);
  });

  test('a turn of small frames larger than a buffer still leaves as one piece (one write)', () => {
    const out = new FrameOutput();
    const body = pattern(100, 3);
    for (let id = 1; id < 2000; id += 2) {
      out.frameHeader(body.length, FrameType.DATA, Flag.END_STREAM, id);
      out.bytes(body);
    }
    const pieces = out.take();
    assert.equal(pieces.length, 1);
    const frames = parse(pieces[0]);
    assert.equal(frames.length, 1000);
    assert.ok(frames.every((f, i) => f.streamId === 2 * i + 1 && f.payload.equals(body)));
  });

  test('bytes taken for the socket are not written over by later turns', () => {
    const out = new FrameOutput();
    const taken: { pieces: Buffer[]; copy: Buffer }[] = [];
    for (let turn = 0; turn < 200; turn++) {
      const body = pattern((turn * 37) % 1500, turn);
      out.frameHeader(body.length, FrameType.DATA, 0, 1);
      out.bytes(body);
      const pieces = out.take();
      taken.push({ pieces, copy: Buffer.from(Buffer.concat(pieces)) });
    }
    for (const [turn, { pieces, copy }] of taken.entries()) assert.deepEqual(Buffer.concat(pieces), copy, `turn ${turn}`);
  });
});
