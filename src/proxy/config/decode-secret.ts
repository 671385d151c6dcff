// envoy.extensions.transport_sockets.tls.v3.Secret → the trust bundle the
// sidecar verifies peers with (SDS over ADS, the Secret "ROOTCA").
//
// Supported subset (anything else is a NACK naming it):
//   Secret                    name, validation_context
//   CertificateValidationContext  trusted_ca
//   DataSource                inline_string | inline_bytes (PEM, one or more certificates)
// Not supported (NACK): tls_certificate over ADS (the workload certificate comes
// from FetchSecrets, with a key made in the sidecar), session_ticket_keys,
// generic_secret, a file or environment DataSource, any other validation field.
import { X509Certificate } from 'node:crypto';
import { splitPemCertificates } from '../../ca/cert-info';
import type { TrustBundleSecret } from '../tls/secret-store';
import { FieldPath, onlyFields } from './nack';
import type { Obj } from './read-proto';

const T = 'envoy.extensions.transport_sockets.tls.v3.';

export interface DecodedSecret {
  name: string;
  trustBundle: TrustBundleSecret;
}

export function decodeSecret(msg: Obj): DecodedSecret {
  const name: string = msg.name ?? '';
  const at = new FieldPath('Secret', name);
  onlyFields(at, `${T}Secret`, msg, ['name', 'validation_context']);
  const vc = msg.validation_context;
  if (!vc) at.field('validation_context').invalid('is required (weft proxy takes trust bundles only over ADS)');
  const vcAt = at.field('validation_context');
  onlyFields(vcAt, `${T}CertificateValidationContext`, vc, ['trusted_ca']);
  const caAt = vcAt.field('trusted_ca');
  const ds = vc.trusted_ca;
  if (!ds) caAt.invalid('is required');
  onlyFields(caAt, 'envoy.config.core.v3.DataSource', ds, ['inline_string', 'inline_bytes']);
  const pem: string = ds.inline_string ?? (ds.inline_bytes ? Buffer.from(ds.inline_bytes).toString('utf8') : '');
  const certs = splitPemCertificates(pem);
  if (certs.length === 0) caAt.invalid('holds no PEM certificate');
  certs.forEach((c, i) => {
    try {
      new X509Certificate(c);
    } catch (err) {
      caAt.invalid(`certificate ${i + 1} does not parse: ${(err as Error).message}`);
    }
  });
  return { name, trustBundle: { trustedCaPem: certs.join('') } };
}
