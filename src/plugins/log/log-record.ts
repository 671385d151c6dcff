// One shipped line: where it came from (the unit and the app's stream or a
// followed file) and the line itself. The same shape goes to a file or an
// HTTP sink as one JSON object per line; the OTLP sink maps it to a LogRecord.

export interface LogRecord {
  time: string;
  service: string;
  namespace: string;
  /** The host's name. */
  host: string;
  /** The unit on that host: <host>/<pid of weft run>. */
  instance: string;
  /** The app's stdout or stderr, or… */
  stream?: 'stdout' | 'stderr';
  /** …the followed file (as configured). */
  file?: string;
  line: string;
  /** Set on the record that reports lines dropped before it (buffer full while the sink was down or slow). */
  dropped?: number;
}

/** Where records come from: the fields every record of this plugin shares. */
export interface RecordOrigin {
  service: string;
  namespace: string;
  host: string;
  instance: string;
}
