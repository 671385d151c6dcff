// The `weft` command line: parsing only; each command calls into a module,
// loaded when the command runs (so `weft status` does not load the proxy).
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_API } from './api-client';
import { parseApiUrls, parseXdsAddresses } from '../xds/client/control-plane-addresses';

function fraction(value: string): number {
  const n = Number(value);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('expected a fraction between 0 and 1');
  return n;
}

function count(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number');
  return n;
}

function workerCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new InvalidArgumentError('expected a number of worker processes (1-1024)');
  return n;
}

function portNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number (0-65535)');
  return n;
}

function sampleRatio(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('expected a ratio between 0 and 1 (e.g. 0.1)');
  return n;
}

function certTtl(value: string): number {
  const { durationToMs } = require('../config/duration') as typeof import('../config/duration');
  let ms: number;
  try {
    ms = durationToMs(value);
  } catch {
    throw new InvalidArgumentError('expected a duration such as 24h, 90m or 10m');
  }
  if (ms < 60_000) throw new InvalidArgumentError('must be at least 1m');
  if (ms > 365 * 24 * 3_600_000) throw new InvalidArgumentError('must be at most 8760h (a year)');
  return ms;
}

function ttlSeconds(value: string): number {
  const { durationToMs } = require('../config/duration') as typeof import('../config/duration');
  try {
    const ms = durationToMs(value);
    if (ms < 1000) throw new Error();
    return ms / 1000;
  } catch {
    throw new InvalidArgumentError('expected a duration of at least 1s, such as 1h or 30m');
  }
}

/** --ready-timeout: a duration such as 60s or 2m, or 0 for no limit; in milliseconds. */
function readyTimeout(value: string): number {
  if (value === '0') return 0;
  const { durationToMs } = require('../config/duration') as typeof import('../config/duration');
  try {
    const ms = durationToMs(value);
    if (ms < 1000) throw new Error();
    return ms;
  } catch {
    throw new InvalidArgumentError('expected a duration of at least 1s, such as 60s or 5m, or 0 for no limit');
  }
}

/** --xds: one host:port, or the replicas' as a comma-separated list. */
function xdsAddresses(value: string): string {
  try {
    return parseXdsAddresses(value).join(',');
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message}; expected host:port or a comma-separated list of them`);
  }
}

/** --api: one URL, or the replicas' as a comma-separated list. */
function apiUrls(value: string): string {
  try {
    return parseApiUrls(value).join(',');
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message}; expected a URL or a comma-separated list of them`);
  }
}

function otlpEndpoint(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('expected a URL, e.g. http://127.0.0.1:4318/v1/traces');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError('expected an http:// or https:// URL');
  return value;
}

