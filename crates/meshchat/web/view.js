// The message list of the open conversation: a window of rows over the messages the
// conversation holds (store.js), in (ts, id) order, with day separators, the "new messages"
// marker and grouping by author. While the reader is at the bottom the window follows the
// newest messages and drops the oldest rows (FOLLOW_RENDERED); scrolled back, it grows at the
// top (from memory, else the app asks the node) and drops rows at the bottom (MAX_RENDERED), and
// grows back down as they return.
//
// Changes come in batches (one per burst of socket events): rows appended at the end are built
// into one fragment and inserted once, layout is read at most at the start (where the reader
// is) and at the end (to stick to the bottom or keep the reader's place).

import { dayKey, dayLabel, h } from './util.js';
import { layout, makeSeparator, renderMsg, setState } from './rows.js';
import { compareMsg } from './store.js';
import { renderFileCard } from './files.js';

/** Rows in the DOM at most, however long the conversation (reading back). */
export const MAX_RENDERED = 500;
/** Rows in the DOM at most while following the newest: what every frame lays out and paints
 *  scales with it, and at hundreds of messages a second frames come late. Scrolling up shows
 *  more (from memory) as the reader gets there. */
export const FOLLOW_RENDERED = 200;
/** Rows added at a time when the window grows while scrolling; and, when the window outgrows
 *  its bound, rows dropped beyond it, so that the rows above move once per GROW, not per batch. */
const GROW = 100;
/** Closer than this to the bottom (px) counts as at the bottom. */
const BOTTOM_SLACK = 48;
/** Closer than this to an edge of the window (px), it grows on that side. */
const NEAR_EDGE = 600;
/** Opening at the marker: rows shown above it. */
const MARKER_CONTEXT = 20;

export class MessageView {
  /**
   * @param {HTMLElement} listEl  #messages
   * @param {HTMLButtonElement} jumpEl  the "↓ new messages" button
   * @param {{me: () => {nick: string}, file: (id: string) => object|null, onNearTop: () => void,
   *   onNewest: () => void}} opts
   *   `file`: the file a message offers (its id is the file's), or null;
   *   `onNearTop`: the reader is at the top of the window (grow it, or ask for older);
   *   `onNewest`: the newest messages are wanted but not held (reload them).
   */
  constructor(listEl, jumpEl, opts) {
    this.el = listEl;
    this.jump = jumpEl;
    this.opts = opts;
    this.conv = null;
    /** id → {el, sep} of the rows in the DOM */
    this.rows = new Map();
    /** messages at the window's ends (its last may still be pending) */
    this.first = null;
    this.last = null;
    /** messages appended to the window in this batch, not yet in the DOM */
    this.pending = [];
    this.markerRowId = null;
    this.top = h('div', { class: 'list-top' });
    this.marker = h('div', { class: 'new-marker', role: 'separator' }, h('span', {}, 'New messages'));
    /** the list is scrolled to its end (whether or not the window reaches the newest) */
    this.atEnd = true;
    this.newBelow = 0;
    this.depth = 0;
    this.stick = true;
    this.anchor = null;
    this.anchored = false;
    /** the batch changed the DOM, or the top of the list: look at the scroll position after */
    this.wrote = false;
    this.trimTopFirst = false;
    this.checkingTop = false;

    listEl.addEventListener('scroll', () => this.onScroll(), { passive: true });
    jumpEl.addEventListener('click', () => this.scrollToBottom(true));
    // Day labels ("Today") go stale at midnight.
    let today = dayKey(Date.now());
    setInterval(() => {
      if (dayKey(Date.now()) !== today) {
        today = dayKey(Date.now());
        this.relabelDays();
      }
    }, 60000);
    if (typeof ResizeObserver === 'function') {
      new ResizeObserver(() => {
        if (this.atEnd && this.attached()) this.el.scrollTop = this.el.scrollHeight;
      }).observe(listEl);
    }
  }

  /** The window ends at the newest message there is: new ones show up in it. */
  attached() {
    const conv = this.conv;
    if (!conv || conv.tailCut) return false;
    return conv.list.length === 0 || conv.list[conv.list.length - 1] === this.last;
  }

  /** The window starts at the oldest message held. */
  atStart() {
    const conv = this.conv;
    return !!conv && (conv.list.length === 0 || conv.list[0] === this.first);
  }

  /** Rows in the window (pending ones included). */
  get size() {
    return this.rows.size + this.pending.length;
  }

  onScroll() {
    const el = this.el;
    const below = el.scrollHeight - el.scrollTop - el.clientHeight;
    this.atEnd = below < BOTTOM_SLACK;
    if (el.scrollTop < NEAR_EDGE) {
      this.opts.onNearTop();
    } else if (below < NEAR_EDGE && this.conv && !this.attached()) {
      this.growDown();
    }
    if (this.atEnd && this.attached()) this.setNewBelow(0);
  }

