// Rendering of the page around the message list: the sidebar's lists, the document title,
// the header, the connection status, and browser notifications.

import { state, sortedDms } from './state.js';
import { renderRooms, renderConversations } from './sidebar.js';
import { shortFp, shortPeer } from './util.js';
import { formatSize } from './files.js';

const $ = (id) => document.getElementById(id);

// ---- notifications -------------------------------------------------------------------------

export function askNotificationPermission() {
  if (!('Notification' in window) || Notification.permission !== 'default') return;
  try {
    const p = Notification.requestPermission();
    if (p && typeof p.catch === 'function') p.catch(() => {});
  } catch {
    // old browsers: callback form only; no notifications then
  }
}

/** Notifies of `m` in `conv` (text only); clicking it calls `onOpen(conv)`. */
export function notify(conv, m, onOpen) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  const who = m.nick || shortPeer(m.from);
  const file = state.files.get(m.id);
  let title = conv.kind === 'room' ? `${who} in #${conv.id}` : `${who} (direct message)`;
  let body = m.text.length > 300 ? m.text.slice(0, 300) + '…' : m.text;
  if (file && !file.own) {
    title = conv.kind === 'room' ? `${who} offers a file in #${conv.id}` : `${who} offers you a file`;
    body = `${file.name} (${formatSize(file.size)})`;
  }
  try {
    const n = new Notification(title, { body, tag: conv.key });
    n.addEventListener('click', () => {
      window.focus();
      if (state.rooms.get(conv.id) === conv || state.dms.get(conv.id) === conv) onOpen(conv);
      n.close();
    });
  } catch {
    // some browsers allow notifications only from a service worker
  }
}

// ---- rendering -------------------------------------------------------------------------------

export function renderSidebar() {
  const online = new Set(state.who.filter((p) => !p.self).map((p) => p.peer_id));
  renderRooms($('rooms'), [...state.rooms.values()], state.current);
  const dms = sortedDms();
  renderConversations($('conversations'), dms, state.current, online);
  $('conversations-empty').hidden = dms.length > 0;
  renderTitle();
}

export function renderTitle() {
  let total = state.hiddenUnseen;
  for (const c of state.rooms.values()) total += c.unread;
  for (const c of state.dms.values()) total += c.unread;
  const title = total > 0 ? `(${total}) meshchat` : 'meshchat';
  if (document.title !== title) document.title = title;
  // Elsewhere (the drawer is closed at phone width): a dot on the menu button.
  const elsewhere = total - state.hiddenUnseen;
  const menu = $('menu-button');
  menu.classList.toggle('has-unread', elsewhere > 0);
  menu.setAttribute('aria-label', elsewhere > 0 ? `Rooms and people, ${elsewhere} unread` : 'Rooms and people');
}

export function renderMe() {
  $('me-nick').textContent = state.me.nick || '…';
  $('me-fp').textContent = shortFp(state.me.fingerprint);
  $('me-fp').title = state.me.fingerprint ? `Your key fingerprint ${state.me.fingerprint}` : '';
}

export function renderHeader() {
  const conv = state.current;
  const composer = $('composer');
  $('leave-button').hidden = !conv || conv.kind !== 'room';
  $('empty').hidden = !!conv;
  composer.disabled = !conv;
  $('send-button').disabled = !conv;
  $('attach-button').disabled = !conv;
  if (!conv) {
    $('title-prefix').textContent = '';
    $('title').textContent = 'meshchat';
    $('subtitle').textContent = '';
    $('subtitle').title = '';
    composer.placeholder = '';
    return;
  }
  $('title-prefix').textContent = conv.kind !== 'room' ? '@' : conv.private ? '🔒#' : '#';
  $('title').textContent = conv.name;
  if (conv.kind === 'room' && conv.private) {
    const bits = [conv.private === 'invite' ? 'Private room, by invite' : 'Private room, by passphrase'];
    if (Number.isInteger(conv.members)) {
      const heard = conv.private === 'passphrase' ? ' heard' : '';
      bits.push(`${conv.members} member${conv.members === 1 ? '' : 's'}${heard}`);
    }
    if (conv.removed) bits.push('you were removed: read only');
    $('subtitle').textContent = bits.join(' · ');
    $('subtitle').title = 'Only its members read it; relays carry it sealed (PROTOCOL §10)';
    composer.placeholder = `Message 🔒#${conv.id}`;
  } else if (conv.kind === 'room') {
    $('subtitle').textContent = 'Room';
    $('subtitle').title = '';
    composer.placeholder = `Message #${conv.id}`;
  } else {
    const p = state.whoByPeer.get(conv.id);
    const reach = !p ? 'not online' : p.connected ? 'online, direct' : 'online';
    $('subtitle').textContent = conv.fingerprint ? `${conv.fingerprint} · ${reach}` : reach;
    $('subtitle').title = `Peer id ${conv.id}`;
    composer.placeholder = `Message ${conv.name}`;
  }
}

export function renderStatus(s, info) {
  const status = $('status');
  status.dataset.state = s;
  let text;
  if (s === 'open') text = 'Connected';
  else if (!info.everOpened) text = 'Connecting…';
  else text = 'Reconnecting…';
  $('status-text').textContent = text;
  const banner = $('conn-banner');
  banner.hidden = s === 'open' || !info.everOpened;
  banner.textContent = s === 'open' ? '' : 'Connection to the node lost: reconnecting…';
}
