//! Rooms: names, and the body of a room text message.
//!
//! Room text body layout: `nick_len u8 | nick [nick_len] | text [rest]`, both UTF-8. The nick is
//! inside the signed envelope, so nobody can relabel someone else's message.

use crate::envelope::MAX_BODY_LEN;

/// The room every node is in unless told otherwise.
pub const DEFAULT_ROOM: &str = "lobby";
/// Longest room name, in bytes.
pub const MAX_ROOM_LEN: usize = 32;
/// Longest nick, in bytes.
pub const MAX_NICK_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("room name must be 1 to {MAX_ROOM_LEN} characters of a-z, 0-9, '-', '_' or '.'")]
    BadRoomName,
    #[error("nick must be 1 to {MAX_NICK_LEN} bytes without control characters")]
    BadNick,
    /// A nick with a character that is invisible or reorders text (a zero-width space, a
    /// right-to-left override, …): it would let one nick pass for another.
    #[error("nick must not contain invisible or text-direction characters (found U+{0:04X})")]
    InvisibleInNick(u32),
    #[error("message text is empty")]
    EmptyText,
    #[error("message text is too long ({0} bytes)")]
    TextTooLong(usize),
    #[error("message body is malformed: {0}")]
    Malformed(&'static str),
}

/// Whether `name` is a room name exactly as senders write it (1..=32 bytes of `a-z 0-9 - _ .`):
/// what receivers require of a room message's target.
pub fn is_room_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROOM_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

/// Normalizes what a person typed (`#Lobby`, ` lobby `) to a room name (`lobby`), or says why not.
pub fn normalize_room(input: &str) -> Result<String, Error> {
    let name = input.trim().trim_start_matches('#').to_ascii_lowercase();
    if is_room_name(&name) {
        Ok(name)
    } else {
        Err(Error::BadRoomName)
    }
}

/// Checks a nick this node is about to use (`--nick`, `/nick`, [`Text::encode`]): what
/// [`Text::decode`] accepts, and no [invisible](is_invisible) character, so that a nick cannot
/// look like another one while being a different string.
pub fn validate_nick(nick: &str) -> Result<(), Error> {
    check_nick_received(nick)?;
    match nick.chars().find(|&c| is_invisible(c)) {
        Some(c) => Err(Error::InvisibleInNick(c.into())),
        None => Ok(()),
    }
}

/// What a received nick must be: 1..=32 bytes, no control characters, not only white space.
/// Kept lenient on purpose: older nodes may send invisible characters, and refusing them here
/// would make their messages malformed; the interfaces show such characters instead.
pub(crate) fn check_nick_received(nick: &str) -> Result<(), Error> {
    if nick.trim().is_empty() || nick.len() > MAX_NICK_LEN || nick.chars().any(|c| c.is_control()) {
        return Err(Error::BadNick);
    }
    Ok(())
}

/// Characters that draw nothing or change how the text around them is drawn: control
/// characters, format characters (general category Cf, which holds the zero-width and
/// bidirectional controls), line and paragraph separators, and the invisible Hangul fillers and
/// combining grapheme joiner. Refused in nicks; shown escaped where text reaches a terminal.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || is_format(c)
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{3164}'
                | '\u{FFA0}'
        )
}

/// General category Cf (format characters), as of Unicode 16.0.
pub fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{AD}'
            | '\u{600}'..='\u{605}'
            | '\u{61C}'
            | '\u{6DD}'
            | '\u{70F}'
            | '\u{890}'..='\u{891}'
            | '\u{8E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// The bidirectional controls: marks (U+200E, U+200F, U+061C), embeddings and overrides
/// (U+202A–U+202E) and isolates (U+2066–U+2069). They make text read differently from what it is.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Longest text that fits in a body with the longest nick.
pub const MAX_TEXT_LEN: usize = MAX_BODY_LEN - 1 - MAX_NICK_LEN;

/// The body of a [`crate::envelope::Kind::RoomText`] envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub nick: String,
    pub text: String,
}

impl Text {
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        validate_nick(&self.nick)?;
        if self.text.is_empty() {
            return Err(Error::EmptyText);
        }
        if self.text.len() > MAX_TEXT_LEN {
            return Err(Error::TextTooLong(self.text.len()));
        }
        let mut out = Vec::with_capacity(1 + self.nick.len() + self.text.len());
        out.push(self.nick.len() as u8);
        out.extend_from_slice(self.nick.as_bytes());
        out.extend_from_slice(self.text.as_bytes());
        Ok(out)
    }

    pub fn decode(body: &[u8]) -> Result<Self, Error> {
        let (&nick_len, rest) = body.split_first().ok_or(Error::Malformed("empty body"))?;
        let nick_len = nick_len as usize;
        if rest.len() < nick_len {
            return Err(Error::Malformed("nick truncated"));
        }
        let (nick, text) = rest.split_at(nick_len);
        let nick = std::str::from_utf8(nick).map_err(|_| Error::Malformed("nick not UTF-8"))?;
        let text = std::str::from_utf8(text).map_err(|_| Error::Malformed("text not UTF-8"))?;
        check_nick_received(nick)?;
        if text.is_empty() {
            return Err(Error::EmptyText);
        }
        Ok(Self {
            nick: nick.to_owned(),
            text: text.to_owned(),
        })
    }
}

