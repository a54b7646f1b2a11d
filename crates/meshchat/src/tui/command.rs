//! Slash commands and keys: the table the help overlay and Tab completion read, and the parser.

/// What a command's argument is, for completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    None,
    Room,
    Nick,
    Other,
}

#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub args: &'static str,
    pub help: &'static str,
    pub arg: Arg,
}

/// Every command, in the order `/help` lists them.
pub const COMMANDS: &[Spec] = &[
    Spec {
        name: "join",
        args: "ROOM",
        help: "join ROOM (or switch to it)",
        arg: Arg::Room,
    },
    Spec {
        name: "leave",
        args: "[ROOM]",
        help: "leave ROOM (default: this one)",
        arg: Arg::Room,
    },
    Spec {
        name: "rooms",
        args: "",
        help: "list joined rooms",
        arg: Arg::None,
    },
    Spec {
        name: "nick",
        args: "NAME",
        help: "change your nick",
        arg: Arg::None,
    },
    Spec {
        name: "peers",
        args: "",
        help: "connected peers, fingerprints, addresses",
        arg: Arg::None,
    },
    Spec {
        name: "connect",
        args: "ADDR",
        help: "dial a peer: /connect /ip4/192.0.2.7/tcp/7447",
        arg: Arg::Other,
    },
    Spec {
        name: "whois",
        args: "NICK",
        help: "who uses NICK: fingerprint, peer id, addresses",
        arg: Arg::Nick,
    },
    Spec {
        name: "msg",
        args: "WHO [TEXT]",
        help: "send a DM to a nick, fingerprint or peer id (no TEXT: open)",
        arg: Arg::Nick,
    },
    Spec {
        name: "routes",
        args: "",
        help: "the routing table: who is reachable, through whom, how far",
        arg: Arg::None,
    },
    Spec {
        name: "who",
        args: "",
        help: "everyone online in the network (the tracker's list)",
        arg: Arg::None,
    },
    Spec {
        name: "tracker",
        args: "",
        help: "the network's tracker, its epoch, your registration",
        arg: Arg::None,
    },
    Spec {
        name: "history",
        args: "[N]",
        help: "load N older messages of this room (default 500)",
        arg: Arg::Other,
    },
    Spec {
        name: "id",
        args: "",
        help: "your peer id, fingerprint, addresses",
        arg: Arg::None,
    },
    Spec {
        name: "help",
        args: "",
        help: "this help (F1)",
        arg: Arg::None,
    },
    Spec {
        name: "quit",
        args: "",
        help: "leave meshchat (Ctrl+C)",
        arg: Arg::None,
    },
];

