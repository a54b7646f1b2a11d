// The sidebar's lists: rooms, DM conversations, people online (`who`), connected peers
// (`peers`), and the tracker. Items are reused by key so that focus and hover survive updates.

import { h, colorClass, initial, shortFp, shortPeer } from './util.js';

/**
 * Makes `ul`'s children the items, in order: an item's <li> is found by its `data-<attr>`,
 * created by `create` when missing, refreshed by `update`; the rest are removed.
 */
function reconcile(ul, items, attr, keyOf, create, update) {
  const existing = new Map();
  for (const li of ul.children) existing.set(li.dataset[attr], li);
  let ref = ul.firstElementChild;
  for (const item of items) {
    const key = keyOf(item);
    let li = existing.get(key);
    if (li) existing.delete(key);
    else li = create(item, key);
    update(li, item);
    if (li === ref) ref = ref.nextElementSibling;
    else ul.insertBefore(li, ref);
  }
  for (const li of existing.values()) li.remove();
}

function setUnread(li, count, label) {
  const badge = li.querySelector('.unread');
  badge.textContent = count > 0 ? String(count) : '';
  badge.hidden = count <= 0;
  li.classList.toggle('has-unread', count > 0);
  const button = li.querySelector('.conv-link');
  button.setAttribute('aria-label', count > 0 ? `${label}, ${count} unread` : label);
}

function setCurrent(li, current) {
  li.classList.toggle('active', current);
  const button = li.querySelector('.conv-link');
  if (current) button.setAttribute('aria-current', 'page');
  else button.removeAttribute('aria-current');
}

/** #rooms: one item per joined room. */
export function renderRooms(ul, rooms, current) {
  reconcile(
    ul,
    rooms,
    'room',
    (c) => c.id,
    (c) =>
      h(
        'li',
        { class: 'conv-item', 'data-room': c.id },
        h(
          'button',
          { type: 'button', class: 'conv-link' },
          h('span', { class: 'conv-icon', 'aria-hidden': 'true' }, '#'),
          h('span', { class: 'conv-name' }, c.id),
          h('span', { class: 'unread', hidden: true }),
        ),
      ),
    (li, c) => {
      // A private room: a lock instead of the '#'.
      const icon = li.querySelector('.conv-icon');
      const mark = c.private ? '🔒' : '#';
      if (icon.textContent !== mark) icon.textContent = mark;
      li.title = c.private ? `Private room (${c.private})${c.removed ? ', removed' : ''}` : '';
      setUnread(li, c.unread, `${mark}${c.id}`);
      setCurrent(li, c === current);
    },
  );
}

/** #conversations: one item per DM conversation, newest first. */
export function renderConversations(ul, convs, current, online) {
  reconcile(
    ul,
    convs,
    'peer',
    (c) => c.id,
    (c) =>
      h(
        'li',
        { class: 'conv-item', 'data-peer': c.id },
        h(
          'button',
          { type: 'button', class: 'conv-link' },
          h('span', { class: 'mini-avatar', 'aria-hidden': 'true' }),
          h('bdi', { class: 'conv-name' }),
          h('span', { class: 'fp' }),
          h('span', { class: 'unread', hidden: true }),
        ),
      ),
    (li, c) => {
      const name = c.name;
      const avatar = li.querySelector('.mini-avatar');
      avatar.textContent = initial(name);
      avatar.className = `mini-avatar ${colorClass(c.fingerprint || c.id)}`;
      avatar.classList.toggle('online', online.has(c.id));
      li.querySelector('.conv-name').textContent = name;
      const fp = li.querySelector('.fp');
      fp.textContent = shortFp(c.fingerprint);
      fp.title = c.fingerprint ? `Key fingerprint ${c.fingerprint}` : '';
      setUnread(li, c.unread, `Direct messages with ${name}`);
      setCurrent(li, c === current);
    },
  );
}

