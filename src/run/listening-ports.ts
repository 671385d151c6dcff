// The TCP addresses a program listens on, read from /proc: the sockets its
// processes hold (their fds' socket inodes) matched against the LISTEN rows of
// /proc/<pid>/net/tcp and tcp6. `weft run` names them when the app does not
// listen on --port. Linux only; elsewhere (or without access) the answer is undefined.
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
  const inodes = new Set<string>();
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]);
      } catch {
        // closed meanwhile
      }
    }
  }
  if (pids.length === 0) return undefined;
  const found = new Set<string>();
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pids[0]}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      if (cols.length < 10 || cols[3] !== LISTEN || !inodes.has(cols[9])) continue;
      found.add(formatAddress(cols[1]));
    }
  }
  return [...found].sort();
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