/// Keys, as the help overlay lists them.
pub const KEYS: &[(&str, &str)] = &[
    ("Enter", "send; Alt+Enter: new line"),
    ("Alt+1..9, Ctrl+N/P", "switch room (or click it)"),
    ("PgUp/PgDn, wheel", "scroll; Shift+Up/Down: one line"),
    ("Ctrl+Home/End", "oldest / newest (Home/End if input empty)"),
    ("Up/Down", "input history"),
    ("Tab, Shift+Tab", "complete commands, rooms, nicks"),
    ("Ctrl+W, Alt+Bksp", "delete word; Alt+D: word ahead"),
    ("Ctrl+A/E, Ctrl+U/K", "line start/end; delete to start/end"),
    ("Ctrl+Left/Right", "move by word (Alt+B/F too)"),
    ("F1 / F2", "this help / show listen addresses"),
    ("Esc", "close a panel; Ctrl+L: redraw"),
    ("Shift+drag", "select text (the mouse scrolls otherwise)"),
    ("Ctrl+C", "quit"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    Join(&'a str),
    Leave(Option<&'a str>),
    Rooms,
    Nick(&'a str),
    Peers,
    Connect(&'a str),
    Whois(&'a str),
    /// `/msg WHO [TEXT]`: without a text, opens the conversation.
    Msg(&'a str, Option<&'a str>),
    Routes,
    Who,
    Tracker,
    History(Option<usize>),
    Id,
    Help,
    Quit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// Text to send (a leading `//` sends one `/`).
    Text(&'a str),
    Command(Command<'a>),
    Error(String),
}

pub fn parse(line: &str) -> Parsed<'_> {
    if line.starts_with("//") || !line.starts_with('/') {
        return Parsed::Text(line.strip_prefix('/').unwrap_or(line));
    }
    let rest = &line[1..];
    let (name, arg) = rest
        .split_once(char::is_whitespace)
        .map_or((rest, ""), |(c, a)| (c, a.trim()));
    let needs = |what: &str| Parsed::Error(format!("/{name} needs {what}; see /help"));
    let cmd = match name {
        "join" | "j" if arg.is_empty() => return needs("a room name"),
        "join" | "j" => Command::Join(arg),
        "leave" | "part" => Command::Leave(Some(arg).filter(|a| !a.is_empty())),
        "rooms" => Command::Rooms,
        "nick" if arg.is_empty() => return needs("a name"),
        "nick" => Command::Nick(arg),
        "peers" => Command::Peers,
        "connect" if arg.is_empty() => return needs("an address"),
        "connect" => Command::Connect(arg),
        "whois" if arg.is_empty() => return needs("a nick"),
        "whois" => Command::Whois(arg),
        "msg" | "m" | "query" if arg.is_empty() => {
            return needs("a nick, fingerprint or peer id (/msg WHO TEXT)")
        }
        "msg" | "m" | "query" => match arg.split_once(char::is_whitespace) {
            Some((who, text)) => Command::Msg(who, Some(text.trim_start())),
            None => Command::Msg(arg, None),
        },
        "routes" => Command::Routes,
        "who" => Command::Who,
        "tracker" => Command::Tracker,
        "history" if arg.is_empty() => Command::History(None),
        "history" => match arg.parse() {
            Ok(n) => Command::History(Some(n)),
            Err(_) => return Parsed::Error(format!("/history takes a number, not {arg:?}")),
        },
        "id" => Command::Id,
        "help" | "?" => Command::Help,
        "quit" | "exit" | "q" => Command::Quit,
        "" => return Parsed::Error("an empty command; /help lists them".into()),
        other => return Parsed::Error(format!("unknown command /{other}; /help lists them")),
    };
    Parsed::Command(cmd)
}

/// The spec of a typed command name, if it is one.
pub fn spec(name: &str) -> Option<&'static Spec> {
    let name = name.strip_prefix('/')?;
    COMMANDS.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_and_text() {
        assert_eq!(parse("hello"), Parsed::Text("hello"));
        assert_eq!(parse("//slash"), Parsed::Text("/slash"));
        assert_eq!(
            parse("/join  #Dev "),
            Parsed::Command(Command::Join("#Dev"))
        );
        assert_eq!(parse("/leave"), Parsed::Command(Command::Leave(None)));
        assert_eq!(
            parse("/history 50"),
            Parsed::Command(Command::History(Some(50)))
        );
        assert_eq!(parse("/quit"), Parsed::Command(Command::Quit));
        assert_eq!(
            parse("/msg bob  hi there\nsecond line"),
            Parsed::Command(Command::Msg("bob", Some("hi there\nsecond line")))
        );
        assert_eq!(
            parse("/query 1a2b3c4d"),
            Parsed::Command(Command::Msg("1a2b3c4d", None))
        );
        assert!(matches!(parse("/msg"), Parsed::Error(_)));
        assert!(matches!(parse("/join"), Parsed::Error(_)));
        assert!(matches!(parse("/history x"), Parsed::Error(_)));
        assert!(matches!(parse("/frobnicate"), Parsed::Error(e) if e.contains("/frobnicate")));
    }

    #[test]
    fn every_command_parses() {
        for s in COMMANDS {
            let line = if s.args.is_empty() {
                format!("/{}", s.name)
            } else {
                format!("/{} 5", s.name)
            };
            assert!(matches!(parse(&line), Parsed::Command(_)), "{line}");
        }
    }
}
