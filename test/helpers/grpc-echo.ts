// A tiny gRPC service for integration tests, with a JSON codec so no proto
// file is needed: Hello answers with the server's name, Hang never answers,
// Flaky fails with UNAVAILABLE until the call's attempt number reaches `succeedOnAttempt`.
import * as grpc from '@grpc/grpc-js';

const json = {
  serialize: (value: unknown) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer) => JSON.parse(bytes.toString() || 'null'),
};

function method(name: string) {
  return {
    path: `/test.Echo/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  };
}

export const echoService = { Hello: method('Hello'), Hang: method('Hang'), Flaky: method('Flaky') };

export const EchoClient = grpc.makeGenericClientConstructor(echoService, 'Echo') as unknown as new (
  target: string,
  creds: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => grpc.Client & Record<string, Function>;

export interface EchoServer {
  name: string;
  port: number;
  /** Attempts seen by Flaky, by the request's `id`. */
  flakyAttempts: Map<string, number>;
  calls: number;
  close(): Promise<void>;
}

export async function startEchoServer(name: string, succeedOnAttempt = 3): Promise<EchoServer> {
  const server = new grpc.Server();
  const state: EchoServer = {
    name,
    port: 0,
    flakyAttempts: new Map(),
    calls: 0,
    close: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
  server.addService(echoService, {
    Hello: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
      state.calls++;
      cb(null, { from: name, echo: call.request });
    },
    Hang: () => {
      state.calls++; // never answers: the client's deadline has to end it
    },
    Flaky: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
      state.calls++;
      const id = String(call.request?.id);
      const attempt = (state.flakyAttempts.get(id) ?? 0) + 1;
      state.flakyAttempts.set(id, attempt);
      if (attempt < succeedOnAttempt) cb({ code: grpc.status.UNAVAILABLE, details: `attempt ${attempt} fails` });
      else cb(null, { from: name, attempt });
    },
  });
  state.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  return state;
}

/** Promisified unary call. */
export function unary(client: grpc.Client & Record<string, Function>, methodName: string, request: unknown, deadlineMs = 5000): Promise<any> {
  return new Promise((resolve, reject) => {
    client[methodName](request, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: unknown) =>
      err ? reject(err) : resolve(res),
    );
  });
}
