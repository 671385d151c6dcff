// Where the log plugin sends its records: `file:<path>` (NDJSON appended),
// `http(s)://…` (each batch POSTed as NDJSON) or `otlp+http(s)://…/v1/logs`
// (an OTLP/HTTP logs collector, JSON encoding). A send either delivers the
// whole batch or throws; the shipper retries it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LogRecord } from './log-record';

export interface Sink {
  /** What the sink is, for log lines (no token). */
  readonly describe: string;
  send(batch: readonly LogRecord[]): Promise<void>;
}

const POST_TIMEOUT_MS = 10_000;

export function makeSink(spec: string, token: string | undefined, cwd = process.cwd()): Sink {
  if (spec.startsWith('file:')) return fileSink(path.resolve(cwd, spec.slice('file:'.length)));
  if (spec.startsWith('otlp+')) return otlpSink(spec.slice('otlp+'.length), token);
  return httpSink(spec, token);
}

function fileSink(file: string): Sink {
  let dirMade = false;
  return {
    describe: `file:${file}`,
    async send(batch) {
      if (!dirMade) {
        await fs.promises.mkdir(path.dirname(file), { recursive: true });
        dirMade = true;
      }
      // One append per batch: the lines of a batch land together.
      await fs.promises.appendFile(file, batch.map((r) => JSON.stringify(r) + '\n').join(''));
    },
  };
}

function httpSink(url: string, token: string | undefined): Sink {
  return {
    describe: url,
    send: (batch) => post(url, 'application/x-ndjson', batch.map((r) => JSON.stringify(r) + '\n').join(''), token),
  };
}

function otlpSink(url: string, token: string | undefined): Sink {
  return {
    describe: `otlp+${url}`,
    send: (batch) => post(url, 'application/json', JSON.stringify(otlpLogsRequest(batch)), token),
  };
}

async function post(url: string, contentType: string, body: string, token: string | undefined): Promise<void> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body,
    signal: AbortSignal.timeout(POST_TIMEOUT_MS),
  });
  const text = await res.text().catch(() => '');
  if (!res.ok) throw new Error(`${url} answered ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`);
}

type OtlpValue = { stringValue: string } | { intValue: string };
type OtlpAttribute = { key: string; value: OtlpValue };

const str = (key: string, value: string): OtlpAttribute => ({ key, value: { stringValue: value } });

/**
 * An ExportLogsServiceRequest in OTLP's JSON encoding (opentelemetry-proto,
 * logs/v1): one ResourceLogs per unit (service.name, service.namespace,
 * service.instance.id, host.name), each line a LogRecord whose body is the
 * line, with log.iostream or log.file.path (the semantic conventions' names).
 * int64 fields are decimal strings, as the JSON mapping has them.
 */
export function otlpLogsRequest(batch: readonly LogRecord[]): object {
  const byUnit = new Map<string, LogRecord[]>();
  for (const r of batch) {
    const key = JSON.stringify([r.service, r.namespace, r.instance, r.host]);
    const list = byUnit.get(key);
    if (list) list.push(r);
    else byUnit.set(key, [r]);
  }
  return {
    resourceLogs: [...byUnit.values()].map((records) => {
      const first = records[0];
      return {
        resource: {
          attributes: [str('service.name', first.service), str('service.namespace', first.namespace), str('service.instance.id', first.instance), str('host.name', first.host)],
        },
        scopeLogs: [
          {
            scope: { name: 'weft.plugin.log' },
            logRecords: records.map((r) => {
              const nanos = `${BigInt(Date.parse(r.time)) * 1_000_000n}`;
              const attributes: OtlpAttribute[] = [];
              if (r.stream) attributes.push(str('log.iostream', r.stream));
              if (r.file) attributes.push(str('log.file.path', r.file));
              if (r.dropped !== undefined) attributes.push({ key: 'weft.log.dropped', value: { intValue: String(r.dropped) } });
              return {
                timeUnixNano: nanos,
                observedTimeUnixNano: nanos,
                // Only what a line says for itself is known: stderr is not necessarily an error.
                ...(r.dropped !== undefined ? { severityNumber: 13, severityText: 'WARN' } : {}),
                body: { stringValue: r.line },
                attributes,
              };
            }),
          },
        ],
      };
    }),
  };
}
