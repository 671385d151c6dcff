// An HTTP/1.1 request to an HTTP/2 upstream: the request goes out as an h2
// stream, the response comes back as HTTP/1.1 with chunked framing so that
// trailers (grpc-status among them) reach the client as trailer fields. An
// HTTP/1.0 client cannot read chunked framing: its body ends with the connection.
import * as http2 from 'node:http2';
import type { Endpoint, Route, RouteAction } from '../config/types';
import type { RequestTrace } from '../../observe/tracing/proxy-tracer';
import { setTraceHeaders } from '../../observe/tracing/trace-headers';
import type { LocalFailure } from '../retry';
import type { ClusterRuntime } from '../runtime';
import { isH2Forbidden } from '../http2/session-pool';
import type { RequestHead } from './head-parser';
import { reasonPhrase } from './head-writer';
import type { H2ClientStream } from '../http2/codec/client-stream';

export interface BridgeHost {
  writeDownstream(chunk: Buffer): void;
  pauseDownstream(): void;
  resumeDownstream(): void;
  /** The response was written whole; `close`: its body was delimited by closing the connection. */
  bridgeDone(status: number, close: boolean): void;
  /** Nothing was written yet: answer locally (or retry). */
  bridgeFailed(status: number, flag: string, message: string, failure: LocalFailure): void;
  /**
   * The response head arrived, nothing written yet: true when the host retries
   * or answers instead (the bridge then goes quiet). The host may edit `headers`
   * (filters' encode hooks): the head is written from them.
   */
  bridgeRetries(status: number, headers: http2.IncomingHttpHeaders, trailersOnly: boolean): boolean;
  /** The response was cut after it started. */
  bridgeAborted(): void;
}

export class H2Bridge {
  private readonly up: H2ClientStream;
  private responded = false;
  private status = 0;
  private noBody = false;
  /** HTTP/1.0 client: no chunked framing, the body runs until the connection closes. */
  private readonly untilClose: boolean;
  private readonly keepAlive: boolean;
  private trailers: http2.IncomingHttpHeaders | undefined;
  /** Given up on (a retry replaced it): its events do nothing. */
  private dead = false;

  constructor(
    private readonly host: BridgeHost,
    head: RequestHead,
    path: string,
    route: Route,
    action: RouteAction,
    cluster: ClusterRuntime,
    endpoint: Endpoint,
    hasBody: boolean,
    /** With a retry policy: x-envoy-attempt-count. */
    attempt?: number,
    /** With tracing: the context for the next hop. */
    trace?: RequestTrace,
  ) {
    this.untilClose = head.minor === 0;
    this.keepAlive = head.keepAlive;
    const headers: http2.OutgoingHttpHeaders = { ':method': head.method, ':path': path, ':authority': action.hostRewrite ?? head.host, ':scheme': 'http' };
    const remove = new Set(route.requestHeadersToRemove);
    for (let i = 0; i < head.headers.length; i += 2) {
      const name = head.headers[i].toLowerCase();
      if (isH2Forbidden(name) || remove.has(name)) continue;
      const prev = headers[name];
      headers[name] = prev === undefined ? head.headers[i + 1] : `${prev}, ${head.headers[i + 1]}`;
    }
    for (const h of route.requestHeadersToAdd) headers[h.name.toLowerCase()] = h.value;
    if (attempt !== undefined) headers['x-envoy-attempt-count'] = String(attempt);
    if (trace) setTraceHeaders(headers, trace);
    this.up = cluster.h2Pool().session(endpoint).request(headers, { endStream: !hasBody });
    this.up.on('drain', () => !this.dead && host.resumeDownstream());
    this.up.on('response', (h, flags) => {
      if (this.dead) return;
      const trailersOnly = this.up.endAfterHeaders || (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      if (host.bridgeRetries(Number(h[':status']), h, trailersOnly)) return;
      this.onResponse(h, route, head.method);
    });
    this.up.on('data', (chunk: Buffer) => {
      if (this.dead || this.noBody || chunk.length === 0) return;
      if (this.untilClose) return host.writeDownstream(chunk);
      host.writeDownstream(Buffer.from(chunk.length.toString(16) + '\r\n', 'latin1'));
      host.writeDownstream(chunk);
      host.writeDownstream(CRLF);
    });
    this.up.on('trailers', (t) => (this.trailers = t));
    this.up.on('end', () => {
      if (this.dead || !this.responded) return;
      // A reset that cut the response short ends a destroyed stream: no last chunk for it.
      if (this.up.destroyed) return host.bridgeAborted();
      if (!this.noBody && !this.untilClose) host.writeDownstream(Buffer.from('0\r\n' + trailerLines(this.trailers) + '\r\n', 'latin1'));
      host.bridgeDone(this.status, this.untilClose && !this.noBody);
    });
    this.up.on('error', (err) => this.failed(`upstream stream failed: ${err.message}`, /connect|ECONNREFUSED/i.test(`${(err as NodeJS.ErrnoException).code} ${err.message}`)));
    this.up.on('close', () => {
      if (!this.responded) this.failed(`upstream reset the stream (code ${this.up.rstCode})`, false);
    });
  }

  write(chunk: Buffer): void {
    if (!this.up.write(chunk)) this.host.pauseDownstream();
  }

  end(): void {
    this.up.end();
  }

  cancel(): void {
    this.up.close();
  }

  /** A retry replaces this attempt: cancel it and ignore what it still says. */
  abandon(): void {
    this.dead = true;
    this.up.close(http2.constants.NGHTTP2_CANCEL);
  }

  private onResponse(h: http2.IncomingHttpHeaders, route: Route, method: string): void {
    this.responded = true;
    this.status = Number(h[':status']);
    this.noBody = method === 'HEAD' || this.status === 204 || this.status === 304;
    const remove = new Set(route.responseHeadersToRemove);
    let out = `HTTP/1.1 ${this.status} ${reasonPhrase(this.status)}\r\n`;
    for (const [name, value] of Object.entries(h)) {
      if (isH2Forbidden(name) || name === 'content-length' || remove.has(name) || value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) out += `${name}: ${v}\r\n`;
    }
    for (const a of route.responseHeadersToAdd) out += `${a.name}: ${a.value}\r\n`;
    if (!this.untilClose) {
      if (!this.noBody) out += 'transfer-encoding: chunked\r\n';
    } else if (!this.noBody) {
      out += 'connection: close\r\n';
    } else if (this.keepAlive) {
      out += 'connection: keep-alive\r\n';
    }
    this.host.writeDownstream(Buffer.from(out + '\r\n', 'latin1'));
  }

  private failed(message: string, connect: boolean): void {
    if (this.dead) return;
    if (this.responded) return this.host.bridgeAborted();
    this.responded = true; // once
    const failure: LocalFailure = this.up.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM ? 'refused' : connect ? 'connect' : 'reset';
    this.host.bridgeFailed(503, connect ? 'UF' : 'UC', message, failure);
  }
}

const CRLF = Buffer.from('\r\n', 'latin1');

function trailerLines(t: http2.IncomingHttpHeaders | undefined): string {
  let out = '';
  for (const [name, value] of Object.entries(t ?? {})) {
    if (isH2Forbidden(name) || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) out += `${name}: ${v}\r\n`;
  }
  return out;
}
