// Who listens where, read from /proc: the sockets a process holds (its fds'
// socket inodes) matched against the LISTEN rows of /proc/<pid>/net/tcp and
// tcp6. `weft run` names the addresses an app listens on when it does not
// listen on --port; `weft demo` names the process holding a port it needs.
// Linux only; elsewhere (or without access) the answer is undefined.
import * as fs from 'node:fs';

const LISTEN = '0A';

/**
 * Addresses ("127.0.0.1:8081", "[::]:8081") on which the processes of process
 * group `pgid` listen; undefined when /proc cannot tell.
 */
export function listeningAddresses(pgid: number): string[] | undefined {
  let pids: number[];
  try {
    pids = processGroupMembers(pgid);
  } catch {
    return undefined;
  }
  if (pids.length === 0) return undefined;
  const inodes = new Set(pids.flatMap(socketInodes));
  const found = listenRows(`/proc/${pids[0]}`).filter((row) => inodes.has(row.inode));
  return [...new Set(found.map((row) => row.address))].sort();
}

/**
 * The processes listening on a TCP port (in this network namespace), as
 * "pid 123 (node server.js)"; empty when none can be seen (another user's
 * process shows no fds), undefined when /proc cannot tell.
 */
export function portHolders(port: number): string[] | undefined {
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return undefined;
  }
  const inodes = new Set(listenRows('/proc/self').filter((row) => row.port === port).map((row) => row.inode));
  if (inodes.size === 0) return [];
  const holders: string[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || !socketInodes(Number(entry)).some((inode) => inodes.has(inode))) continue;
    let command = '';
    try {
      command = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ').replace(/\s+/g, ' ');
    } catch {
      // gone meanwhile
    }
    holders.push(`pid ${entry}${command ? ` (${command.length > 120 ? `${command.slice(0, 117)}...` : command})` : ''}`);
  }
  return holders;
}

/** The inodes of the sockets a process holds open; none when it is gone or not ours to read. */
function socketInodes(pid: number): string[] {
  let fds: string[];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  const inodes: string[] = [];
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.push(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** The LISTEN rows of a process's network namespace (tcp and tcp6). */
function listenRows(procDir: string): { address: string; port: number; inode: string }[] {
  const rows: { address: string; port: number; inode: string }[] = [];
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(`${procDir}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      if (cols.length < 10 || cols[3] !== LISTEN) continue;
      rows.push({ address: formatAddress(cols[1]), port: parseInt(cols[1].split(':')[1], 16), inode: cols[9] });
    }
  }
  return rows;
}

/** The pids whose process group is `pgid` (the app and whatever it started, since weft run gives it a group of its own). */
function processGroupMembers(pgid: number): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid pgrp …: comm may hold spaces and parentheses, so split after its last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** "0100007F:1F91" → "127.0.0.1:8081"; IPv6 rows are four little-endian 32-bit words. */
function formatAddress(hex: string): string {
  const [addr, portHex] = hex.split(':');
  const port = parseInt(portHex, 16);
  if (addr.length === 8) return `${le32(addr).join('.')}:${port}`;
  const bytes: number[] = [];
  for (let i = 0; i < 32; i += 8) bytes.push(...le32(addr.slice(i, i + 8)));
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return `${bytes.slice(12).join('.')}:${port}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  return `[${ipv6Text(groups)}]:${port}`;
}

/** RFC 5952 text: the longest run of two or more zero groups becomes "::". */
function ipv6Text(groups: number[]): string {
  let [best, bestLen] = [-1, 1];
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = Math.max(i, j);
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

function le32(hex: string): number[] {
  return [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16));
}