/// A byte count as people read it: `512 B`, `2.2 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn room_names() {
        assert_eq!(normalize_room(" #Lobby ").unwrap(), "lobby");
        assert_eq!(normalize_room("dev-ops_2.x").unwrap(), "dev-ops_2.x");
        for bad in ["", "#", "a b", "ünï", &"x".repeat(33), "a/b"] {
            assert_eq!(normalize_room(bad), Err(Error::BadRoomName), "{bad:?}");
        }
    }

    #[test]
    fn nicks() {
        validate_nick("alice").unwrap();
        validate_nick("Zoë 🚀").unwrap();
        for bad in ["", "   ", "a\nb", "\u{7}", &"n".repeat(33)] {
            assert_eq!(validate_nick(bad), Err(Error::BadNick), "{bad:?}");
        }
    }

    /// Invisible and text-direction characters: refused when this node sends, accepted (as
    /// before) when another node sent them, so their messages are not malformed.
    #[test]
    fn invisible_nicks_are_refused_at_the_sender_only() {
        for (nick, c) in [
            ("ali\u{202E}ce", 0x202E),
            ("al\u{200B}ice", 0x200B),
            ("al\u{200C}ice", 0x200C),
            ("al\u{200D}ice", 0x200D),
            ("\u{2060}alice", 0x2060),
            ("alice\u{FEFF}", 0xFEFF),
            ("a\u{2066}b\u{2069}", 0x2066),
            ("a\u{200F}b", 0x200F),
            ("a\u{061C}b", 0x061C),
            ("a\u{AD}b", 0xAD),
            ("a\u{E0041}b", 0xE0041),
            ("a\u{3164}b", 0x3164),
            ("a\u{2028}b", 0x2028),
        ] {
            assert_eq!(
                validate_nick(nick),
                Err(Error::InvisibleInNick(c)),
                "{nick:?}"
            );
            let t = Text {
                nick: nick.into(),
                text: "hi".into(),
            };
            assert_eq!(t.encode(), Err(Error::InvisibleInNick(c)), "{nick:?}");
            let mut body = vec![nick.len() as u8];
            body.extend_from_slice(nick.as_bytes());
            body.extend_from_slice(b"hi");
            assert_eq!(
                Text::decode(&body).unwrap(),
                t,
                "{nick:?} is still received"
            );
        }
        // Control characters stay refused on both sides.
        assert_eq!(Text::decode(b"\x03a\x1bbhi"), Err(Error::BadNick));
        assert!(Error::InvisibleInNick(0x202E)
            .to_string()
            .contains("U+202E"));
    }

    #[test]
    fn character_classes() {
        for c in [
            '\u{0}',
            '\u{1b}',
            '\u{7f}',
            '\u{85}',
            '\u{9f}',
            '\u{200B}',
            '\u{E007F}',
        ] {
            assert!(is_invisible(c), "{c:?}");
        }
        for c in ['a', ' ', 'é', '🚀', '\u{A0}', '\u{FE0F}', '\u{301}'] {
            assert!(!is_invisible(c), "{c:?}");
        }
        for c in [
            '\u{200E}', '\u{200F}', '\u{61C}', '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}',
        ] {
            assert!(is_bidi_control(c) && is_format(c), "{c:?}");
        }
        assert!(!is_bidi_control('\u{200B}') && !is_bidi_control('a'));
    }

    #[test]
    fn text_golden_bytes() {
        let t = Text {
            nick: "al".into(),
            text: "hi".into(),
        };
        assert_eq!(t.encode().unwrap(), b"\x02alhi");
        assert_eq!(Text::decode(b"\x02alhi").unwrap(), t);
        assert!(Text::decode(b"").is_err());
        assert!(Text::decode(b"\x05al").is_err());
        assert!(Text::decode(b"\x02al").is_err());
        assert!(Text::decode(b"\x02a\xffhi").is_err());
    }

    proptest! {
        #[test]
        fn text_round_trip(nick in "[a-zA-Z0-9 ]{1,32}", text in "\\PC{1,200}") {
            prop_assume!(!nick.trim().is_empty());
            let t = Text { nick, text };
            prop_assert_eq!(Text::decode(&t.encode().unwrap()).unwrap(), t);
        }

        /// Whatever the sender accepts, the receiver accepts.
        #[test]
        fn sender_rule_is_stricter_than_receiver_rule(nick in "\\PC{0,12}|.{0,12}") {
            if validate_nick(&nick).is_ok() {
                prop_assert!(check_nick_received(&nick).is_ok());
                prop_assert!(!nick.chars().any(is_invisible));
            }
        }

        #[test]
        fn text_decode_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Text::decode(&body);
        }
    }
}
