import { loadConfigPath } from '../../config/parse';
import { formatConfigErrors } from '../format';

export async function runValidate(opts: { file: string }): Promise<void> {
  const { resources, errors, files } = await loadConfigPath(opts.file);
  if (errors.length > 0) {
    process.stderr.write(`${errors.length} error(s) in ${opts.file}:\n` + formatConfigErrors(errors));
    process.exitCode = 1;
    return;
  }
  process.stdout.write(`✓ ${resources.length} resource(s) in ${files.length} file(s) are valid\n`);
}
