// The elements of the message list: a message row, a day separator, a DM's state, and the
// rule that decides separators and author grouping between two neighbouring rows.

import {
  h, dayKey, dayLabel, formatTime, fullTime, isoTime, colorClass, initial, shortFp, shortPeer,
  linkify, mentions,
} from './util.js';
import { renderFileCard } from './files.js';

/** Consecutive messages of one author closer than this share one header. */
const GROUP_MS = 5 * 60 * 1000;

const STATE_ICON = { queued: '⏳', sent: '✓', delivered: '✓✓', failed: '✗' };
const STATE_LABEL = {
  queued: 'Queued: waiting for a route to the recipient',
  sent: 'Sent',
  delivered: 'Delivered',
  failed: 'Failed: not delivered within 7 days',
};

export function setState(el, state) {
  el.dataset.state = state;
  el.textContent = STATE_ICON[state] || '';
  el.title = STATE_LABEL[state] || state;
  el.setAttribute('aria-label', STATE_LABEL[state] || state);
}

function stateElement(state) {
  const el = h('span', { class: 'state' });
  setState(el, state);
  return el;
}

/**
 * Whether `m` needs a day separator before it, and whether it continues the group of `prev`
 * (the row shown right above it, or null). `marked`: the "new messages" marker is above it.
 */
export function layout(prev, m, marked) {
  const sep = !prev || dayKey(prev.ts) !== dayKey(m.ts);
  const cont =
    !!prev &&
    !sep &&
    !marked &&
    prev.from === m.from &&
    prev.nick === m.nick &&
    m.ts - prev.ts < GROUP_MS;
  return { sep, cont };
}

export function makeSeparator(ts) {
  return h(
    'div',
    { class: 'day-separator', role: 'separator', dataset: { day: dayKey(ts), ts: String(ts) } },
    h('span', {}, dayLabel(ts)),
  );
}

/**
 * The row of message `m` (all network text as text); `myNick` decides mentions; `file`: the
 * file it offers, if it is a file offer (the row then shows the file's card).
 */
export function renderMsg(m, myNick, file = null) {
  const name = m.nick || shortPeer(m.from);
  const color = m.own ? 'c-own' : colorClass(m.fingerprint || m.from);
  const classes = ['msg'];
  if (m.own) classes.push('own');
  if (!m.own && !m.dm && mentions(m.text, myNick)) classes.push('mention');
  if (m.synced) classes.push('is-synced');
  if (file) classes.push('has-file');
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
      file ? renderFileCard(file) : null,
    ),
    aside.length ? h('div', { class: 'aside' }, aside) : null,
  );
}
