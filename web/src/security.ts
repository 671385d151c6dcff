// An edge's mTLS state as a lock: closed and green for mutual TLS, open and
// amber for plaintext, nothing when config cannot tell (no endpoints).
import type { EdgeSignals } from './api';
import { h, s } from './dom';

/** The lock drawn at (x, y) (its top-left), 12 × 14, inside an SVG. */
export function lockGlyph(x: number, y: number, open: boolean): SVGElement {
  const shackle = open ? `M ${x + 3} ${y + 6} V ${y + 3.5} a 3.5 3.5 0 0 1 7 0` : `M ${x + 2.5} ${y + 6} V ${y + 4} a 3.5 3.5 0 0 1 7 0 V ${y + 6}`;
  return s('g', { class: `lock ${open ? 'open' : 'closed'}` }, s('path', { d: shackle, class: 'shackle' }), s('rect', { x, y: y + 6, width: 12, height: 8, rx: 1.5, class: 'body' }));
}

/** For tables and headers: the lock and a word, the reason as a tooltip. */
export function securityBadge(e: Pick<EdgeSignals, 'security' | 'securityReason' | 'tlsMode'> | undefined): HTMLElement {
  if (!e?.security) return h('span', { class: 'muted security unknown', title: 'no endpoints: the transport cannot be told from config' }, '—');
  const open = e.security === 'plaintext';
  const svg = s('svg', { viewBox: '0 0 12 14', width: 12, height: 14, 'aria-hidden': 'true' }, lockGlyph(0, 0, open));
  return h(
    'span',
    { class: `security ${open ? 'plaintext warn' : 'mtls good'}`, 'data-security': e.security, title: e.securityReason ?? '' },
    svg as unknown as Node,
    open ? ' plaintext' : ` mTLS${e.tlsMode === 'strict' ? ' (strict)' : ''}`,
  );
}
