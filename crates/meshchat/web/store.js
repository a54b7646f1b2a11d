// The page's model of conversations: each keeps its messages deduplicated by id and sorted by
// (ts, id), the order the node's history uses.

/** Messages asked for at a time (first page and each page scrolled back). */
export const PAGE = 100;

/** DM states, by how far along they are. */
export const STATE_RANK = { queued: 0, sent: 1, failed: 2, delivered: 3 };

export function compareMsg(a, b) {
  if (a.ts !== b.ts) return a.ts < b.ts ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** True for the four DM states. */
export function isState(s) {
  return typeof s === 'string' && Object.hasOwn(STATE_RANK, s);
}

const str = (v) => (typeof v === 'string' ? v : '');
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** A room message (event or history entry) as the page keeps it, or null if malformed. */
export function roomMsg(o) {
  if (!o || typeof o !== 'object' || typeof o.id !== 'string' || !o.id) return null;
  if (typeof o.room !== 'string') return null;
  return {
    dm: false,
    id: o.id,
    room: o.room,
    from: str(o.from),
    fingerprint: str(o.fingerprint),
    nick: str(o.nick),
    ts: num(o.ts),
    text: str(o.text),
    own: o.own === true,
    synced: o.synced === true,
    seq: Number.isSafeInteger(o.seq) ? o.seq : null,
  };
}

/** A direct message (event or history entry) as the page keeps it, or null if malformed. */
export function dmMsg(o) {
  if (!o || typeof o !== 'object' || typeof o.id !== 'string' || !o.id) return null;
  const own = o.own === true;
  return {
    dm: true,
    id: o.id,
    from: str(o.from),
    to: str(o.to),
    fingerprint: str(o.fingerprint),
    nick: str(o.nick),
    ts: num(o.ts),
    text: str(o.text),
    own,
    synced: false,
    state: own ? (isState(o.state) ? o.state : 'queued') : null,
  };
}

/** One conversation: a room (`id` = room name) or a DM (`id` = the other party's peer id). */
export class Conv {
  constructor(kind, id) {
    this.kind = kind;
    this.id = id;
    this.key = `${kind}/${id}`;
    /** id → message */
    this.msgs = new Map();
    /** messages sorted by (ts, id) */
    this.list = [];
    this.unread = 0;
    /** id of the earliest message that arrived while this was not being viewed */
    this.markerId = null;
    /** {ts, id} of the oldest message a history answer gave: where the next page starts */
    this.cursor = null;
    /** true once history says there is nothing older */
    this.complete = false;
    this.loadingOlder = false;
    this.historyLoaded = false;
    // DMs: the other party
    this.nick = null;
    this.fingerprint = null;
    this.lastTs = 0;
    this.created = Date.now();
    /** count from the last `conversations` answer, and new DMs seen since */
    this.serverCount = null;
    this.liveCount = 0;
  }

  get name() {
    if (this.kind === 'room') return this.id;
    return this.nick || (this.id.length > 8 ? '…' + this.id.slice(-8) : this.id);
  }

  /** Adds a message; returns its index in `list`, or -1 if it was already there. */
  add(m) {
    if (this.msgs.has(m.id)) return -1;
    this.msgs.set(m.id, m);
    const list = this.list;
    let i = list.length;
    if (i > 0 && compareMsg(list[i - 1], m) > 0) {
      i = this.lowerBound(m);
      list.splice(i, 0, m);
    } else {
      list.push(m);
    }
    if (m.ts > this.lastTs) this.lastTs = m.ts;
    return i;
  }

  lowerBound(m) {
    const list = this.list;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareMsg(list[mid], m) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of a message of this conversation in `list`, or -1. */
  indexOf(m) {
    const i = this.lowerBound(m);
    return this.list[i] === m ? i : -1;
  }

  /** Notes the oldest message of a history answer as where to continue scrolling back. */
  noteOldest(m) {
    if (!this.cursor || compareMsg(m, this.cursor) < 0) this.cursor = { ts: m.ts, id: m.id };
  }

  /** Marks `m` as unseen: the marker goes before the earliest unseen message. */
  markUnseen(m) {
    const current = this.markerId ? this.msgs.get(this.markerId) : null;
    if (!current || compareMsg(m, current) < 0) {
      this.markerId = m.id;
      return true;
    }
    return false;
  }
}