  /**
   * Runs `fn`, which may change the window (`added`, `growUp`…), keeping the view where the
   * reader left it: at the bottom if they were there, else with the first visible row in place.
   */
  batch(fn) {
    if (this.depth++ === 0) {
      this.stick = this.atEnd && this.attached();
      this.anchor = null;
      this.anchored = false;
      this.wrote = false;
      this.trimTopFirst = false;
    }
    try {
      fn();
    } finally {
      if (--this.depth === 0) this.finish();
    }
  }

  /** Before the batch's first DOM write: where the reader is, unless they follow the bottom. */
  beforeWrite() {
    this.wrote = true;
    if (this.anchored) return;
    this.anchored = true;
    if (!this.stick && this.conv) this.anchor = this.captureAnchor();
  }

  captureAnchor() {
    const list = this.conv.list;
    if (!this.first || this.rows.size === 0) return null;
    const top = this.el.scrollTop;
    let lo = this.conv.indexOf(this.first);
    let hi = lo + this.rows.size;
    if (lo < 0) return null;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const row = this.rows.get(list[mid].id);
      if (row && row.el.offsetTop + row.el.offsetHeight <= top) lo = mid + 1;
      else hi = mid;
    }
    // Its bottom edge: a row that joins the group above loses its header, not its text.
    const row = lo < list.length ? this.rows.get(list[lo].id) : null;
    return row ? { el: row.el, offset: row.el.offsetTop + row.el.offsetHeight - top } : null;
  }

  finish() {
    if (!this.conv) return;
    const bound = this.stick ? FOLLOW_RENDERED : MAX_RENDERED;
    const excess = this.size > bound ? this.size - (bound - GROW) : 0;
    if (this.stick || this.trimTopFirst) {
      // Following: every new row goes in (at once), the oldest rows go.
      this.flush();
      if (excess > 0) this.trimTop(excess);
    } else {
      // Reading back: the rows far from the reader go, new ones below first (not shown then).
      if (excess > 0) this.trimBottom(excess);
      this.flush();
    }
    this.syncMarker();
    this.writeNewBelow();
    if (!this.wrote) return;
    const el = this.el;
    if (this.stick) {
      el.scrollTop = el.scrollHeight;
      this.atEnd = true;
    } else if (this.anchor && this.anchor.el.isConnected) {
      const a = this.anchor;
      el.scrollTop = a.el.offsetTop + a.el.offsetHeight - a.offset;
    }
    this.anchor = null;
    // Not enough to scroll yet (or still near the top): grow the window, or fetch older.
    if (!this.checkingTop && el.scrollTop < NEAR_EDGE) {
      this.checkingTop = true;
      try {
        this.opts.onNearTop();
      } finally {
        this.checkingTop = false;
      }
    }
  }

  /** Renders a conversation from scratch (null: none): its newest rows, or from its marker. */
  show(conv, atNewest = false) {
    this.conv = conv;
    this.rows.clear();
    this.pending = [];
    this.first = this.last = null;
    this.markerRowId = null;
    this.newBelow = 0;
    this.writeNewBelow();
    this.anchored = true;
    this.anchor = null;
    this.wrote = false;
    if (!conv) {
      this.el.replaceChildren();
      return;
    }
    const list = conv.list;
    const marker = atNewest ? null : conv.markerAt();
    const at = marker ? conv.indexOf(marker) : -1;
    let start = Math.max(0, list.length - FOLLOW_RENDERED);
    if (at >= 0) start = Math.max(0, Math.min(at - MARKER_CONTEXT, start));
    const end = Math.min(list.length, start + MAX_RENDERED);
    const frag = document.createDocumentFragment();
    frag.append(this.top);
    if (end > start) {
      this.first = list[start];
      this.last = list[end - 1];
      frag.append(this.renderRange(list.slice(start, end), null));
    }
    this.el.replaceChildren(frag);
    this.syncMarker();
    this.updateTop();
    const el = this.el;
    if (this.markerRowId) el.scrollTop = Math.max(0, this.marker.offsetTop - 64);
    else el.scrollTop = el.scrollHeight;
    this.atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < BOTTOM_SLACK;
    this.stick = this.atEnd && this.attached();
  }

  /** Rows for consecutive messages `msgs` in a fragment; `prev`: the message shown right above. */
  renderRange(msgs, prev) {
    const nick = this.opts.me().nick;
    const frag = document.createDocumentFragment();
    for (const m of msgs) {
      const row = { el: renderMsg(m, nick, this.opts.file(m.id)), sep: null };
      const { sep, cont } = layout(prev, m, false);
      if (sep) {
        row.sep = makeSeparator(m.ts);
        frag.append(row.sep);
      }
      if (cont) row.el.classList.add('cont');
      frag.append(row.el);
      this.rows.set(m.id, row);
      prev = m;
    }
    return frag;
  }

  /** Puts the pending rows in the DOM, as one fragment at the end. */
  flush() {
    const pending = this.pending;
    if (!pending.length) return;
    this.beforeWrite();
    this.pending = [];
    this.el.append(this.renderRange(pending, this.shownBefore(this.conv.indexOf(pending[0]))));
  }

  /** The message shown right above `list[i]`, or null. */
  shownBefore(i) {
    const p = i > 0 ? this.conv.list[i - 1] : null;
    return p && this.rows.has(p.id) ? p : null;
  }

  /** The first DOM node that belongs to a row (its separator, the marker, or the row). */
  firstNode(id) {
    const row = this.rows.get(id);
    if (row.sep) return row.sep;
    return this.markerRowId === id ? this.marker : row.el;
  }

  /**
   * `conv.list[i]` of the open conversation was just added: it shows if it lands inside the
   * window, or right after its end when the window follows the newest.
   */
  added(i) {
    const list = this.conv.list;
    const m = list[i];
    if (!this.last) {
      if (list.length === 1) {
        this.first = this.last = m;
        this.pending.push(m);
      }
      return;
    }
    if (list[i - 1] === this.last && i === list.length - 1 && !this.conv.tailCut) {
      this.last = m;
      this.pending.push(m);
      return;
    }
    // Inside the window (a message that history sync brought late): in its place.
    if (compareMsg(m, this.first) < 0 || compareMsg(m, this.last) > 0) return;
    this.flush();
    this.beforeWrite();
    const row = { el: renderMsg(m, this.opts.me().nick, this.opts.file(m.id)), sep: null };
    this.rows.set(m.id, row);
    this.el.insertBefore(row.el, this.firstNode(list[i + 1].id));
    this.decorate(i);
    this.decorate(i + 1);
  }

  /** Puts the separator and grouping of row `i` right after a neighbour changed. */
  decorate(i) {
    const m = this.conv.list[i];
    const row = m && this.rows.get(m.id);
    if (!row) return;
    const marked = this.markerRowId === m.id;
    const { sep, cont } = layout(this.shownBefore(i), m, marked);
    if (sep) {
      if (row.sep && row.sep.dataset.day !== dayKey(m.ts)) {
        row.sep.remove();
        row.sep = null;
      }
      if (!row.sep) row.sep = makeSeparator(m.ts);
      const after = marked ? this.marker : row.el;
      if (row.sep.nextSibling !== after) this.el.insertBefore(row.sep, after);
    } else if (row.sep) {
      row.sep.remove();
      row.sep = null;
    }
    row.el.classList.toggle('cont', cont);
  }

  /** Drops `k` rows (fewer than the window has, none pending) at the top of the window. */
  trimTop(k) {
    const start = this.conv.indexOf(this.first);
    this.removeRows(start, k);
    this.first = this.conv.list[start + k];
    this.decorate(start + k);
  }

  /** Drops `k` rows (fewer than the window has) at the bottom of the window. */
  trimBottom(k) {
    const list = this.conv.list;
    const fromPending = Math.min(k, this.pending.length);
    this.pending.length -= fromPending;
    const start = this.conv.indexOf(this.first);
    const fromDom = k - fromPending;
    this.removeRows(start + this.rows.size - fromDom, fromDom);
    this.last = this.pending.length ? this.pending[this.pending.length - 1] : list[start + this.rows.size - 1];
  }

  /** Removes the DOM rows of `list[start..start+k)` (with their separators and the marker). */
  removeRows(start, k) {
    if (k <= 0) return;
    this.beforeWrite();
    const list = this.conv.list;
    const range = document.createRange();
    range.setStartBefore(this.firstNode(list[start].id));
    range.setEndAfter(this.rows.get(list[start + k - 1].id).el);
    for (let i = start; i < start + k; i++) {
      if (this.markerRowId === list[i].id) this.markerRowId = null;
      this.rows.delete(list[i].id);
    }
    range.deleteContents();
  }

  /**
   * Shows up to GROW held messages above the window (the reader reached its top); how many.
   * `all`: every message above it (a page of history just came for it).
   */
  growUp(all = false) {
    const conv = this.conv;
    if (!conv || !this.first) return 0;
    const start = conv.indexOf(this.first);
    const from = all ? 0 : Math.max(0, start - GROW);
    if (start <= from) return 0;
    this.batch(() => {
      this.flush();
      this.beforeWrite();
      const old = this.firstNode(this.first.id);
      this.el.insertBefore(this.renderRange(conv.list.slice(from, start), null), old);
      this.first = conv.list[from];
      this.decorate(start);
    });
    this.updateTop();
    return start - from;
  }

  /** Shows up to GROW held messages below the window (the reader reached its bottom). */
  growDown() {
    const conv = this.conv;
    if (!conv || !this.last) return 0;
    const end = conv.indexOf(this.last) + 1;
    const to = Math.min(conv.list.length, end + GROW);
    if (to <= end) {
      if (conv.tailCut) this.opts.onNewest();
      return 0;
    }
    this.batch(() => {
      this.trimTopFirst = true;
      this.flush();
      this.beforeWrite();
      this.el.append(this.renderRange(conv.list.slice(end, to), this.last));
      this.last = conv.list[to - 1];
    });
    this.updateTop();
    return to - end;
  }

  /** Moves the "new messages" marker to where `conv.marker` puts it, if shown (else removes it). */
  syncMarker() {
    if (!this.conv) return;
    const at = this.conv.markerAt();
    const target = at && this.rows.has(at.id) ? at.id : null;
    if (target === this.markerRowId) return;
    this.beforeWrite();
    const old = this.markerRowId;
    this.markerRowId = target;
    this.marker.remove();
    if (target) this.el.insertBefore(this.marker, this.rows.get(target).el);
    for (const rowId of [old, target]) {
      const m = rowId && this.conv.msgs.get(rowId);
      const i = m ? this.conv.indexOf(m) : -1;
      if (i >= 0) this.decorate(i);
    }
  }

  /** Moves the marker in a batch of its own (the tab was hidden). */
  placeMarker() {
    this.batch(() => this.syncMarker());
  }

  /** The little text at the top: loading, or the beginning of the conversation. */
  updateTop() {
    const conv = this.conv;
    const start = this.atStart();
    let text = '';
    if (conv && conv.loadingOlder) text = 'Loading older messages…';
    else if (conv && conv.complete && conv.list.length === 0) text = 'No messages yet. Say hi!';
    else if (conv && conv.complete && start && conv.kind === 'room') text = `This is the beginning of #${conv.id}.`;
    else if (conv && conv.complete && start) text = `This is the beginning of your conversation with ${conv.name}.`;
    if (this.top.textContent !== text) {
      this.top.textContent = text;
      this.wrote = true;
    }
    this.top.classList.toggle('loading', !!(conv && conv.loadingOlder));
  }

  /** Shows the new state of file `f` in its offer's row, if shown. */
  updateFile(f) {
    const row = this.rows.get(f.id);
    if (!row) return;
    this.beforeWrite();
    const card = renderFileCard(f);
    const old = row.el.querySelector('.file-card');
    if (old) old.replaceWith(card);
    else row.el.querySelector('.body').append(card);
    row.el.classList.add('has-file');
  }

  /** Shows a DM's new state. */
  updateState(m) {
    const row = this.rows.get(m.id);
    const el = row && row.el.querySelector('.state');
    if (el) setState(el, m.state);
  }

  /** A live message came to the open conversation (shown or not). */
  noteNew() {
    if (!this.stick) this.newBelow += 1;
  }

  setNewBelow(n) {
    this.newBelow = n;
    this.writeNewBelow();
  }

  writeNewBelow() {
    const n = this.newBelow;
    const detached = !!this.conv && !this.attached();
    this.jump.hidden = n === 0 && !detached;
    const text = n === 0 ? '↓ Newest messages' : n === 1 ? '↓ 1 new message' : `↓ ${n} new messages`;
    if (this.jump.textContent !== text) this.jump.textContent = text;
  }

  /** Goes to the newest messages: scrolls there, or shows them first if the window is elsewhere. */
  scrollToBottom(smooth = false) {
    const conv = this.conv;
    if (conv && !this.attached()) {
      if (conv.tailCut) {
        this.opts.onNewest();
        return;
      }
      this.show(conv, true);
    }
    const el = this.el;
    if (smooth && typeof el.scrollTo === 'function') {
      el.scrollTo({ top: el.scrollHeight, behavior: 'smooth' });
    } else {
      el.scrollTop = el.scrollHeight;
    }
    this.atEnd = true;
    this.stick = true;
    this.setNewBelow(0);
  }

  /** Recomputes the day separators' labels. */
  relabelDays() {
    for (const sep of this.el.querySelectorAll('.day-separator')) {
      const span = sep.firstElementChild;
      if (span) span.textContent = dayLabel(Number(sep.dataset.ts));
    }
  }
}
