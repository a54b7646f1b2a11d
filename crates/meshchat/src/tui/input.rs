//! The input line: a text buffer with a cursor that moves by grapheme cluster, readline-style
//! word motions and deletions, a bounded history of sent lines, and cycling Tab completion.

use std::collections::VecDeque;

use unicode_segmentation::UnicodeSegmentation;

/// Lines remembered for Up/Down.
pub const HISTORY_CAP: usize = 500;

#[derive(Debug, Default)]
pub struct Input {
    buf: String,
    /// Byte offset into `buf`, always on a grapheme boundary.
    cursor: usize,
    /// Sent lines, oldest first.
    history: VecDeque<String>,
    /// Index into `history` while browsing it.
    browsing: Option<usize>,
    /// What was typed before browsing started, restored by going past the newest.
    draft: String,
    completion: Option<Completion>,
    /// Most bytes the buffer holds.
    max_len: usize,
}

/// A completion in progress: Tab again picks the next candidate.
#[derive(Debug, Clone)]
struct Completion {
    /// Byte offset where the completed word starts.
    start: usize,
    candidates: Vec<String>,
    index: usize,
}

/// The word Tab completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word<'a> {
    /// The partial word before the cursor.
    pub prefix: &'a str,
    /// 0 for the first word of the line, 1 for the next, and so on.
    pub position: usize,
    /// The first word of the line (to know which command is being typed).
    pub first: &'a str,
}

