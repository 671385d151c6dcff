// `weft plugin log`: ships the app's stdout/stderr (from the unit channel)
// and the files named in `files` as structured records to the sink, through
// a bounded buffer (shipper.ts). Weft run stops it after the app has exited:
// it then reads the app's output to its end, sends what it holds (for a few
// seconds at most) and exits 0. SIGHUP switches sink and settings; the held
// lines go to the new sink.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { jsonLogger, type LogLevel } from '../../observe/log';
import { logConfigSchema, type LogConfig } from '../builtin-plugins';
import { PluginConfigError, pluginRuntime, unitRequest, untilStopped } from '../plugin-runtime';
import { AppOutputSource } from './app-output-source';
import { FileFollower } from './file-follower';
import type { LogRecord, RecordOrigin } from './log-record';
import { Shipper, type ShipperOptions } from './shipper';
import { makeSink } from './sinks';

/** At stop: how long the app's last lines may take to arrive, then how long sending what is held may take. */
const END_WAIT_MS = 3000;
const FLUSH_MS = 5000;

export async function runPlugin(args: string[]): Promise<number> {
  if (args.length > 0) throw new PluginConfigError(`weft plugin log takes no arguments (got ${args.join(' ')}): its settings are the Plugin's config.global`);
  const log = jsonLogger((process.env.WEFT_LOG_LEVEL as LogLevel | undefined) ?? 'info');
  // From the start: a stop while it is setting up still reads and sends what the app wrote.
  const stopped = untilStopped();
  const rt = pluginRuntime('log', logConfigSchema, process.env, log);
  rt.ready();
  const origin = await unitOrigin(rt.unitSocket);
  const record = ({ time, ...fields }: Pick<LogRecord, 'time' | 'line' | 'stream' | 'file' | 'dropped'>): LogRecord => ({ time, ...origin, ...stripUndefined(fields) });
  const dropRecord = (dropped: number): LogRecord => record({ time: new Date().toISOString(), line: `weft log plugin: ${dropped} lines dropped (the sink was down or slow and the buffer was full)`, dropped });

  // The last app-output line shipped, kept beside the config file so a restarted plugin goes on from there.
  const seqFile = process.env.WEFT_PLUGIN_CONFIG_FILE ? path.join(path.dirname(process.env.WEFT_PLUGIN_CONFIG_FILE), `${rt.name}.shipped-seq`) : undefined;
  const shipper = new Shipper(makeSink(rt.config.sink, rt.config.token), shipperOptions(rt.config), dropRecord, log, (seq) => {
    if (seqFile) fs.writeFileSync(seqFile, String(seq), { mode: 0o600 });
  });
  log('info', 'shipping logs', { sink: makeSink(rt.config.sink, undefined).describe, files: rt.config.files ?? [], service: origin.service });

  const source = rt.unitSocket
    ? new AppOutputSource(
        rt.unitSocket,
        readSeq(seqFile),
        (l) => shipper.add({ record: record({ time: l.time, stream: l.stream, line: l.line }), seq: l.seq }),
        (n) => shipper.countDropped(n),
        log,
      )
    : undefined;
  if (!source) log('warn', "no unit channel (WEFT_UNIT_SOCKET): the app's output is not shipped, only the files named");
  source?.start();

  const followers = new Map<string, FileFollower>();
  const follow = (files: readonly string[]) => {
    for (const [name, f] of followers) {
      if (!files.includes(name)) {
        void f.stop();
        followers.delete(name);
      }
    }
    for (const name of files) {
      if (followers.has(name)) continue;
      const f = new FileFollower(name, path.resolve(name), (line) => shipper.add({ record: record({ time: new Date().toISOString(), file: name, line }) }), log);
      followers.set(name, f);
      f.start();
    }
  };
  follow(rt.config.files ?? []);

  rt.onReload((config) => {
    shipper.reconfigure(makeSink(config.sink, config.token), shipperOptions(config));
    follow(config.files ?? []);
    log('info', 'shipping logs', { sink: makeSink(config.sink, undefined).describe, files: config.files ?? [] });
  });

  const signal = await stopped;
  log('info', 'stopping: sending what is left', { signal });
  await Promise.all([...followers.values()].map((f) => f.stop()));
  if (source && !(await source.waitEnd(END_WAIT_MS))) log('warn', `the app's output had not ended ${END_WAIT_MS} ms after the stop: its last lines may be missing`);
  source?.stop();
  const left = await shipper.flush(FLUSH_MS);
  shipper.stop();
  if (left > 0) log('warn', `${left} lines not delivered to ${makeSink(rt.config.sink, undefined).describe} at stop`, { lost: left });
  return 0;
}

function shipperOptions(c: LogConfig): ShipperOptions {
  return { bufferLines: c.bufferLines, batchLines: Math.min(c.batchLines, c.bufferLines), flushIntervalMs: c.flushInterval };
}

async function unitOrigin(socket: string | undefined): Promise<RecordOrigin> {
  const host = process.env.WEFT_HOSTNAME || os.hostname();
  let unit: { service?: string; namespace?: string } = {};
  if (socket) {
    try {
      unit = (await unitRequest(socket, 'GET', '/v1/unit')).body as typeof unit;
    } catch {
      // The environment says the same for the app's service.
    }
  }
  return {
    service: unit.service ?? process.env.WEFT_SERVICE ?? '',
    namespace: unit.namespace ?? process.env.WEFT_NAMESPACE ?? 'default',
    host,
    // weft run is the parent (`ip netns exec` execs in place): one unit on this host.
    instance: `${host}/${process.ppid}`,
  };
}

function readSeq(file: string | undefined): number {
  if (!file) return 0;
  try {
    const n = Number(fs.readFileSync(file, 'utf8'));
    return Number.isInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
