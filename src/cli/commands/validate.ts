import { parseResource } from '../../config/parse';
import { resourceKey, type Resource } from '../../config/kinds';
import { validateInContext, type ValidationContext } from '../../config/validate-context';
import { policyWarnings, type PolicyWarning } from '../../translate/policy-warnings';
import { apiRequest } from '../api-client';
import { formatConfigErrors } from '../format';

/** The running mesh's resources, as GET /api/v1/resources lists them. */
async function meshResources(api: string): Promise<Resource[]> {
  const body = await apiRequest(api, 'GET', '/api/v1/resources');
  return (body.items as Record<string, unknown>[]).flatMap(({ apiVersion, kind, metadata, spec }) => {
    const { resource } = parseResource({ apiVersion, kind, metadata, spec });
    return resource ? [resource] : [];
  });
}

export async function runValidate(opts: { file: string; api?: string; alone?: boolean }): Promise<void> {
  if (opts.api && opts.alone) {
    process.stderr.write('--api and --alone: choose one (--api validates against the running mesh, --alone against nothing)\n');
    process.exitCode = 2;
    return;
  }
  const context: ValidationContext = opts.api
    ? { kind: 'mesh', resources: await meshResources(opts.api), label: opts.api.split(',')[0] }
    : opts.alone
      ? { kind: 'alone' }
      : { kind: 'directory' };
  const result = await validateInContext(opts.file, context);
  process.stdout.write(`${result.context}\n`);
  if (result.brokenSiblings.length) {
    process.stdout.write(`note: ${result.brokenSiblings.join(', ')} ha${result.brokenSiblings.length === 1 ? 's' : 've'} errors of ${result.brokenSiblings.length === 1 ? 'its' : 'their'} own (their documents were left out; see weft validate -f on the directory)\n`);
  }
  const warnings = warningsOf(result.set, result.resources, result.where);
  if (warnings.length) process.stderr.write(warnings.map((w) => `warning: ${w}\n`).join(''));
  if (result.errors.length > 0) {
    process.stderr.write(`${result.errors.length} error(s) in ${opts.file}:\n` + formatConfigErrors(result.errors));
    process.exitCode = 1;
    return;
  }
  const n = result.files.length;
  const tail = warnings.length ? `, with ${warnings.length} warning(s): accepted, but not all of it takes effect` : '';
  process.stdout.write(`✓ ${result.resources.length} resource(s) in ${n} file(s) are valid${tail}\n`);
}

/** Warnings about the validated resources (a policy or a route of theirs), located in their files. */
function warningsOf(set: Resource[], mine: Resource[], where: (r: Resource) => { file?: string; document?: number }): string[] {
  const byKey = new Map(mine.map((r) => [resourceKey(r), r]));
  const located = (ref: { kind: string; namespace?: string; name?: string }) => byKey.get(`${ref.kind}/${ref.namespace ?? 'default'}/${ref.name}`);
  return policyWarnings(set).flatMap((w: PolicyWarning) => {
    const r = located(w.resource) ?? (w.route && located(w.route));
    if (!r) return [];
    const at = where(r);
    const place = at.file === undefined ? '' : `${at.file}: ${at.document === undefined ? '' : `document ${at.document}: `}`;
    return [`${place}${w.message}`];
  });
}
