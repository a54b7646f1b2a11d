// The page's model of conversations: each holds a bounded, contiguous stretch of its messages,
// deduplicated by id and sorted by (ts, id), the order the node's history uses.
//
// As the terminal UI does: while the newest messages are followed, the oldest are dropped
// beyond MAX_STORED. When the reader has scrolled back and the stretch outgrows the bound, the
// newest are dropped instead and the conversation is `tailCut`: new messages are counted but not
// kept (the node has them), and going back to the bottom reloads the newest page. A message
// that sorts before the start of a stretch that does not reach the conversation's first message
// is not kept either: the page of history that covers its place brings it when scrolled to.

/** Messages asked for at a time (first page and each page scrolled back). */
export const PAGE = 100;

/** Messages the open conversation holds at most (the screen shows a window of them). */
export const MAX_STORED = 2000;

/** Messages a conversation that is not open holds: its newest, enough to open it on a full window. */
export const MAX_CLOSED = 500;

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
    private: o.private === 'passphrase' || o.private === 'invite' ? o.private : null,
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
    /** id → message, for the messages held */
    this.msgs = new Map();
    /** the messages held, sorted by (ts, id): a contiguous stretch of the conversation */
    this.list = [];
    this.unread = 0;
    /** {ts, id} of the earliest message that came while this was not being viewed: the "new
     *  messages" marker goes before the first message from there (held or loaded later) */
    this.marker = null;
    /** true once history says there is nothing older than `list[0]` */
    this.complete = false;
    /** true when newer messages than `list`'s last were dropped (or not kept) */
    this.tailCut = false;
    /** {ts, id} of the message an unanswered page of older history was asked before */
    this.olderBefore = null;
    /** the newest page was asked for to replace the stretch (see `reset`) */
    this.reloading = false;
    /** messages that came while reloading and were not kept: added after the reset */
    this.waiting = [];
    /** some of `waiting` were dropped: the newest page is older than what is left of them */
    this.waitingLost = false;
    this.historyLoaded = false;
    // private rooms (PROTOCOL §10): 'passphrase' or 'invite' (null: public), the member count,
    // and whether this node was removed (an invite room's membership without it)
    this.private = null;
    this.members = null;
    this.removed = false;
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

  get loadingOlder() {
    return this.olderBefore !== null;
  }

  /**
   * Adds a message; returns its index in `list`, or -1 if it is held already or falls outside
   * the stretch held. `adjacent` (a page of history next to the stretch): it may go before it.
   */
  add(m, adjacent = false) {
    if (this.msgs.has(m.id)) return -1;
    if (m.ts > this.lastTs) this.lastTs = m.ts;
    const list = this.list;
    const n = list.length;
    if (n > 0 && this.tailCut && compareMsg(m, list[n - 1]) > 0) {
      if (this.reloading) this.keepWaiting(m);
      return -1;
    }
    if (n > 0 && !adjacent && !this.complete && compareMsg(m, list[0]) < 0) return -1;
    this.msgs.set(m.id, m);
    if (n === 0 || compareMsg(list[n - 1], m) < 0) {
      list.push(m);
      return n;
    }
    const i = this.lowerBound(m);
    list.splice(i, 0, m);
    return i;
  }

  keepWaiting(m) {
    this.waiting.push(m);
    if (this.waiting.length > MAX_STORED) {
      this.waiting.splice(0, this.waiting.length - MAX_STORED);
      this.waitingLost = true;
    }
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

  /** Marks `m` as unseen: the marker goes before the earliest unseen message. */
  markUnseen(m) {
    if (!this.marker || compareMsg(m, this.marker) < 0) this.marker = { ts: m.ts, id: m.id };
  }

  /** The held message the marker goes before, or null. */
  markerAt() {
    return this.marker ? this.list[this.lowerBound(this.marker)] || null : null;
  }

  /**
   * Keeps at most `max` messages (`max` - PAGE after dropping), never those from `first` to
   * `last` (the window on screen): the newest beyond the window go first (the reader has
   * scrolled back), then the oldest (all that goes while following the newest, or with nothing
   * on screen). Returns the messages dropped.
   */
  trim(max, first = null, last = null) {
    const list = this.list;
    if (list.length <= max) return [];
    // A page more than needed goes, so that this runs once per page, not per message.
    let excess = list.length - Math.max(0, max - PAGE);
    let dropped = [];
    if (last) {
      const k = Math.min(excess, list.length - 1 - this.indexOf(last));
      if (k > 0) {
        dropped = list.splice(list.length - k, k);
        this.tailCut = true;
        excess -= k;
      }
    }
    if (excess > 0) {
      const k = Math.min(excess, first ? this.indexOf(first) : excess);
      if (k > 0) {
        dropped = dropped.concat(list.splice(0, k));
        this.complete = false;
      }
    }
    for (const m of dropped) this.msgs.delete(m.id);
    // Not open, the marker stays (before the oldest held); open, what was dropped was seen.
    if (first && this.marker && list.length > 0 && compareMsg(this.marker, list[0]) < 0) this.marker = null;
    return dropped;
  }

  /** Drops every message held (to reload the newest page); returns them. */
  reset() {
    const old = this.list;
    this.list = [];
    this.msgs = new Map();
    this.complete = false;
    this.tailCut = false;
    this.olderBefore = null;
    this.reloading = false;
    this.historyLoaded = false;
    return old;
  }
}
