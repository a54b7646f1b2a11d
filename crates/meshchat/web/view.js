// The message list of the open conversation: rows in (ts, id) order with day separators, the
// "new messages" marker, grouping of consecutive messages by author, and a scroll position
// that sticks to the bottom or stays put while rows are inserted anywhere.

import {
  h, dayKey, dayLabel, formatTime, fullTime, isoTime, colorClass, initial, shortFp, shortPeer,
  linkify, mentions,
} from './util.js';

const GROUP_MS = 5 * 60 * 1000;
const BOTTOM_SLACK = 48;
const NEAR_TOP = 600;

const STATE_ICON = { queued: '⏳', sent: '✓', delivered: '✓✓', failed: '✗' };
const STATE_LABEL = {
  queued: 'Queued: waiting for a route to the recipient',
  sent: 'Sent',
  delivered: 'Delivered',
  failed: 'Failed: not delivered within 7 days',
};

function stateElement(state) {
  const el = h('span', { class: 'state' });
  setState(el, state);
  return el;
}

function setState(el, state) {
  el.dataset.state = state;
  el.textContent = STATE_ICON[state] || '';
  el.title = STATE_LABEL[state] || state;
  el.setAttribute('aria-label', STATE_LABEL[state] || state);
}

export class MessageView {
  /**
   * @param {HTMLElement} listEl  #messages
   * @param {HTMLButtonElement} jumpEl  the "↓ new messages" button
   * @param {{me: () => {nick: string}, onNearTop: () => void}} opts
   */
  constructor(listEl, jumpEl, opts) {
    this.el = listEl;
    this.jump = jumpEl;
    this.opts = opts;
    this.conv = null;
    /** id → {el, sep} of the rendered messages */
    this.rows = new Map();
    this.markerRowId = null;
    this.top = h('div', { class: 'list-top' });
    this.marker = h('div', { class: 'new-marker', role: 'separator' }, h('span', {}, 'New messages'));
    this.atBottom = true;
    this.newBelow = 0;
    this.depth = 0;
    this.anchor = null;
    this.stick = true;
    this.skipRestore = false;

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
        if (this.atBottom) this.el.scrollTop = this.el.scrollHeight;
      }).observe(listEl);
    }
  }

  onScroll() {
    const el = this.el;
    this.atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < BOTTOM_SLACK;
    if (this.atBottom) this.setNewBelow(0);
    if (el.scrollTop < NEAR_TOP) this.opts.onNearTop();
  }

  /**
   * Runs `fn`, which may insert rows, keeping the view where the reader left it: at the
   * bottom if they were there, else with the first visible row at the same place.
   */
  batch(fn) {
    if (this.depth++ === 0) {
      this.skipRestore = false;
      this.stick = this.atBottom;
      this.anchor = !this.stick && this.conv ? this.captureAnchor() : null;
    }
    try {
      fn();
    } finally {
      if (--this.depth === 0) this.restore();
    }
  }

  captureAnchor() {
    const list = this.conv.list;
    const top = this.el.scrollTop;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const row = this.rows.get(list[mid].id);
      if (row && row.el.offsetTop + row.el.offsetHeight <= top) lo = mid + 1;
      else hi = mid;
    }
    const row = lo < list.length ? this.rows.get(list[lo].id) : null;
    return row ? { el: row.el, offset: row.el.offsetTop - top } : null;
  }

  restore() {
    const anchor = this.anchor;
    this.anchor = null;
    if (this.skipRestore || !this.conv) return;
    if (this.stick) {
      this.el.scrollTop = this.el.scrollHeight;
    } else if (anchor && anchor.el.isConnected) {
      this.el.scrollTop = anchor.el.offsetTop - anchor.offset;
    }
    // Not enough to scroll yet (or still near the top): the app fetches older messages.
    if (this.el.scrollTop < NEAR_TOP) this.opts.onNearTop();
  }

  /** Renders a conversation from scratch (null: none). */
  show(conv) {
    this.conv = conv;
    this.rows.clear();
    this.markerRowId = null;
    this.setNewBelow(0);
    this.skipRestore = true;
    if (!conv) {
      this.el.replaceChildren();
      return;
    }
    const frag = document.createDocumentFragment();
    frag.append(this.top);
    this.markerRowId = conv.markerId && conv.msgs.has(conv.markerId) ? conv.markerId : null;
    let prev = null;
    for (const m of conv.list) {
      const row = { el: this.renderMsg(m), sep: null };
      const { sep, cont } = this.layout(prev, m);
      if (sep) {
        row.sep = this.makeSeparator(m.ts);
        frag.append(row.sep);
      }
      if (m.id === this.markerRowId) frag.append(this.marker);
      row.el.classList.toggle('cont', cont);
      frag.append(row.el);
      this.rows.set(m.id, row);
      prev = m;
    }
    this.el.replaceChildren(frag);
    this.updateTop();
    const el = this.el;
    if (this.markerRowId) {
      el.scrollTop = Math.max(0, this.marker.offsetTop - 64);
    } else {
      el.scrollTop = el.scrollHeight;
    }
    this.atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < BOTTOM_SLACK;
  }

  /** Whether `m` needs a day separator before it, and whether it continues `prev`'s group. */
  layout(prev, m) {
    const sep = !prev || dayKey(prev.ts) !== dayKey(m.ts);
    const cont =
      !!prev &&
      !sep &&
      this.markerRowId !== m.id &&
      prev.from === m.from &&
      prev.nick === m.nick &&
      m.ts - prev.ts < GROUP_MS;
    return { sep, cont };
  }

  makeSeparator(ts) {
    return h(
      'div',
      { class: 'day-separator', role: 'separator', dataset: { day: dayKey(ts), ts: String(ts) } },
      h('span', {}, dayLabel(ts)),
    );
  }

  /** The first DOM node that belongs to a row (its separator, the marker, or the row). */
  firstNode(id) {
    const row = this.rows.get(id);
    if (row.sep) return row.sep;
    return this.markerRowId === id ? this.marker : row.el;
  }

  /** Inserts the row of `conv.list[i]` (the open conversation's message just added). */
  insert(i) {
    const list = this.conv.list;
    const m = list[i];
    if (this.rows.has(m.id)) return;
    const row = { el: this.renderMsg(m), sep: null };
    this.rows.set(m.id, row);
    const next = i + 1 < list.length ? this.firstNode(list[i + 1].id) : null;
    this.el.insertBefore(row.el, next);
    this.decorate(i);
    if (i + 1 < list.length) this.decorate(i + 1);
  }

  /** Puts the separator and grouping of row `i` right after a neighbour changed. */
  decorate(i) {
    const list = this.conv.list;
    const m = list[i];
    const row = this.rows.get(m.id);
    if (!row) return;
    const { sep, cont } = this.layout(list[i - 1], m);
    if (sep) {
      if (row.sep && row.sep.dataset.day !== dayKey(m.ts)) {
        row.sep.remove();
        row.sep = null;
      }
      if (!row.sep) row.sep = this.makeSeparator(m.ts);
      const after = this.markerRowId === m.id ? this.marker : row.el;
      if (row.sep.nextSibling !== after) this.el.insertBefore(row.sep, after);
    } else if (row.sep) {
      row.sep.remove();
      row.sep = null;
    }
    row.el.classList.toggle('cont', cont);
  }

  /** Moves the "new messages" marker to `conv.markerId` (or removes it). */
  placeMarker() {
    if (!this.conv) return;
    const id = this.conv.markerId;
    const target = id && this.rows.has(id) ? id : null;
    if (target === this.markerRowId) return;
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

  /** The little text at the top: loading, or the beginning of the conversation. */
  updateTop() {
    const conv = this.conv;
    let text = '';
    if (conv && conv.loadingOlder) text = 'Loading older messages…';
    else if (conv && conv.complete && conv.list.length === 0) text = 'No messages yet. Say hi!';
    else if (conv && conv.complete && conv.kind === 'room') text = `This is the beginning of #${conv.id}.`;
    else if (conv && conv.complete) text = `This is the beginning of your conversation with ${conv.name}.`;
    this.top.textContent = text;
    this.top.classList.toggle('loading', !!(conv && conv.loadingOlder));
  }

  /** Shows a DM's new state. */
  updateState(m) {
    const row = this.rows.get(m.id);
    const el = row && row.el.querySelector('.state');
    if (el) setState(el, m.state);
  }

  /** A live message was added to the open conversation. */
  noteNew() {
    if (!this.stick && !this.atBottom) this.setNewBelow(this.newBelow + 1);
  }

  setNewBelow(n) {
    this.newBelow = n;
    this.jump.hidden = n === 0;
    this.jump.textContent = n === 1 ? '↓ 1 new message' : `↓ ${n} new messages`;
  }

  scrollToBottom(smooth = false) {
    const el = this.el;
    if (smooth && typeof el.scrollTo === 'function') {
      el.scrollTo({ top: el.scrollHeight, behavior: 'smooth' });
    } else {
      el.scrollTop = el.scrollHeight;
    }
    this.atBottom = true;
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

  renderMsg(m) {
    const me = this.opts.me();
    const name = m.nick || shortPeer(m.from);
    const color = m.own ? 'c-own' : colorClass(m.fingerprint || m.from);
    const classes = ['msg'];
    if (m.own) classes.push('own');
    if (!m.own && !m.dm && mentions(m.text, me.nick)) classes.push('mention');
    if (m.synced) classes.push('is-synced');
    const aside = [];
    if (m.synced) {
      aside.push(
        h('span', { class: 'synced', title: 'Arrived by history sync: sent while this node was away' }, 'synced'),
      );
    }
    if (m.dm && m.own) aside.push(stateElement(m.state || 'queued'));
    const fp = shortFp(m.fingerprint);
    return h(
      'div',
      { class: classes.join(' '), 'data-id': m.id },
      h('span', { class: `avatar ${color}`, 'aria-hidden': 'true' }, initial(name)),
      h(
        'div',
        { class: 'body' },
        h(
          'div',
          { class: 'meta' },
          h('bdi', { class: `nick ${color}`, title: m.fingerprint ? `${name} · ${m.fingerprint}` : name }, name),
          fp ? h('span', { class: 'fp', title: `Key fingerprint ${m.fingerprint}` }, fp) : null,
          h('time', { class: 'time', datetime: isoTime(m.ts), title: fullTime(m.ts) }, formatTime(m.ts)),
        ),
        h('div', { class: 'text', dir: 'auto' }, linkify(m.text)),
      ),
      aside.length ? h('div', { class: 'aside' }, aside) : null,
    );
  }
}
