// `weft plugin <name>`: runs a built-in plugin (src/plugins/<name>/). weft run
// starts it for a Plugin whose command is [weft, plugin, <name>, …]; each
// plugin's module is loaded only here, when it runs.
import { BUILTIN_PLUGINS, isBuiltin } from '../../plugins/builtin-plugins';
import { PluginConfigError } from '../../plugins/plugin-runtime';

export interface BuiltinPluginModule {
  /** Runs until the plugin is done (SIGTERM, or an init plugin's work); resolves to the exit code. */
  runPlugin(args: string[]): Promise<number>;
}

export async function runPlugin(name: string, args: string[]): Promise<void> {
  if (!isBuiltin(name)) {
    const list = Object.entries(BUILTIN_PLUGINS).map(([n, p]) => `  ${n}: ${p.summary}`).join('\n');
    process.stderr.write(`weft: no built-in plugin "${name}"; there are:\n${list}\n`);
    process.exitCode = 2;
    return;
  }
  const mod = require(`../../plugins/${name}/${name}-plugin`) as BuiltinPluginModule;
  try {
    process.exitCode = await mod.runPlugin(args);
  } catch (err) {
    if (!(err instanceof PluginConfigError)) throw err;
    process.stderr.write(`weft plugin ${name}: ${err.message}\n`);
    process.exitCode = 2;
  }
}
