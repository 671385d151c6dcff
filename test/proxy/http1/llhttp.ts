// Node's llhttp binding, the parser node:http itself drives (lib/_http_common).
// An internal module: typed here with just what the benchmark uses.

interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(buf: Buffer): number | Error;
  finish(): number | Error | undefined;
  close(): void;
  [callback: number]: (...args: never[]) => unknown;
}

interface LlhttpParserClass {
  new (): LlhttpParser;
  REQUEST: number;
  RESPONSE: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const HTTPParser: LlhttpParserClass = require('_http_common').HTTPParser;