/** --metrics-address: host:port (port 0: a free one). */
function metricsAddress(value: string): string {
  const { parseMetricsAddress } = require('../xds/metrics-address') as typeof import('../xds/metrics-address');
  try {
    parseMetricsAddress(value, true);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return value;
}

/** An action that loads its command module on first use. */
function lazy(module: string, fn: string) {
  return (...args: unknown[]) => require(`./commands/${module}`)[fn](...args);
}

// Sidecar observability options, the same on `weft proxy` and `weft run`.
const OTLP_HELP = "tracing: send the sidecar's spans to this OTLP/HTTP collector (e.g. http://127.0.0.1:4318/v1/traces); off without it";
const TRACE_SAMPLE_HELP = "tracing: share of new traces recorded, 0-1 (callers' decisions are followed)";
const ACCESS_LOG_HELP = "the sidecar's access log, one JSON line per request: a file, or - for stdout";
const ACCESS_LOG_SAMPLE_HELP = 'fraction of requests the access log keeps';
// Zero trust options of the sidecar, the same on `weft proxy` and `weft run`.
const CA_FILE_HELP = "the mesh's root bundle (the control plane's <data-dir>/ca/trust-bundle.pem): xDS over TLS verified with it; omit against a --dev control plane";
const JOIN_TOKEN_HELP = 'join token for this service\'s certificate (`weft token create`); default $WEFT_JOIN_TOKEN; not needed against a --dev control plane';
const TRUST_DOMAIN_HELP = 'SPIFFE trust domain of the mesh';
// Prometheus across hosts, the same on `weft proxy` and `weft run`.
const METRICS_ADDRESS_HELP = "also serve /stats/prometheus (and nothing else) on host:port, e.g. 0.0.0.0:15090, for a Prometheus on another host; announced to the control plane's GET /api/v1/prometheus/targets";
const METRICS_TOKEN_FILE_HELP = 'a file holding the bearer token scrapes of --metrics-address must send; required beyond loopback unless in dev mode (no --ca-file); default $WEFT_METRICS_TOKEN_FILE';
const XDS_HELP = "the control plane's xDS address; several replicas as a comma-separated list (a:15010,b:15010): the sidecar uses one and fails over to the next";

/** How a command reaches etcd: the same options on `weft control` and `weft store`. */
function etcdOptions(cmd: Command, storeHelp: string): Command {
  return cmd
    .option('--store <url>', storeHelp)
    .option('--store-prefix <prefix>', 'key prefix in etcd', '/weft/')
    .option('--store-ca-file <file>', "etcd TLS: the CA bundle of etcd's server certificates")
    .option('--store-cert-file <file>', 'etcd TLS: client certificate (PEM)')
    .option('--store-key-file <file>', 'etcd TLS: client key (PEM)')
    .option('--store-username <name>', 'etcd authentication: user (password from $WEFT_STORE_PASSWORD)')
    .option('--ca-key-secret-file <file>', "seals the CA's private keys in etcd (the same file on every replica; e.g. `openssl rand -base64 32`)");
}

export function buildProgram(): Command {
  const program = new Command('weft')
    .description('weft: a service mesh. Control plane (xDS) and its tools.')
    .version(require('../../../package.json').version)
    .showHelpAfterError()
    .option('--token <token>', 'API credential for commands that call the control plane (default $WEFT_TOKEN, $WEFT_TOKEN_FILE, or .weft/admin.token)')
    .hook('preAction', (cmd) => {
      const token = cmd.opts().token as string | undefined;
      if (token) process.env.WEFT_TOKEN = token;
    })
    .configureOutput({ outputError: (str, write) => write(str) });
  const apiOption = () =>
    new Option('--api <url[,url…]>', 'admin API of the control plane; several replicas as a comma-separated list, tried in turn when one cannot be reached (default $WEFT_API)')
      .argParser(apiUrls)
      .default(DEFAULT_API);

  program
    .command('demo')
    .description('the demo mesh: control plane, e-commerce services under weft run, load generator (npm start)')
    .option('--data-dir <dir>', 'control plane data directory', '.weft')
    .option('--api-port <port>', 'admin API port', portNumber, 15000)
    .option('--xds-port <port>', 'xDS port', portNumber, 15010)
    .option('--port <port>', 'where the storefront answers', portNumber, 8080)
    .option('--load <rps>', 'load generator requests per second (0: off)', Number, 5)
    .option('--transparent', 'run the services behind the storefront as transparent units (weft run --transparent: Linux, root)')
    .addOption(new Option('--log-level <level>', 'control plane log level').choices(['debug', 'info', 'warn', 'error']).default('warn'))
    .action(lazy('demo', 'runDemo'));

  const controlCmd = program
    .command('control')
    .description('run the control plane: config store, registry, xDS server and admin API')
    .option('-c, --config <dir>', 'directory of YAML resources to load and watch')
    .option('--data-dir <dir>', 'where API-applied resources and registrations persist', '.weft')
    .option('--xds-port <port>', 'xDS (ADS) gRPC port', portNumber, 15010)
    .option('--api-port <port>', 'admin API port', portNumber, 15000)
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--dev', 'development mode: plaintext xDS, certificates issued without join tokens')
    .option('--trust-domain <domain>', 'SPIFFE trust domain of workload identities', 'cluster.local')
    .addOption(new Option('--cert-ttl <duration>', 'lifetime of workload certificates, at least 1m (e.g. 24h, 30m)').argParser(certTtl))
    .option('--root-cert <file>', 'bring your own root CA: its certificate (PEM); weft makes its intermediate under it')
    .option('--root-key <file>', "bring your own root CA: its private key (PEM)")
    .option('--replica-id <id>', "this replica's name in `weft status` (default <hostname>:<xds port>)")
    .option('--advertise-address <address>', "where the other replicas reach this one's API (default: --host, or this host's first address when --host is 0.0.0.0)")
    .addOption(new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .action(lazy('control', 'runControl'));
  etcdOptions(controlCmd, 'keep all control-plane state in etcd (replicas): etcd://host:port[,host:port…], etcds:// for TLS; default: the embedded store in --data-dir');

  program
    .command('proxy')
    .description('run the sidecar proxy: an xDS client of the control plane')
    .addOption(new Option('--xds <host:port[,…]>', XDS_HELP).argParser(xdsAddresses).default('127.0.0.1:15010'))
    .option('--service <name>', 'the service this proxy runs beside')
    .option('-n, --namespace <ns>', 'its namespace', 'default')
    .option('--node-id <id>', 'node id (default: <service>~<host>~<random>)')
    .option('--zone <zone>', 'its zone, for same-zone preference')
    .option('--outbound-port <port>', 'where the app sends its calls (default 15001)', portNumber)
    .option('--inbound-port <port>', 'where callers reach this instance (default 15006)', portNumber)
    .option('--app-port <port>', 'where the local app listens', portNumber)
    .option('--admin-port <port>', 'admin port: /ready /stats/prometheus /config_dump /clusters', portNumber, 15020)
    .addOption(new Option('--otlp-endpoint <url>', OTLP_HELP).argParser(otlpEndpoint))
    .addOption(new Option('--trace-sample <ratio>', TRACE_SAMPLE_HELP).argParser(sampleRatio).default(1))
    .option('--access-log <path>', ACCESS_LOG_HELP)
    .addOption(new Option('--access-log-sample <fraction>', ACCESS_LOG_SAMPLE_HELP).argParser(fraction))
    .option('--recent-requests <n>', 'requests kept for /requests and weft tap --since', count)
    .option('--no-metrics', 'do not count requests (to measure what metrics cost)')
    .addOption(new Option('--metrics-address <host:port>', METRICS_ADDRESS_HELP).argParser(metricsAddress))
    .option('--metrics-token-file <file>', METRICS_TOKEN_FILE_HELP)
    .option('--ca-file <file>', CA_FILE_HELP)
    .option('--join-token <token>', JOIN_TOKEN_HELP)
    .option('--trust-domain <domain>', TRUST_DOMAIN_HELP, 'cluster.local')
    .option('--concurrency <n>', 'worker processes sharing the listeners, each with its own upstream pools (as Envoy\'s --concurrency); one xDS stream, admin port and certificate for all', workerCount, 1)
    .addOption(new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .action(lazy('proxy', 'runProxy'));

  program
    .command('run')
    .description('run a program in the mesh: its sidecar first, then the program (with HTTP_PROXY set, or --transparent); registers it, exits with its code')
    .argument('<command...>', 'the program and its arguments (after --)')
    .option('--service <name>', 'the service this program is an instance of')
    .option('--port <port>', 'where the program listens (omit for a client-only program)', portNumber)
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .addOption(new Option('--xds <host:port[,…]>', XDS_HELP).argParser(xdsAddresses).default('127.0.0.1:15010'))
    .addOption(apiOption())
    .option('--address <ip>', 'the address other instances reach this one at', '127.0.0.1')
    .option('--zone <zone>', 'its zone, for same-zone preference')
    .option('--outbound-port <port>', "the sidecar's port for the program's calls (default: a free port)", portNumber)
    .option('--inbound-port <port>', "the sidecar's port for callers (default: a free port)", portNumber)
    .option('--admin-port <port>', "the sidecar's admin port (default: a free port)", portNumber)
    .option('--transparent', "run the program in a network namespace of its own: it reaches services by name (<service>[.<namespace>]:<port>) over any protocol with no proxy setting, and only the sidecar reaches its port (Linux, root)")
    .addOption(new Option('--egress <mode>', "with --transparent, destinations that are not mesh services: passthrough (through the host; the default) or mesh-only (refused)").choices(['passthrough', 'mesh-only']))
    .addOption(new Option('--proxy <sidecar>', 'the sidecar: weft (weft proxy, in this process) or envoy (an envoy binary, its workload certificate served on a local SDS socket)').choices(['weft', 'envoy']).default('weft'))
    .option('--envoy-binary <path>', '--proxy envoy: the envoy executable (default: envoy on PATH)')
    .option('--proxy-concurrency <n>', "weft proxy's --concurrency: worker processes of the sidecar sharing its listeners (not with --transparent or --proxy envoy)", workerCount, 1)
    .option('--drain-seconds <n>', 'on SIGTERM, how long to keep serving while callers move away', Number, 2)
    .addOption(new Option('--ready-timeout <duration>', 'how long the program may take to listen on --port before it is stopped with an error (0: no limit)').argParser(readyTimeout).default(60_000, '60s'))
    .addOption(new Option('--otlp-endpoint <url>', OTLP_HELP).argParser(otlpEndpoint))
    .addOption(new Option('--trace-sample <ratio>', TRACE_SAMPLE_HELP).argParser(sampleRatio).default(1))
    .option('--access-log <path>', ACCESS_LOG_HELP)
    .addOption(new Option('--access-log-sample <fraction>', ACCESS_LOG_SAMPLE_HELP).argParser(fraction))
    .addOption(new Option('--metrics-address <host:port>', METRICS_ADDRESS_HELP).argParser(metricsAddress))
    .option('--metrics-token-file <file>', METRICS_TOKEN_FILE_HELP)
    .option('--ca-file <file>', CA_FILE_HELP)
    .option('--join-token <token>', JOIN_TOKEN_HELP)
    .option('--trust-domain <domain>', TRUST_DOMAIN_HELP, 'cluster.local')
    .addOption(new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .action(lazy('run', 'runRun'));

  program
    .command('plugin')
    .description("run a built-in plugin (log, backup, monitor); weft run starts it for a Plugin with command [weft, plugin, <name>]")
    .argument('<name>', 'log, backup or monitor')
    .argument('[args...]', "the plugin's arguments (backup restore)")
    .action(lazy('plugin', 'runPlugin'));

  program
    .command('validate')
    .description('check YAML resources without applying them: a file with the other YAML files of its directory, a directory as one set')
    .requiredOption('-f, --file <path>', 'a YAML file or a directory of them')
    .addOption(new Option('--api <url[,url…]>', "validate against the running mesh's resources instead (the file's replace those of the same name)").argParser(apiUrls))
    .option('--alone', "validate the file by itself: references to other files' resources are errors")
    .action(lazy('validate', 'runValidate'));

  program
    .command('apply')
    .description('create or replace resources through the API (all or nothing)')
    .requiredOption('-f, --file <path>', 'a YAML file, a directory of them, or - for stdin')
    .addOption(apiOption())
    .action(lazy('resources', 'runApply'));

  program
    .command('get')
    .description('list resources of a kind, or show one')
    .argument('<kind>', 'e.g. services, httproutes, grpcroutes, trafficpolicies')
    .argument('[name]')
    .option('-n, --namespace <ns>', 'namespace (default: all when listing, "default" for one)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'yaml', 'json']).default('table'))
    .addOption(apiOption())
    .action(lazy('resources', 'runGet'));

  program
    .command('delete')
    .description('delete a resource applied through the API')
    .argument('<kind>')
    .argument('<name>')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .addOption(apiOption())
    .action(lazy('resources', 'runDelete'));

  program
    .command('endpoints')
    .description("list services' live endpoints (static and registered)")
    .argument('[service]', 'name or namespace/name')
    .addOption(apiOption())
    .action(lazy('resources', 'runEndpoints'));

  program
    .command('status')
    .description('connected xDS nodes and whether each has ACKed the latest config of each type')
    .addOption(apiOption())
    .action(lazy('status', 'runStatus'));

  program
    .command('top')
    .description('live request rate, success rate, p50/p99 per service and per call between services')
    .option('--once', 'print one snapshot and exit')
    .option('--interval <seconds>', 'refresh interval', Number, 2)
    .addOption(apiOption())
    .action(lazy('top', 'runTop'));

  program
    .command('explain')
    .description("what the source service's sidecar does with a request: listener, route and why, clusters, endpoints, policies, recent similar requests")
    .argument('<method>', 'e.g. GET')
    .argument('<url>', 'as the app calls it, e.g. http://product/items')
    .requiredOption('--from <service>', 'the calling service (name, name.namespace or namespace/name)')
    .option('-H, --header <header>', "a request header, 'name: value' (repeatable)", (v: string, all: string[]) => [...all, v], [] as string[])
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .addOption(apiOption())
    .action(lazy('explain', 'runExplain'));

  program
    .command('tap')
    .description("live requests passing the sidecars of a service, one line each (from their admin /tap)")
    .argument('<service>', 'name or namespace/name')
    .option('--method <method>', 'only this method')
    .option('--path <prefix>', 'only paths starting with this')
    .option('--status <code|class>', 'only this status (503) or class (5xx)')
    .option('--flag <flag>', 'only requests with this response flag (UH, UO, UT, …)')
    .option('--direction <dir>', 'only inbound or outbound')
    .option('--since <seconds>', 'first the recent requests of the last seconds', Number)
    .option('--duration <seconds>', 'stop after this long (default: until interrupted)', Number)
    .option('--json', 'print the records as NDJSON')
    .addOption(apiOption())
    .action(lazy('tap', 'runTap'));

  const adminToken = program.command('admin-token').description("operators' API credentials: admin (everything) or viewer (read-only); the first admin token is <data-dir>/admin.token");
  adminToken
    .command('create')
    .description('a new credential (its token is shown once; stored hashed)')
    .requiredOption('--name <name>', 'who or what it is for (e.g. ci, alice@example.com)')
    .addOption(new Option('--role <role>', 'what it may do').choices(['admin', 'viewer']).default('viewer'))
    .addOption(apiOption())
    .action(lazy('admin-token', 'runAdminTokenCreate'));
  adminToken.command('list').description('credentials (ids, names, roles; never the secrets)').addOption(apiOption()).action(lazy('admin-token', 'runAdminTokenList'));
  adminToken.command('revoke').description('revoke a credential, at once on every replica').argument('<id>', 'its id (or the token itself)').addOption(apiOption()).action(lazy('admin-token', 'runAdminTokenRevoke'));
  program
    .command('dashboard')
    .description("the dashboard through an authenticated proxy on loopback: your credential (a viewer's is enough) stays out of the browser and of every URL")
    .option('--port <port>', 'local port (0: any free one)', portNumber, 15080)
    .option('--address <address>', 'local address to listen on', '127.0.0.1')
    .addOption(apiOption())
    .action(lazy('dashboard', 'runDashboard'));
  program
    .command('audit')
    .description('changes made through the API: who, what, when (newest first)')
    .option('--limit <n>', 'how many', Number, 50)
    .addOption(apiOption())
    .action(lazy('admin-token', 'runAudit'));

  const token = program.command('token').description('join tokens: the credential a sidecar presents to obtain its service\'s certificate');
  token
    .command('create')
    .description('a token for one service identity (shown once; stored hashed)')
    .requiredOption('--service <name>', 'the service whose identity the token grants')
    .option('-n, --namespace <ns>', 'its namespace', 'default')
    .addOption(new Option('--ttl <duration>', 'expires after this long (default: until revoked), e.g. 24h').argParser(ttlSeconds))
    .addOption(apiOption())
    .action(lazy('certs', 'runTokenCreate'));
  token.command('list').description('join tokens (ids, identities, expiry; never the secrets)').addOption(apiOption()).action(lazy('certs', 'runTokenList'));
  token
    .command('revoke')
    .description('revoke a token: new certificates are refused to it (issued ones live until they expire)')
    .argument('<id>', 'the token id (or the token itself)')
    .addOption(apiOption())
    .action(lazy('certs', 'runTokenRevoke'));

  program
    .command('certs')
    .description('workload certificates per node (identity, expiry, time left) and the trust bundle')
    .option('--all', 'also list every certificate issued to a node not connected now (by default those of the last 10 minutes)')
    .addOption(apiOption())
    .action(lazy('certs', 'runCerts'));

  const storeCmd = program.command('store').description("move a mesh between stores: the embedded one (a data directory) and etcd (replicas)");
  const storeOptions = (cmd: Command) =>
    etcdOptions(cmd.option('--data-dir <dir>', "the embedded store: a control plane's data directory (stopped while you import into it)"), 'etcd: etcd://host:port[,host:port…] (etcds:// for TLS)');
  storeOptions(storeCmd.command('export').description("write the mesh's state (resources applied through the API, join tokens, the CA with its keys, registrations) as JSON"))
    .option('-o, --output <file>', 'the file (mode 0600: it holds the CA keys), or - for stdout', '-')
    .action(lazy('store', 'runStoreExport'));
  storeOptions(storeCmd.command('import').description('write an export into an empty data directory or etcd prefix'))
    .option('-i, --input <file>', 'the export, or - for stdin', '-')
    .option('--force', 'overwrite a target that already holds a mesh')
    .action(lazy('store', 'runStoreImport'));

  const caCmd = program.command('ca').description("the mesh's certificate authority");
  caCmd
    .command('rotate-root')
    .description('a new root and intermediate; the old root stays in the trust bundle until retire-roots')
    .addOption(apiOption())
    .action(lazy('certs', 'runRotateRoot'));
  caCmd
    .command('retire-roots')
    .description('drop the previous roots from the trust bundle; refused while a live certificate chains to one of them')
    .option('--force', 'retire even so (the listed nodes cannot make new connections until they renew)')
    .addOption(apiOption())
    .action(lazy('certs', 'runRetireRoots'));

  program
    .command('bootstrap')
    .description('print a bootstrap file for an xDS client of this mesh')
    .option('--grpc', 'a bootstrap for proxyless gRPC clients (GRPC_XDS_BOOTSTRAP)')
    .option('--envoy', "an Envoy sidecar's bootstrap (envoy -c <file>): delta ADS to the control plane, needs --service")
    .option('--xds <host:port>', 'the control plane xDS address (--envoy: several replicas as a:15010,b:15010)', '127.0.0.1:15010')
    .option('--node-id <id>', 'node id (default: <service>-<random>)')
    .option('--service <name>', 'the service this client runs as')
    .option('-n, --namespace <ns>', 'its namespace', 'default')
    .option('--zone <zone>', 'its zone, for same-zone preference')
    .option('--ca-file <file>', "--envoy: the mesh's trust bundle, xDS over TLS verified with it; omit against a --dev control plane")
    .option('--join-token-file <file>', '--envoy: a file holding the service\'s join token (default $WEFT_JOIN_TOKEN)')
    .option('--admin-port <port>', "--envoy: Envoy's admin port on 127.0.0.1", '15000')
    .option('--outbound-port <port>', '--envoy: the port of the outbound listener (default the control plane\'s, 15001)')
    .option('--inbound-port <port>', '--envoy: the port of the inbound listener (default 15006)')
    .option('--app-port <port>', '--envoy: where the app listens, if not its service port')
    .option('--sds-socket <path>', '--envoy: a local SDS server\'s unix socket (as `weft run --proxy envoy` runs one): the workload certificate comes from it')
    .action(lazy('bootstrap', 'runBootstrap'));

  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
