// The page's chrome around the chat: the phone-width drawer, the error bar and the warning line.

const $ = (id) => document.getElementById(id);
const narrow = window.matchMedia('(max-width: 700px)');

export function isNarrow() {
  return narrow.matches;
}

function setDrawer(openIt) {
  document.body.classList.toggle('drawer-open', openIt);
  $('menu-button').setAttribute('aria-expanded', String(openIt));
  $('backdrop').hidden = !openIt;
  if (openIt) {
    const target = document.querySelector('#sidebar .conv-link, #join-input');
    if (target) target.focus({ preventScroll: true });
  }
}

export function closeDrawer() {
  if (document.body.classList.contains('drawer-open')) setDrawer(false);
}

/** Shows the last error in #error (text only). */
export function showError(message) {
  $('error-text').textContent = message;
  $('error').hidden = false;
}

export function clearError() {
  $('error-text').textContent = '';
  $('error').hidden = true;
}

/** Shows the last warning in #warning (text only). */
export function showWarning(message) {
  $('warning-text').textContent = message;
  $('warning').hidden = false;
}

export function clearWarning() {
  $('warning-text').textContent = '';
  $('warning').hidden = true;
}

export function setupChrome() {
  $('menu-button').addEventListener('click', () => {
    setDrawer(!document.body.classList.contains('drawer-open'));
  });
  $('backdrop').addEventListener('click', () => setDrawer(false));
  $('error-close').addEventListener('click', clearError);
  $('warning-close').addEventListener('click', clearWarning);
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    if (document.body.classList.contains('drawer-open')) {
      setDrawer(false);
      $('menu-button').focus();
    } else if (!$('error').hidden) {
      clearError();
    }
  });
  // Leaving phone width with the drawer open: the sidebar is simply there.
  narrow.addEventListener('change', () => {
    if (!narrow.matches) closeDrawer();
  });
}
