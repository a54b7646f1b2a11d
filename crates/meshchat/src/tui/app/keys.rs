//! The terminal's input: keys, the mouse, pastes, the overlays they open and close, and
//! switching and scrolling rooms.

use super::*;

impl App {
    pub fn on_terminal(&mut self, event: TermEvent) {
        match event {
            TermEvent::Key(k) if k.kind != KeyEventKind::Release => self.on_key(k),
            TermEvent::Paste(text) => self.paste(&text),
            TermEvent::Mouse(m) => self.on_mouse(m),
            // The next frame is drawn at the new size; the view stays inside the window.
            TermEvent::Resize(..) => {}
            _ => {}
        }
    }

    pub(super) fn paste(&mut self, text: &str) {
        let clean = wrap::sanitize(text, true);
        if !self.input.insert(&clean) {
            self.notice(
                &format!(
                    "paste too long: a message holds at most {MAX_TEXT_LEN} bytes; nothing pasted"
                ),
                Level::Error,
            );
        }
    }

    pub(super) fn on_mouse(&mut self, m: MouseEvent) {
        match m.kind {
            MouseEventKind::ScrollUp if self.overlay.is_some() => {
                self.scroll_overlay(-(WHEEL_ROWS as i32));
            }
            MouseEventKind::ScrollDown if self.overlay.is_some() => {
                self.scroll_overlay(WHEEL_ROWS as i32);
            }
            MouseEventKind::ScrollUp => self.scroll(WHEEL_ROWS),
            MouseEventKind::ScrollDown => self.scroll(-WHEEL_ROWS),
            MouseEventKind::Down(MouseButton::Left) => {
                let hit = self
                    .room_hits
                    .borrow()
                    .iter()
                    .find(|(r, _)| {
                        r.contains(ratatui::layout::Position {
                            x: m.column,
                            y: m.row,
                        })
                    })
                    .map(|(_, i)| *i);
                if let Some(i) = hit {
                    self.switch_to(i);
                }
            }
            _ => {}
        }
    }

    pub fn on_key(&mut self, key: KeyEvent) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let shift = key.modifiers.contains(KeyModifiers::SHIFT);
        if ctrl && matches!(key.code, KeyCode::Char('c')) {
            self.quit = true;
            return;
        }
        if self.overlay.is_some() && self.overlay_key(key) {
            return;
        }
        let page = (self.pane.get().1 as isize - 2).max(1);
        match key.code {
            KeyCode::F(1) => self.open(Overlay::Help),
            KeyCode::F(2) => self.show_addrs = !self.show_addrs,
            KeyCode::Char(c) if alt && c.is_ascii_digit() => {
                let n = c.to_digit(10).unwrap_or(0) as usize;
                self.switch_to(if n == 0 { 9 } else { n - 1 });
            }
            KeyCode::Char('n') if ctrl => self.cycle(1),
            KeyCode::Char('p') if ctrl => self.cycle(-1),
            KeyCode::Right if alt => self.cycle(1),
            KeyCode::Left if alt => self.cycle(-1),
            KeyCode::PageUp => self.scroll(page),
            KeyCode::PageDown => self.scroll(-page),
            KeyCode::Up if shift => self.scroll(1),
            KeyCode::Down if shift => self.scroll(-1),
            KeyCode::Home if ctrl || self.input.is_empty() => self.scroll(isize::MAX / 2),
            KeyCode::End if ctrl || self.input.is_empty() => self.scroll(isize::MIN / 2),
            KeyCode::Char('l') if ctrl => self.repaint = true,
            KeyCode::Tab => self.complete(true),
            KeyCode::BackTab => self.complete(false),
            KeyCode::Enter if alt => {
                self.input.insert_char('\n');
            }
            KeyCode::Enter => self.submit(),
            KeyCode::Up => self.input.history_prev(),
            KeyCode::Down => self.input.history_next(),
            KeyCode::Left if ctrl => self.input.word_left(),
            KeyCode::Right if ctrl => self.input.word_right(),
            KeyCode::Char('b') if alt => self.input.word_left(),
            KeyCode::Char('f') if alt => self.input.word_right(),
            KeyCode::Left => self.input.left(),
            KeyCode::Right => self.input.right(),
            KeyCode::Home => self.input.home(),
            KeyCode::End => self.input.end(),
            KeyCode::Char('a') if ctrl => self.input.home(),
            KeyCode::Char('e') if ctrl => self.input.end(),
            KeyCode::Backspace if alt || ctrl => self.input.delete_word_back(),
            KeyCode::Char('w') if ctrl => self.input.delete_word_back(),
            KeyCode::Char('h') if ctrl => self.input.backspace(),
            KeyCode::Backspace => self.input.backspace(),
            KeyCode::Delete => self.input.delete(),
            KeyCode::Char('d') if alt => self.input.delete_word_forward(),
            KeyCode::Char('u') if ctrl => self.input.kill_to_start(),
            KeyCode::Char('k') if ctrl => self.input.kill_to_end(),
            KeyCode::Char(c) if !ctrl && !alt && !c.is_control() => {
                if !self.input.insert_char(c) {
                    self.notice(
                        &format!("a message holds at most {MAX_TEXT_LEN} bytes"),
                        Level::Error,
                    );
                }
            }
            _ => {}
        }
    }

    /// Keys while a panel is open; true if the key was used.
    pub(super) fn overlay_key(&mut self, key: KeyEvent) -> bool {
        match key.code {
            KeyCode::Esc | KeyCode::Enter | KeyCode::F(1) => self.close_overlay(),
            KeyCode::Char('q') if key.modifiers.is_empty() && self.input.is_empty() => {
                self.close_overlay()
            }
            KeyCode::Up => self.scroll_overlay(-1),
            KeyCode::Down => self.scroll_overlay(1),
            KeyCode::PageUp => self.scroll_overlay(-10),
            KeyCode::PageDown => self.scroll_overlay(10),
            KeyCode::Home => self.overlay_scroll = 0,
            KeyCode::End => self.overlay_scroll = self.overlay_max.get(),
            _ => {
                // Typing goes on in the input line.
                self.close_overlay();
                return false;
            }
        }
        true
    }

    pub(super) fn scroll_overlay(&mut self, rows: i32) {
        let max = i32::from(self.overlay_max.get());
        self.overlay_scroll = (i32::from(self.overlay_scroll) + rows).clamp(0, max) as u16;
    }

    pub(super) fn open(&mut self, overlay: Overlay) {
        self.overlay = Some(overlay);
        self.overlay_scroll = 0;
    }

    pub(super) fn close_overlay(&mut self) {
        self.overlay = None;
        self.overlay_scroll = 0;
    }

    /// Shows room `i` (if it exists) and marks it read.
    pub fn switch_to(&mut self, i: usize) {
        if let Some(r) = self.rooms.get_mut(i) {
            r.unread = 0;
            r.mentions = 0;
            self.current = i;
            self.settle();
        }
    }

    pub(super) fn cycle(&mut self, step: isize) {
        let n = self.rooms.len() as isize;
        if n > 0 {
            let next = (self.current as isize + step).rem_euclid(n);
            self.switch_to(next as usize);
        }
    }

    /// Scrolls the room on screen `rows` back in time (negative: forward).
    pub fn scroll(&mut self, rows: isize) {
        let geo = self.geometry(self.room());
        let need = self.room_mut().scroll_by(rows, geo);
        self.on_need(need);
    }
}
