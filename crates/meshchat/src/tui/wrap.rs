//! Text measurement and wrapping in terminal cells: what is safe to show, how wide it is, and
//! where its rows break.
//!
//! Widths are counted per grapheme cluster exactly as ratatui's buffer counts them
//! ([`CellWidth`]), so a wrapped row never overflows its column: wide CJK and emoji take two
//! cells, combining marks ride on their base character, and zero-width clusters take none.

use std::ops::Range;

use meshchat_core::room::is_invisible;
use ratatui::buffer::CellWidth;
use unicode_segmentation::UnicodeSegmentation;

/// Replaces what must not reach the terminal: control characters (escape sequences could
/// repaint or retitle the user's terminal) and the bidirectional embeddings, overrides and
/// isolates that make text read differently from what it is. Tabs become spaces; newlines are
/// kept when `keep_newlines`. For message texts: the other invisible characters stay, since
/// emoji (zero-width joiners, variation selectors, tags) and some scripts need them; names go
/// through [`sanitize_name`].
pub fn sanitize(text: &str, keep_newlines: bool) -> String {
    let clean = |c: char| {
        !(c.is_control() || is_embedding_or_isolate(c)) || (keep_newlines && c == '\n') || c == '\t'
    };
    if text.chars().all(|c| clean(c) && c != '\t' && c != '\r') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\t' => out.push_str("    "),
            // A CR LF pair is one line break; a lone CR is one too.
            '\r' if keep_newlines => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\n' if keep_newlines => out.push('\n'),
            c if c.is_control() || is_embedding_or_isolate(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The bidirectional controls that reorder text over a stretch of it: embeddings, overrides and
/// isolates (U+202A–U+202E, U+2066–U+2069). The marks among
/// [`meshchat_core::room::is_bidi_control`] (U+200E, U+200F, U+061C) act on one position and
/// right-to-left texts use them, so message texts keep them.
fn is_embedding_or_isolate(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A nick (or room name) made safe and honest to show on one line: every character that draws
/// nothing or changes how the text around it is drawn ([`is_invisible`]: controls, line breaks,
/// zero-width and other format characters, bidirectional controls, invisible fillers) is shown as
/// U+FFFD, so that a name never looks like another one while being a different string.
pub fn sanitize_name(name: &str) -> String {
    if !name.chars().any(is_invisible) {
        return name.to_owned();
    }
    name.chars()
        .map(|c| if is_invisible(c) { '\u{FFFD}' } else { c })
        .collect()
}

/// Width of one grapheme cluster in cells, as the buffer will draw it.
pub fn grapheme_width(g: &str) -> usize {
    if g.contains(char::is_control) {
        0
    } else {
        g.cell_width() as usize
    }
}

/// Width of a string in cells.
pub fn width(s: &str) -> usize {
    if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_control()) {
        return s.len();
    }
    s.graphemes(true).map(grapheme_width).sum()
}

/// The longest prefix of `s` that fits in `max` cells, and its width.
pub fn truncate(s: &str, max: usize) -> (&str, usize) {
    let mut w = 0;
    for (i, g) in s.grapheme_indices(true) {
        let gw = grapheme_width(g);
        if w + gw > max {
            return (&s[..i], w);
        }
        w += gw;
    }
    (s, w)
}

/// `s` cut to `max` cells with a trailing `…` when it did not fit.
pub fn ellipsize(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let (head, _) = truncate(s, max - 1);
    format!("{head}…")
}

/// Splits `text` into rows of at most `cols` cells: at newlines, after spaces when a word would
/// overflow, and inside a word only when the word alone is wider than a row. Returns byte ranges
/// of `text` (a row keeps the space it broke after; newlines belong to no row). A cluster wider
/// than `cols` gets a row of its own. Empty text is one empty row.
pub fn wrap(text: &str, cols: usize) -> Vec<Range<usize>> {
    let mut rows = Vec::new();
    for_each_row(text, cols, |r| rows.push(r));
    rows
}

/// How many rows [`wrap`] would make, without allocating.
pub fn row_count(text: &str, cols: usize) -> usize {
    let mut n = 0;
    for_each_row(text, cols, |_| n += 1);
    n
}

fn for_each_row(text: &str, cols: usize, mut emit: impl FnMut(Range<usize>)) {
    let cols = cols.max(1);
    // Fast path: short ASCII without breaks.
    if text.len() <= cols && text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        emit(0..text.len());
        return;
    }
    let mut start = 0;
    let mut used = 0;
    // Just after the last space on this row, and the row's width up to there.
    let mut last_break: Option<(usize, usize)> = None;
    for (i, g) in text.grapheme_indices(true) {
        if g == "\n" || g == "\r\n" {
            emit(start..i);
            start = i + g.len();
            used = 0;
            last_break = None;
            continue;
        }
        let w = grapheme_width(g);
        if g == " " {
            if used + w > cols {
                // The space that overflows is the break itself.
                emit(start..i);
                start = i + 1;
                used = 0;
                last_break = None;
            } else {
                used += w;
                last_break = Some((i + 1, used));
            }
            continue;
        }
        if used + w > cols && used > 0 {
            match last_break.take() {
                Some((at, at_used)) if at > start => {
                    emit(start..at);
                    start = at;
                    used -= at_used;
                    if used + w > cols && used > 0 {
                        emit(start..i);
                        start = i;
                        used = 0;
                    }
                }
                _ => {
                    emit(start..i);
                    start = i;
                    used = 0;
                }
            }
        }
        used += w;
    }
    emit(start..text.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str, cols: usize) -> Vec<&str> {
        wrap(text, cols).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn wraps_at_spaces_and_inside_long_words() {
        assert_eq!(rows("hello world", 20), ["hello world"]);
        assert_eq!(rows("hello world", 5), ["hello", "world"]);
        assert_eq!(rows("hello world", 8), ["hello ", "world"]);
        assert_eq!(rows("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(rows("a abcdefghij", 4), ["a ", "abcd", "efgh", "ij"]);
        assert_eq!(rows("", 4), [""]);
        assert_eq!(rows("one\ntwo", 10), ["one", "two"]);
        assert_eq!(rows("one\n\ntwo", 10), ["one", "", "two"]);
        assert_eq!(row_count("one\n\ntwo", 10), 3);
        assert_eq!(row_count("abcdefghij", 4), 3);
    }

    #[test]
    fn wide_and_combining_characters() {
        // Each CJK character is two cells: three fit in a row of 7.
        assert_eq!(rows("日本語のテキスト", 7), ["日本語", "のテキ", "スト"]);
        // e + combining acute is one cell.
        let combined = "e\u{301}e\u{301}e\u{301}";
        assert_eq!(width(combined), 3);
        assert_eq!(rows(combined, 2), ["e\u{301}e\u{301}", "e\u{301}"]);
        // Emoji are two cells; a ZWJ family is one cluster of two cells.
        assert_eq!(width("🚀"), 2);
        assert_eq!(width("👨‍👩‍👧"), 2);
        assert_eq!(rows("🚀🚀🚀", 4), ["🚀🚀", "🚀"]);
        // A cluster wider than the row gets a row of its own.
        assert_eq!(rows("a🚀b", 1), ["a", "🚀", "b"]);
        for r in wrap("混合 text 与 emoji 🎉 and more 文字", 6) {
            let s = &"混合 text 与 emoji 🎉 and more 文字"[r];
            assert!(width(s) <= 6, "{s:?}");
        }
    }

    #[test]
    fn sanitizes_terminal_controls() {
        assert_eq!(sanitize("plain", true), "plain");
        assert_eq!(sanitize("a\x1b[2Jb", true), "a\u{FFFD}[2Jb");
        assert_eq!(sanitize("a\r\nb\rc", true), "a\nb\nc");
        assert_eq!(sanitize("a\nb", false), "a\u{FFFD}b");
        assert_eq!(sanitize("x\u{202E}y", true), "x\u{FFFD}y");
        assert_eq!(sanitize("a\tb", true), "a    b");
    }

    #[test]
    fn names_show_every_invisible_character() {
        assert_eq!(sanitize_name("alice"), "alice");
        assert_eq!(sanitize_name("Zoë 🚀"), "Zoë 🚀");
        for (raw, shown) in [
            ("al\u{200B}ice", "al\u{FFFD}ice"),
            ("al\u{200D}ice", "al\u{FFFD}ice"),
            ("\u{FEFF}alice", "\u{FFFD}alice"),
            ("alice\u{2060}", "alice\u{FFFD}"),
            ("ali\u{202E}ecila", "ali\u{FFFD}ecila"),
            ("a\u{200F}b\u{061C}c", "a\u{FFFD}b\u{FFFD}c"),
            ("a\u{3164}b", "a\u{FFFD}b"),
            ("a\u{E0041}", "a\u{FFFD}"),
            ("a\nb\tc\x1b", "a\u{FFFD}b\u{FFFD}c\u{FFFD}"),
        ] {
            assert_eq!(sanitize_name(raw), shown, "{raw:?}");
        }
        // Message texts keep what emoji and scripts need.
        for text in ["👩\u{200D}💻", "می\u{200C}خواهم", "❤\u{FE0F}", "a\u{200F}b"] {
            assert_eq!(sanitize(text, true), text);
        }
        assert_eq!(width(&sanitize("👨\u{200D}👩\u{200D}👧", true)), 2);
    }

    proptest::proptest! {
        #[test]
        fn names_never_hold_invisible_characters(
            s in "\\PC{0,24}|.{0,24}|[\\x00-\\x20\\u{7f}-\\u{a0}\\u{200b}-\\u{206f}\\u{fe00}-\\u{feff}a]{0,24}"
        ) {
            let shown = sanitize_name(&s);
            proptest::prop_assert!(!shown.chars().any(is_invisible), "{:?} -> {:?}", s, shown);
            proptest::prop_assert_eq!(shown.chars().count(), s.chars().count());
        }
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate("日本語", 5), ("日本", 4));
        assert_eq!(ellipsize("abcdef", 4), "abc…");
        assert_eq!(ellipsize("abc", 4), "abc");
    }
}
