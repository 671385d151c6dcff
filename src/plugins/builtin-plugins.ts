// The plugins weft ships: a Plugin whose command is `[weft, plugin, <name>, …]`
// runs one of these with the same weft as `weft run` (plugin-supervisor.ts
// resolves the `weft`). Their config is the Plugin's `config.global`, all
// strings like every config group; the schemas here are checked when the
// resource is applied (resource-rules.ts) and again when the plugin starts,
// so a typo is an error naming `spec.config.global.<key>`, not a plugin that
// crash-loops. Only zod and duration parsing here: the control plane
// imports this file; each plugin's code is loaded only when it runs.
import { z } from 'zod';
import { DURATION_PATTERN, durationToMs } from '../config/duration';

const duration = z.string().regex(DURATION_PATTERN, 'a duration such as 500ms, 5s or 1h').transform(durationToMs);
const positiveDuration = duration.refine((ms) => ms > 0, 'must be longer than 0');
const wholeNumber = (min: number, max: number) =>
  z
    .string()
    .regex(/^[0-9]+$/, 'a whole number')
    .transform(Number)
    .refine((n) => n >= min && n <= max, `between ${min} and ${max}`);
const list = z.string().transform((s) => s.split(',').map((x) => x.trim()).filter((x) => x.length > 0));

/** Where the log plugin sends lines: a file, an HTTP endpoint (NDJSON POSTs) or an OTLP/HTTP logs collector. */
const logSink = z.string().refine((s) => /^(file:.+|https?:\/\/.+|otlp\+https?:\/\/.+)$/.test(s), 'file:<path>, http(s)://<url> (NDJSON POSTs) or otlp+http(s)://<collector>/v1/logs');

export const logConfigSchema = z.strictObject({
  /** file:/var/log/shop.ndjson | https://logs.example/ingest | otlp+http://collector:4318/v1/logs */
  sink: logSink,
  /** Files to follow besides the app's stdout/stderr, comma-separated (relative to the working directory). */
  files: list.optional(),
  /** Lines held while the sink is slow or down; beyond it the oldest are dropped and counted. */
  bufferLines: wholeNumber(1, 1_000_000).default(10_000),
  /** Lines per write or POST. */
  batchLines: wholeNumber(1, 100_000).default(500),
  /** The longest a line waits for its batch to fill. */
  flushInterval: positiveDuration.default(1000),
  /** A bearer token for an http(s)/otlp sink. */
  token: z.string().min(1).optional(),
});

export const backupConfigSchema = z.strictObject({
  /** Where archives are kept (relative to the working directory). */
  dir: z.string().min(1),
  /** What to archive (tar.gz), comma-separated, relative to the working directory; or `command`/`restoreCommand`. */
  paths: list.optional(),
  /** sh command that writes an archive to $WEFT_BACKUP_FILE. */
  command: z.string().min(1).optional(),
  /** sh command that restores from $WEFT_BACKUP_FILE. */
  restoreCommand: z.string().min(1).optional(),
  /** How often a backup runs (one more always runs when the unit stops). */
  every: positiveDuration.default(3_600_000),
  /** Archives kept; older ones are removed. */
  keep: wholeNumber(1, 10_000).default(5),
});

export const monitorConfigSchema = z.strictObject({
  /**
   * http://127.0.0.1:8080/healthz | /healthz (the app's own port) | tcp:127.0.0.1:8080 | exec:<sh command>
   * (exit 0 = healthy); absent: a TCP connect to the app's port. HTTP: 2xx and 3xx are healthy.
   */
  probe: z
    .string()
    .refine((s) => /^(https?:\/\/.+|\/.*|tcp:.+:[0-9]{1,5}|exec:.+)$/.test(s), 'http(s)://<url>, /<path> (on the app\'s port), tcp:<host>:<port> or exec:<command>')
    .optional(),
  interval: positiveDuration.default(5000),
  timeout: positiveDuration.default(1000),
  /** Failed probes in a row before the instance is marked unhealthy. */
  failureThreshold: wholeNumber(1, 100).default(3),
  /** Passed probes in a row before an unhealthy instance is healthy again. */
  successThreshold: wholeNumber(1, 100).default(1),
});

export const BUILTIN_PLUGINS = {
  log: { summary: "ships the app's output and named files to a file, an HTTP endpoint or an OTLP collector", config: logConfigSchema, types: ['general'] },
  backup: { summary: 'backs up on a schedule and at stop, keeps the last N; `backup restore` (an init plugin) restores the latest', config: backupConfigSchema, types: ['general', 'init'] },
  monitor: { summary: "probes the app and takes the instance out of load balancing while it fails", config: monitorConfigSchema, types: ['general'] },
} as const;

export type BuiltinPluginName = keyof typeof BUILTIN_PLUGINS;
export type LogConfig = z.output<typeof logConfigSchema>;
export type BackupConfig = z.output<typeof backupConfigSchema>;
export type MonitorConfig = z.output<typeof monitorConfigSchema>;

/** The built-in a command runs (`[weft, plugin, log]` → log), or undefined for any other program. */
export function builtinOf(command: readonly string[]): string | undefined {
  return command[0] === 'weft' && command[1] === 'plugin' ? (command[2] ?? '') : undefined;
}

export function isBuiltin(name: string): name is BuiltinPluginName {
  return Object.prototype.hasOwnProperty.call(BUILTIN_PLUGINS, name);
}
