// What the sidecar and the control plane agree on for issuance over SDS:
// unary envoy.service.secret.v3.SecretDiscoveryService/FetchSecrets with
// resource_names ["default"], the CSR in node metadata WEFT_CSR and the join
// token in call metadata "authorization: Bearer <token>". The answer holds one
// Secret "default" whose tls_certificate carries the chain only (the key
// never leaves the sidecar). The trust bundle is the Secret "ROOTCA", sent
// over ADS.
import { messageType } from '../xds/protos';
import { TYPE_URL } from '../xds/type-urls';

export const SDS_SERVICE_NAME = 'envoy.service.secret.v3.SecretDiscoveryService';
export const FETCH_SECRETS_PATH = `/${SDS_SERVICE_NAME}/FetchSecrets`;
/** Node metadata field holding the CSR, PEM. */
export const CSR_METADATA = 'WEFT_CSR';
export const WORKLOAD_SECRET_NAME = 'default';
export const TRUST_BUNDLE_SECRET_NAME = 'ROOTCA';

const REQUEST = 'envoy.service.discovery.v3.DiscoveryRequest';
const RESPONSE = 'envoy.service.discovery.v3.DiscoveryResponse';

export function encodeDiscoveryRequest(obj: object): Buffer {
  const t = messageType(REQUEST);
  return Buffer.from(t.encode(t.fromObject(obj as Record<string, unknown>)).finish());
}

export function decodeDiscoveryRequest(bytes: Buffer): Record<string, any> {
  const t = messageType(REQUEST);
  return t.toObject(t.decode(bytes), { enums: String, longs: Number, defaults: true, arrays: true });
}

export function encodeDiscoveryResponse(obj: object): Buffer {
  const t = messageType(RESPONSE);
  return Buffer.from(t.encode(t.fromObject(obj as Record<string, unknown>)).finish());
}

export function decodeDiscoveryResponse(bytes: Buffer): Record<string, any> {
  const t = messageType(RESPONSE);
  return t.toObject(t.decode(bytes), { enums: String, longs: Number, defaults: true, arrays: true });
}

/** The Secret resource holding a certificate chain (no key). */
export function certificateSecret(name: string, chainPem: string): Record<string, unknown> {
  return { name, tls_certificate: { certificate_chain: { inline_string: chainPem } } };
}

/** The Secret resource holding a trust bundle. */
export function trustBundleSecret(name: string, bundlePem: string): Record<string, unknown> {
  return { name, validation_context: { trusted_ca: { inline_string: bundlePem } } };
}

export const SECRET_TYPE_URL = TYPE_URL.Secret;

/** A DiscoveryRequest that did not decode: what the server's handler gets instead of the request, to refuse it with the reason. */
export class MalformedRequest {
  constructor(readonly message: string) {}
}

/** A gRPC method of the SecretDiscoveryService over DiscoveryRequest/Response (FetchSecrets unary, StreamSecrets bidi). */
export function sdsMethod(method: 'FetchSecrets' | 'StreamSecrets') {
  const streaming = method === 'StreamSecrets';
  return {
    path: `/${SDS_SERVICE_NAME}/${method}`,
    requestStream: streaming,
    responseStream: streaming,
    requestSerialize: encodeDiscoveryRequest,
    requestDeserialize: (b: Buffer): Record<string, any> | MalformedRequest => {
      try {
        return decodeDiscoveryRequest(b);
      } catch (err) {
        return new MalformedRequest(`DiscoveryRequest does not decode: ${(err as Error).message}`);
      }
    },
    responseSerialize: encodeDiscoveryResponse,
    responseDeserialize: decodeDiscoveryResponse,
    originalName: streaming ? 'streamSecrets' : 'fetchSecrets',
  };
}
