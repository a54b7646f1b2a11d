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
    #[error("message text is empty")]
    EmptyText,
    #[error("message text is too long ({0} bytes)")]
    TextTooLong(usize),
    #[error("message body is malformed: {0}")]
    Malformed(&'static str),
}

/// Normalizes what a person typed (`#Lobby`, ` lobby `) to a room name (`lobby`), or says why not.
pub fn normalize_room(input: &str) -> Result<String, Error> {
    let name = input.trim().trim_start_matches('#').to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= MAX_ROOM_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if valid {
        Ok(name)
    } else {
        Err(Error::BadRoomName)
    }
}

/// Checks a nick: 1..=32 bytes, no control characters, not only white space.
pub fn validate_nick(nick: &str) -> Result<(), Error> {
    if nick.trim().is_empty() || nick.len() > MAX_NICK_LEN || nick.chars().any(|c| c.is_control()) {
        return Err(Error::BadNick);
    }
    Ok(())
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
        validate_nick(nick)?;
        if text.is_empty() {
            return Err(Error::EmptyText);
        }
        Ok(Self {
            nick: nick.to_owned(),
            text: text.to_owned(),
        })
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

        #[test]
        fn text_decode_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Text::decode(&body);
        }
    }
}