function hopsText(p) {
  if (p.self) return 'you';
  if (p.connected) return 'direct';
  if (Number.isInteger(p.hops)) return p.hops === 1 ? '1 hop' : `${p.hops} hops`;
  return 'no route';
}

/** #people: everyone online per the tracker's roster, with a "message" button. */
export function renderPeople(ul, who) {
  reconcile(
    ul,
    who,
    'peer',
    (p) => p.peer_id,
    (p) =>
      h(
        'li',
        { class: 'person', 'data-peer': p.peer_id },
        h('span', { class: 'presence', 'aria-hidden': 'true' }),
        h('span', { class: 'person-main' }, h('bdi', { class: 'person-nick' }), h('span', { class: 'fp' })),
        h('span', { class: 'person-detail' }),
      ),
    (li, p) => {
      const name = p.nick || shortPeer(p.peer_id);
      li.classList.toggle('self', !!p.self);
      li.classList.toggle('direct', !!p.connected);
      li.classList.toggle('unreachable', !p.self && !p.connected && !Number.isInteger(p.hops));
      li.querySelector('.person-nick').textContent = name;
      const fp = li.querySelector('.fp');
      fp.textContent = shortFp(p.fingerprint);
      fp.title = p.fingerprint ? `Key fingerprint ${p.fingerprint}` : '';
      li.querySelector('.person-detail').textContent = hopsText(p);
      let button = li.querySelector('.dm-button');
      if (p.self) {
        if (button) button.remove();
      } else {
        if (!button) {
          button = h('button', { type: 'button', class: 'dm-button' }, 'Message');
          li.append(button);
        }
        button.setAttribute('aria-label', `Message ${name}`);
      }
    },
  );
}

/** #peers: the libp2p peers connected now, with short fingerprints when the roster knows them. */
export function renderPeers(ul, peers, whoByPeer) {
  reconcile(
    ul,
    peers,
    'peer',
    (p) => p.peer_id,
    (p) =>
      h(
        'li',
        { class: 'peer', 'data-peer': p.peer_id },
        h('bdi', { class: 'peer-nick' }),
        h('span', { class: 'fp' }),
        h('span', { class: 'peer-detail' }),
      ),
    (li, p) => {
      const known = whoByPeer.get(p.peer_id);
      const nick = p.nick || (known && known.nick) || shortPeer(p.peer_id);
      li.querySelector('.peer-nick').textContent = nick;
      const fingerprint = known && known.fingerprint;
      const fp = li.querySelector('.fp');
      fp.textContent = fingerprint ? shortFp(fingerprint) : shortPeer(p.peer_id);
      fp.title = fingerprint ? `Key fingerprint ${fingerprint}` : `Peer id ${p.peer_id}`;
      li.querySelector('.peer-detail').textContent = p.chat ? '' : 'handshaking';
      li.classList.toggle('pending', !p.chat);
      const addrs = Array.isArray(p.addrs) ? p.addrs.filter((a) => typeof a === 'string') : [];
      li.title = [p.peer_id, ...addrs].join('\n');
    },
  );
}

/** #tracker: the tracker's nick, or "electing…" while there is none. */
export function renderTracker(el, metaEl, t) {
  if (!t) {
    el.textContent = '—';
    metaEl.textContent = '';
    return;
  }
  if (typeof t.tracker !== 'string') {
    el.textContent = 'electing…';
  } else {
    el.textContent = typeof t.nick === 'string' && t.nick ? t.nick : shortPeer(t.tracker);
  }
  el.title = typeof t.tracker === 'string' ? `Tracker ${t.tracker}` : 'A tracker election is running';
  const bits = [];
  if (t.self) bits.push('this node');
  if (Number.isInteger(t.online)) bits.push(`${t.online}${t.truncated ? '+' : ''} online`);
  if (typeof t.tracker === 'string' && t.registered === false) bits.push('registering…');
  metaEl.textContent = bits.join(' · ');
}
