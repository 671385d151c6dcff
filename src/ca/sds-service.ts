// The control plane's side of issuance: FetchSecrets of
// envoy.service.secret.v3.SecretDiscoveryService on the xDS port (see
// sds-protocol.ts). Who may obtain which identity:
//   - a caller presenting a join token gets the token's (namespace, service);
//   - in dev mode a caller without a token gets the identity its node declares
//     (WEFT_NAMESPACE / WEFT_SERVICE); a token, when sent, still rules.
// Refusals are gRPC statuses with the reason: INVALID_ARGUMENT (malformed
// request or CSR), UNAUTHENTICATED (no token outside dev mode),
// PERMISSION_DENIED (bad token, or a CSR for another identity).
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../observe/log';
import { NODE_METADATA } from '../xds/node-info';
import { anyOf } from '../xds/protos';
import { CaError, type CertificateAuthority, type WorkloadIdentity } from './certificate-authority';
import { JoinTokenError, type JoinTokenStore } from './join-tokens';
import {
  MalformedRequest,
  sdsMethod,
  certificateSecret,
  CSR_METADATA,
  SECRET_TYPE_URL,
  WORKLOAD_SECRET_NAME,
} from './sds-protocol';

export interface SdsServiceOptions {
  ca: CertificateAuthority;
  tokens: JoinTokenStore;
  /** Token-less issuance for the node's declared identity. */
  dev: boolean;
  log: Logger;
}

type Obj = Record<string, any>;

export function sdsService(opts: SdsServiceOptions): { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation } {
  const definition = {
    FetchSecrets: sdsMethod('FetchSecrets'),
  } as grpc.ServiceDefinition;
  let version = 0;
  const handlers: grpc.UntypedServiceImplementation = {
    FetchSecrets: (call: grpc.ServerUnaryCall<Obj | MalformedRequest, Obj>, callback: grpc.sendUnaryData<Obj>) => {
      fetchSecrets(opts, call).then(
        (chainPem) =>
          callback(null, {
            version_info: String(++version),
            type_url: SECRET_TYPE_URL,
            nonce: String(version),
            resources: [anyOf(SECRET_TYPE_URL, certificateSecret(WORKLOAD_SECRET_NAME, chainPem))],
          }),
        (err: unknown) => {
          const status = statusOf(err);
          opts.log(status.code === grpc.status.INTERNAL ? 'error' : 'warn', 'certificate refused', {
            peer: call.getPeer(),
            code: grpc.status[status.code],
            reason: status.details,
          });
          callback(status);
        },
      );
    },
  };
  return { definition, handlers };
}

class Refusal extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

async function fetchSecrets(opts: SdsServiceOptions, call: grpc.ServerUnaryCall<Obj | MalformedRequest, Obj>): Promise<string> {
  const req = call.request;
  if (req instanceof MalformedRequest) throw new Refusal(grpc.status.INVALID_ARGUMENT, req.message);
  const names: string[] = req.resource_names ?? [];
  if (names.length !== 1 || names[0] !== WORKLOAD_SECRET_NAME) {
    throw new Refusal(grpc.status.INVALID_ARGUMENT, `FetchSecrets serves resource_names ["${WORKLOAD_SECRET_NAME}"] only, got ${JSON.stringify(names)}`);
  }
  const node: Obj = req.node ?? {};
  const csr = metadataString(node, CSR_METADATA);
  if (!csr) throw new Refusal(grpc.status.INVALID_ARGUMENT, `node metadata ${CSR_METADATA} (the CSR, PEM) is missing`);
  const identity = authorize(opts, call.metadata, node);
  try {
    return (await opts.ca.sign(csr, identity, typeof node.id === 'string' ? node.id : '')).chainPem;
  } catch (err) {
    if (err instanceof CaError) {
      throw new Refusal(err.code === 'CSR_IDENTITY' ? grpc.status.PERMISSION_DENIED : grpc.status.INVALID_ARGUMENT, err.message);
    }
    throw err;
  }
}

function authorize(opts: SdsServiceOptions, metadata: grpc.Metadata, node: Obj): WorkloadIdentity {
  const header = metadata.get('authorization')[0];
  if (header !== undefined) {
    const m = /^Bearer\s+(\S+)$/i.exec(String(header));
    if (!m) throw new Refusal(grpc.status.UNAUTHENTICATED, 'authorization metadata must be "Bearer <join token>"');
    try {
      return opts.tokens.verify(m[1]);
    } catch (err) {
      if (err instanceof JoinTokenError) throw new Refusal(grpc.status.PERMISSION_DENIED, err.message);
      throw err;
    }
  }
  if (!opts.dev) throw new Refusal(grpc.status.UNAUTHENTICATED, 'a join token is required (authorization: Bearer <token>); create one with `weft token create --service <name>`');
  const service = metadataString(node, NODE_METADATA.service);
  if (!service) throw new Refusal(grpc.status.INVALID_ARGUMENT, `dev mode: node metadata ${NODE_METADATA.service} is missing, so there is no identity to issue`);
  return { namespace: metadataString(node, NODE_METADATA.namespace) ?? 'default', service };
}

function metadataString(node: Obj, key: string): string | undefined {
  const v = node.metadata?.fields?.[key];
  const s = v?.stringValue ?? v?.string_value;
  return typeof s === 'string' && s !== '' ? s : undefined;
}

function statusOf(err: unknown): Partial<grpc.StatusObject> & { code: grpc.status; details: string } {
  if (err instanceof Refusal) return { code: err.code, details: err.message };
  return { code: grpc.status.INTERNAL, details: `issuance failed: ${(err as Error)?.message ?? String(err)}` };
}