impl Input {
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len,
            ..Self::default()
        }
    }

    pub fn text(&self) -> &str {
        &self.buf
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn is_completing(&self) -> bool {
        self.completion.is_some()
    }

    /// Inserts text at the cursor; false (and nothing inserted) if the line would be too long.
    pub fn insert(&mut self, s: &str) -> bool {
        self.completion = None;
        if self.buf.len() + s.len() > self.max_len {
            return false;
        }
        self.buf.insert_str(self.cursor, s);
        self.cursor += s.len();
        true
    }

    pub fn insert_char(&mut self, c: char) -> bool {
        let mut b = [0u8; 4];
        self.insert(c.encode_utf8(&mut b))
    }

    /// Replaces the whole line (cursor at the end).
    pub fn set(&mut self, s: &str) {
        self.buf.clear();
        self.buf.push_str(s);
        self.cursor = self.buf.len();
        self.completion = None;
    }

    /// Takes the line for sending, remembers it in the history, and empties the buffer.
    pub fn submit(&mut self) -> String {
        let line = std::mem::take(&mut self.buf);
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();
        self.completion = None;
        if !line.trim().is_empty() && self.history.back() != Some(&line) {
            if self.history.len() == HISTORY_CAP {
                self.history.pop_front();
            }
            self.history.push_back(line.clone());
        }
        line
    }

    /// Replaces the line just submitted in the history by `shown` (a `/join ROOM --key` without
    /// its passphrase): Up brings that back, never the secret.
    pub fn redact_last(&mut self, shown: &str) {
        self.history.pop_back();
        if !shown.is_empty() && self.history.back().map(String::as_str) != Some(shown) {
            self.history.push_back(shown.to_owned());
        }
    }

    fn prev_boundary(&self, at: usize) -> usize {
        self.buf[..at]
            .grapheme_indices(true)
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self, at: usize) -> usize {
        self.buf[at..]
            .graphemes(true)
            .next()
            .map_or(at, |g| at + g.len())
    }

    /// Start of the word before `at` (skipping white space first), as Ctrl+W sees words.
    fn word_start(&self, at: usize) -> usize {
        let before = &self.buf[..at];
        let trimmed = before.trim_end();
        trimmed
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8())
    }

    /// End of the word after `at` (skipping white space first).
    fn word_end(&self, at: usize) -> usize {
        let after = &self.buf[at..];
        let skip = after.len() - after.trim_start().len();
        after[skip..]
            .char_indices()
            .find(|(_, c)| c.is_whitespace())
            .map_or(self.buf.len(), |(i, _)| at + skip + i)
    }

    fn edit(&mut self) {
        self.completion = None;
    }

    pub fn left(&mut self) {
        self.edit();
        self.cursor = self.prev_boundary(self.cursor);
    }

    pub fn right(&mut self) {
        self.edit();
        self.cursor = self.next_boundary(self.cursor);
    }

    pub fn word_left(&mut self) {
        self.edit();
        self.cursor = self.word_start(self.cursor);
    }

    pub fn word_right(&mut self) {
        self.edit();
        self.cursor = self.word_end(self.cursor);
    }

    pub fn home(&mut self) {
        self.edit();
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.edit();
        self.cursor = self.buf.len();
    }

    pub fn backspace(&mut self) {
        self.edit();
        let start = self.prev_boundary(self.cursor);
        self.buf.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    pub fn delete(&mut self) {
        self.edit();
        let end = self.next_boundary(self.cursor);
        self.buf.replace_range(self.cursor..end, "");
    }

    /// Ctrl+W, Alt+Backspace.
    pub fn delete_word_back(&mut self) {
        self.edit();
        let start = self.word_start(self.cursor);
        self.buf.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Alt+D.
    pub fn delete_word_forward(&mut self) {
        self.edit();
        let end = self.word_end(self.cursor);
        self.buf.replace_range(self.cursor..end, "");
    }

    /// Ctrl+U.
    pub fn kill_to_start(&mut self) {
        self.edit();
        self.buf.replace_range(..self.cursor, "");
        self.cursor = 0;
    }

    /// Ctrl+K.
    pub fn kill_to_end(&mut self) {
        self.edit();
        self.buf.truncate(self.cursor);
    }

    /// Up: the previous sent line (the current text is kept as a draft).
    pub fn history_prev(&mut self) {
        self.edit();
        let next = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = std::mem::take(&mut self.buf);
                self.history.len() - 1
            }
            Some(0) => return,
            Some(i) => i - 1,
        };
        self.browsing = Some(next);
        let line = self.history[next].clone();
        self.set(&line);
    }

    /// Down: the next sent line, and past the newest the draft.
    pub fn history_next(&mut self) {
        self.edit();
        let Some(i) = self.browsing else { return };
        if i + 1 < self.history.len() {
            self.browsing = Some(i + 1);
            let line = self.history[i + 1].clone();
            self.set(&line);
        } else {
            self.browsing = None;
            let draft = std::mem::take(&mut self.draft);
            self.set(&draft);
        }
    }

    /// The word before the cursor, for choosing completion candidates.
    pub fn word(&self) -> Word<'_> {
        let before = &self.buf[..self.cursor];
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let position = before[..start].split_whitespace().count();
        let first = self.buf.split_whitespace().next().unwrap_or("");
        Word {
            prefix: &before[start..],
            position,
            first,
        }
    }

    /// Tab: starts completing the word before the cursor with `candidates` (full words, each
    /// with what should follow it, e.g. `"alice: "`), or moves to the next (`forward`) or previous
    /// candidate of the completion in progress. False if there is nothing to complete.
    pub fn complete(&mut self, candidates: impl FnOnce() -> Vec<String>, forward: bool) -> bool {
        if let Some(c) = &mut self.completion {
            let n = c.candidates.len();
            c.index = if forward {
                (c.index + 1) % n
            } else {
                (c.index + n - 1) % n
            };
            let (start, word) = (c.start, c.candidates[c.index].clone());
            self.buf.replace_range(start..self.cursor, &word);
            self.cursor = start + word.len();
            return true;
        }
        let candidates = candidates();
        if candidates.is_empty() {
            return false;
        }
        let before = &self.buf[..self.cursor];
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let index = if forward { 0 } else { candidates.len() - 1 };
        let word = candidates[index].clone();
        if self.buf.len() - (self.cursor - start) + word.len() > self.max_len {
            return false;
        }
        self.buf.replace_range(start..self.cursor, &word);
        self.cursor = start + word.len();
        if candidates.len() > 1 {
            self.completion = Some(Completion {
                start,
                candidates,
                index,
            });
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(s: &str) -> Input {
        let mut i = Input::new(1000);
        i.insert(s);
        i
    }

    #[test]
    fn cursor_moves_by_grapheme() {
        let mut i = typed("ae\u{301}🚀日");
        i.left();
        assert_eq!(&i.text()[i.cursor()..], "日");
        i.left();
        i.left();
        assert_eq!(&i.text()[i.cursor()..], "e\u{301}🚀日");
        i.backspace();
        assert_eq!(i.text(), "e\u{301}🚀日");
        i.delete();
        assert_eq!(i.text(), "🚀日");
        i.end();
        i.backspace();
        assert_eq!(i.text(), "🚀");
        i.home();
        i.insert_char('x');
        assert_eq!(i.text(), "x🚀");
    }

    #[test]
    fn word_editing() {
        let mut i = typed("hello big  world  ");
        i.delete_word_back();
        assert_eq!(i.text(), "hello big  ");
        i.delete_word_back();
        assert_eq!(i.text(), "hello ");
        i.insert("there friend");
        i.word_left();
        assert_eq!(&i.text()[i.cursor()..], "friend");
        i.word_left();
        i.delete_word_forward();
        assert_eq!(i.text(), "hello  friend");
        i.word_right();
        assert_eq!(i.cursor(), i.text().len());
        i.home();
        i.word_right();
        i.kill_to_end();
        assert_eq!(i.text(), "hello");
        i.left();
        i.kill_to_start();
        assert_eq!(i.text(), "o");
    }

    #[test]
    fn history_keeps_the_draft() {
        let mut i = Input::new(100);
        for l in ["one", "two", "two", "  "] {
            i.set(l);
            i.submit();
        }
        i.insert("draft");
        i.history_prev();
        assert_eq!(i.text(), "two");
        i.history_prev();
        assert_eq!(i.text(), "one");
        i.history_prev();
        assert_eq!(i.text(), "one");
        i.history_next();
        assert_eq!(i.text(), "two");
        i.history_next();
        assert_eq!(i.text(), "draft");
        i.history_next();
        assert_eq!(i.text(), "draft");
    }

    #[test]
    fn a_redacted_line_is_recalled_without_its_secret() {
        let mut i = Input::new(1000);
        for _ in 0..2 {
            i.set("/join team --key hunter2");
            assert_eq!(i.submit(), "/join team --key hunter2");
            i.redact_last("/join team --key ");
        }
        assert_eq!(i.history.len(), 1);
        i.history_prev();
        assert_eq!(i.text(), "/join team --key ");
        i.history_prev();
        assert_eq!(i.text(), "/join team --key ");
        assert!(i.history.iter().all(|l| !l.contains("hunter2")));
    }

    #[test]
    fn history_is_bounded() {
        let mut i = Input::new(100);
        for n in 0..HISTORY_CAP + 20 {
            i.set(&n.to_string());
            i.submit();
        }
        assert_eq!(i.history.len(), HISTORY_CAP);
        assert_eq!(i.history.front().map(String::as_str), Some("20"));
    }

    #[test]
    fn completion_cycles_and_stops_on_edit() {
        let mut i = typed("hi al");
        assert_eq!(
            i.word(),
            Word {
                prefix: "al",
                position: 1,
                first: "hi"
            }
        );
        let cands = || vec!["alice ".to_owned(), "alan ".to_owned()];
        assert!(i.complete(cands, true));
        assert_eq!(i.text(), "hi alice ");
        assert!(i.complete(Vec::new, true));
        assert_eq!(i.text(), "hi alan ");
        assert!(i.complete(Vec::new, true));
        assert_eq!(i.text(), "hi alice ");
        assert!(i.complete(Vec::new, false));
        assert_eq!(i.text(), "hi alan ");
        i.insert("x");
        assert!(!i.is_completing());
        assert!(!i.complete(Vec::new, true));
    }

    #[test]
    fn length_is_bounded() {
        let mut i = Input::new(5);
        assert!(i.insert("abc"));
        assert!(!i.insert("def"));
        assert_eq!(i.text(), "abc");
    }
}
