// Small helpers shared by the modules: DOM building (text only, never HTML), time and day
// labels, nick colours, names, mentions and links.

/**
 * Creates an element. `props`: `class`, `text`, `dataset` (object) or any attribute; children
 * are nodes or strings (strings become text nodes: nothing is ever parsed as HTML).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child != null && child !== false) el.append(child);
  }
  return el;
}

/** Room names exactly as the node accepts them. */
export const ROOM_RE = /^[a-z0-9._-]{1,32}$/;

/** What a person typed (`#Lobby`, ` lobby `) as a room name, or null. */
export function normalizeRoom(input) {
  const name = String(input)
    .trim()
    .replace(/^#+/, '')
    .replace(/[A-Z]/g, (c) => c.toLowerCase());
  return ROOM_RE.test(name) ? name : null;
}

/** A libp2p peer id as it appears in events (base58). */
export function isPeerId(s) {
  return typeof s === 'string' && /^[1-9A-HJ-NP-Za-km-z]{16,128}$/.test(s);
}

/** The first 8 hex digits of a fingerprint ("ab12 cd34 …" → "ab12cd34"). */
export function shortFp(fp) {
  return typeof fp === 'string' ? fp.replace(/\s+/g, '').slice(0, 8) : '';
}

/** The last eight characters of a peer id: enough to tell peers apart. */
export function shortPeer(peer) {
  return typeof peer === 'string' && peer.length > 8 ? '…' + peer.slice(-8) : String(peer || '?');
}

export const NICK_COLORS = 10;

/** A stable colour class (`c0`…`c9`) for a fingerprint or peer id (FNV-1a). */
export function colorClass(key) {
  let hash = 0x811c9dc5;
  const s = String(key || '');
  for (let i = 0; i < s.length; i++) {
    hash ^= s.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return 'c' + (hash % NICK_COLORS);
}

/** The first character of a name, upper-cased, for an avatar. */
export function initial(name) {
  const first = Array.from(String(name || '').trim())[0];
  return first ? first.toUpperCase() : '?';
}

function validDate(ts) {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** HH:MM in local time. */
export function formatTime(ts) {
  const d = validDate(ts);
  if (!d) return '--:--';
  return String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
}

// Intl formatters are costly to create: one each, made on first use.
const formatters = new Map();
function formatter(name, opts) {
  let f = formatters.get(name);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat(undefined, opts);
    } catch {
      f = { format: (d) => d.toString() };
    }
    formatters.set(name, f);
  }
  return f;
}

/** The full local date and time, for tooltips. */
export function fullTime(ts) {
  const d = validDate(ts);
  return d ? formatter('full', { dateStyle: 'full', timeStyle: 'medium' }).format(d) : '';
}

/** ISO 8601 for a <time datetime>, or null. */
export function isoTime(ts) {
  const d = validDate(ts);
  return d ? d.toISOString() : null;
}

/** A key that is equal for two timestamps on the same local day. */
export function dayKey(ts) {
  const d = validDate(ts);
  return d ? `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}` : 'invalid';
}

/** "Today", "Yesterday" or a date, for a day separator. */
export function dayLabel(ts, now = new Date()) {
  const d = validDate(ts);
  if (!d) return 'Unknown date';
  const key = dayKey(ts);
  if (key === dayKey(now.getTime())) return 'Today';
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1, 12);
  if (key === dayKey(yesterday.getTime())) return 'Yesterday';
  const opts = { weekday: 'long', day: 'numeric', month: 'long' };
  if (d.getFullYear() === now.getFullYear()) return formatter('day', opts).format(d);
  return formatter('day-year', { ...opts, year: 'numeric' }).format(d);
}

const WORD_END = /[\p{L}\p{N}_-]$/u;
const WORD_START = /^[\p{L}\p{N}_-]/u;

/** True when `text` contains `nick` as a word, case-insensitively (as the TUI decides). */
export function mentions(text, nick) {
  if (!nick || !text) return false;
  const t = String(text).toLowerCase();
  const n = String(nick).toLowerCase();
  for (let i = t.indexOf(n); i !== -1; i = t.indexOf(n, i + 1)) {
    const before = t.slice(Math.max(0, i - 2), i);
    const after = t.slice(i + n.length, i + n.length + 2);
    if (!WORD_END.test(before) && !WORD_START.test(after)) return true;
  }
  return false;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

function trimUrl(url) {
  for (;;) {
    const last = url[url.length - 1];
    if ('.,;:!?\'"]}>*'.includes(last)) {
      url = url.slice(0, -1);
    } else if (last === ')' && url.split('(').length < url.split(')').length) {
      url = url.slice(0, -1);
    } else {
      return url;
    }
  }
}

/**
 * The text as nodes: plain strings, and http(s) URLs as links (their text is the URL itself, so
 * the element's textContent is exactly `text`).
 */
export function linkify(text) {
  const s = String(text);
  if (!/https?:\/\//i.test(s)) return [s];
  const out = [];
  let last = 0;
  for (const match of s.matchAll(URL_RE)) {
    const url = trimUrl(match[0]);
    const start = match.index;
    if (!url) continue;
    if (start > last) out.push(s.slice(last, start));
    let ok = false;
    try {
      const parsed = new URL(url);
      ok = parsed.protocol === 'http:' || parsed.protocol === 'https:';
    } catch {
      ok = false;
    }
    out.push(ok ? h('a', { href: url, target: '_blank', rel: 'noopener noreferrer nofollow' }, url) : url);
    last = start + url.length;
  }
  if (last < s.length) out.push(s.slice(last));
  return out;
}
