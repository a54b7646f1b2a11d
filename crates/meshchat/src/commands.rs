//! The slash commands of the full-screen and line interfaces, written once.
//!
//! [`COMMANDS`] is the only list: each row has the name, its aliases, the argument syntax, the
//! help line, how its argument is read and completed, and the interface it is limited to, if
//! any. [`parse`] turns a typed line into a [`Command`] (or text to send, or an [`Error`] that
//! names the usage); `/help` in both interfaces, line mode's help and Tab completion read the
//! table, and a test checks the README's list against it. A new command is one row here, one
//! variant of [`Command`], and one arm in each interface's `match` (the compiler asks for both).

use std::borrow::Cow;
use std::fmt;

/// The interfaces that read slash commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// The full-screen terminal interface.
    Tui,
    /// Line mode (`--plain`, or stdin not a terminal).
    Line,
}

impl Interface {
    fn describe(self) -> &'static str {
        match self {
            Interface::Tui => "the full-screen interface",
            Interface::Line => "line mode",
        }
    }
}

/// What a command's argument is, for Tab completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Complete {
    /// No argument: completing the name adds no space after it.
    None,
    Room,
    Nick,
    /// An argument nothing is offered for (an address, a number).
    Other,
}

/// How the words after a command's name are read, each shape with the constructor of its
/// [`Command`]. Words are separated by white space; the rest of a line keeps its inner white
/// space (a nick or a message may hold spaces and newlines).
#[derive(Clone, Copy)]
pub enum Args {
    /// Nothing may follow the name.
    None(Command<'static>),
    /// Exactly one word (a room name or an address holds no space).
    Word(fn(&str) -> Command<'_>),
    /// At most one word; the constructor may refuse it (saying what it must be).
    MaybeWord(fn(Option<&str>) -> Result<Command<'_>, &'static str>),
    /// The rest of the line, not empty.
    Rest(fn(&str) -> Command<'_>),
    /// The rest of the line, if any.
    MaybeRest(fn(Option<&str>) -> Command<'_>),
    /// One word, then the rest of the line if any.
    WordAndMaybeRest(for<'a> fn(&'a str, Option<&'a str>) -> Command<'a>),
    /// One word, then optionally `--key` and the rest of the line (a passphrase, which no
    /// error message repeats).
    WordAndKey(for<'a> fn(&'a str, Option<Key<'a>>) -> Command<'a>),
}

impl fmt::Debug for Args {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = match self {
            Args::None(_) => "None",
            Args::Word(_) => "Word",
            Args::MaybeWord(_) => "MaybeWord",
            Args::Rest(_) => "Rest",
            Args::MaybeRest(_) => "MaybeRest",
            Args::WordAndMaybeRest(_) => "WordAndMaybeRest",
            Args::WordAndKey(_) => "WordAndKey",
        };
        f.write_str(shape)
    }
}

/// One slash command.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    /// Other names for it, listed once under the commands in `/help`.
    pub aliases: &'static [&'static str],
    /// The argument syntax after the name, as `/help` and errors show it (`""` for none).
    pub usage: &'static str,
    pub help: &'static str,
    pub args: Args,
    pub complete: Complete,
    /// The full-screen interface's key that does the same, shown there after the help.
    pub key: Option<&'static str>,
    /// The one interface this command is in; `None`: both.
    pub only: Option<Interface>,
}

impl Spec {
    /// `/name USAGE`, as the help and the README show it.
    pub fn usage_line(&self) -> String {
        if self.usage.is_empty() {
            format!("/{}", self.name)
        } else {
            format!("/{} {}", self.name, self.usage)
        }
    }

    /// The help line as `interface` shows it (the full-screen one adds the key).
    pub fn help_in(&self, interface: Interface) -> Cow<'static, str> {
        match (interface, self.key) {
            (Interface::Tui, Some(key)) => Cow::Owned(format!("{} ({key})", self.help)),
            _ => Cow::Borrowed(self.help),
        }
    }

    pub fn is_in(&self, interface: Interface) -> bool {
        self.only.is_none_or(|only| only == interface)
    }

    /// Whether completing the name should add a space for an argument.
    pub fn takes_args(&self) -> bool {
        !matches!(self.args, Args::None(_))
    }
}

/// A private room's passphrase as typed (`/join ROOM --key PASSPHRASE`): its `Debug` does not
/// show it, so a command logged or printed in a test failure does not give it away.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key<'a>(pub &'a str);

impl fmt::Debug for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(…)")
    }
}

/// What `--key` introduces after `/join ROOM`.
pub const KEY_FLAG: &str = "--key";

/// What a slash line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `/join ROOM [--key PASSPHRASE]`: with a key, the private room of that name and
    /// passphrase.
    Join(&'a str, Option<Key<'a>>),
    /// `/create ROOM`: a new invite-only private room, with us as its admin.
    Create(&'a str),
    /// `/invite WHO`: add someone to the private room shown (or current, in line mode).
    Invite(&'a str),
    /// `/remove WHO`: remove a member from the private room shown (or current).
    Remove(&'a str),
    /// `/members`: the members of the private room shown (or current).
    Members,
    Leave(Option<&'a str>),
    Rooms,
    Nick(&'a str),
    Peers,
    Connect(&'a str),
    Whois(&'a str),
    /// `/msg WHO [TEXT]`: without a text, opens (or in line mode shows) the conversation.
    Msg(&'a str, Option<&'a str>),
    /// `/dms [WHO]`: the conversations, or the one with WHO.
    Dms(Option<&'a str>),
    Routes,
    Who,
    Tracker,
    History(Option<usize>),
    /// `/file PATH`: offer a file to this room or conversation.
    File(&'a str),
    /// `/accept [N]`: fetch offer N (default: the newest offer not fetched).
    Accept(Option<usize>),
    /// `/files`: offers and transfers.
    Files,
    /// `/cancel N`: stop transfer N (the word as typed: each interface reads the number).
    Cancel(&'a str),
    Id,
    Help,
    Quit,
}

/// Every command, in the order `/help` lists them.
// The closures are not redundant: a variant's constructor is not general enough over lifetimes
// for the `fn` pointers of [`Args`] (clippy suggests it for `Dms` alone, and it does not compile).
#[allow(clippy::redundant_closure)]
pub const COMMANDS: &[Spec] = &[
    Spec {
        name: "join",
        aliases: &["j"],
        usage: "ROOM [--key PASSPHRASE]",
        help: "join ROOM (or switch to it); with --key, a private room",
        args: Args::WordAndKey(|room, key| Command::Join(room, key)),
        complete: Complete::Room,
        key: None,
        only: None,
    },
    Spec {
        name: "create",
        aliases: &[],
        usage: "ROOM",
        help: "create an invite-only private room (you are its admin)",
        args: Args::Word(|room| Command::Create(room)),
        complete: Complete::Other,
        key: None,
        only: None,
    },
    Spec {
        name: "invite",
        aliases: &[],
        usage: "WHO",
        help: "add WHO to this private room (the invite travels by DM)",
        args: Args::Rest(|who| Command::Invite(who)),
        complete: Complete::Nick,
        key: None,
        only: None,
    },
    Spec {
        name: "remove",
        aliases: &[],
        usage: "WHO",
        help: "remove WHO from this private room (the others get a new key)",
        args: Args::Rest(|who| Command::Remove(who)),
        complete: Complete::Nick,
        key: None,
        only: None,
    },
    Spec {
        name: "members",
        aliases: &[],
        usage: "",
        help: "the members of this private room (★: admin)",
        args: Args::None(Command::Members),
        complete: Complete::None,
        key: None,
        only: None,
    },
    Spec {
        name: "leave",
        aliases: &["part"],
        usage: "[ROOM]",
        help: "leave ROOM (default: this one)",
        args: Args::MaybeWord(|room| Ok(Command::Leave(room))),
        complete: Complete::Room,
        key: None,
        only: None,
    },
    Spec {
        name: "rooms",
        aliases: &[],
        usage: "",
        help: "list joined rooms",
        args: Args::None(Command::Rooms),
        complete: Complete::None,
        key: None,
        only: None,
    },
    Spec {
        name: "nick",
        aliases: &[],
        usage: "NAME",
        help: "change your nick",
        args: Args::Rest(|nick| Command::Nick(nick)),
        complete: Complete::Other,
        key: None,
        only: None,
    },
    Spec {
        name: "peers",
        aliases: &[],
        usage: "",
        help: "connected peers, fingerprints, addresses",
        args: Args::None(Command::Peers),
        complete: Complete::None,
        key: None,
        only: None,
    },
    Spec {
        name: "connect",
        aliases: &[],
        usage: "ADDR",
        help: "dial a peer: /connect /ip4/192.0.2.7/tcp/7447",
        args: Args::Word(|addr| Command::Connect(addr)),
        complete: Complete::Other,
        key: None,
        only: None,
    },
    Spec {
        name: "whois",
        aliases: &[],
        usage: "NICK",
        help: "who uses NICK: fingerprint, peer id, addresses",
        args: Args::Rest(|who| Command::Whois(who)),
        complete: Complete::Nick,
        key: None,
        only: None,
    },
    Spec {
        name: "msg",
        aliases: &["m", "query"],
        usage: "WHO [TEXT]",
        help: "send a DM to a nick, fingerprint or peer id (no TEXT: open)",
        args: Args::WordAndMaybeRest(|who, text| Command::Msg(who, text)),
        complete: Complete::Nick,
        key: None,
        only: None,
    },
    Spec {
        name: "dms",
        aliases: &[],
        usage: "[WHO]",
        help: "your direct conversations, or the one with WHO",
        args: Args::MaybeRest(|who| Command::Dms(who)),
        complete: Complete::Nick,
        key: None,
        only: None,
    },
    Spec {
        name: "routes",
        aliases: &[],
        usage: "",
        help: "the routing table: who is reachable, through whom, how far",
        args: Args::None(Command::Routes),
        complete: Complete::None,
        key: None,
        only: None,
    },
    Spec {
        name: "who",
        aliases: &[],
        usage: "",
        help: "everyone online in the network (the tracker's list)",
        args: Args::None(Command::Who),
        complete: Complete::None,
        key: None,
        only: None,
    },
    Spec {
        name: "tracker",
        aliases: &[],
        usage: "",
        help: "the network's tracker, its epoch, your registration",
        args: Args::None(Command::Tracker),
        complete: Complete::None,
        key: None,
        only: None,
    },
    Spec {
        name: "history",
        aliases: &[],
        usage: "[N]",
        help: "show N older messages of this room (default: a page)",
        args: Args::MaybeWord(|n| match n.map(str::parse).transpose() {
            Ok(n) => Ok(Command::History(n)),
            Err(_) => Err("N is a number"),
        }),
        complete: Complete::Other,
        key: None,
        only: None,
    },
    Spec {
        name: "file",
        aliases: &[],
        usage: "PATH",
        help: "offer a file to this room or conversation",
        args: Args::Rest(|path| Command::File(path)),
        complete: Complete::Other,
        key: None,
        only: None,
    },
    Spec {
        name: "accept",
        aliases: &[],
        usage: "[N]",
        help: "fetch offered file N (default: the newest offer)",
        args: Args::MaybeWord(|n| match n.map(str::parse).transpose() {
            Ok(n) => Ok(Command::Accept(n)),
            Err(_) => Err("N is the number /files shows"),
        }),
        complete: Complete::Other,
        key: None,
        only: None,
    },
    Spec {
        name: "files",
        aliases: &[],
        usage: "",
        help: "file offers and transfers, numbered",
        args: Args::None(Command::Files),
        complete: Complete::None,
        key: None,
        only: None,
    },
    Spec {
        name: "cancel",
        aliases: &[],
        usage: "N",
        help: "stop fetching (or offering) file N",
        args: Args::Word(|n| Command::Cancel(n)),
        complete: Complete::Other,
        key: None,
        only: None,
    },
    Spec {
        name: "id",
        aliases: &[],
        usage: "",
        help: "your peer id, fingerprint, addresses",
        args: Args::None(Command::Id),
        complete: Complete::None,
        key: None,
        only: None,
    },
    Spec {
        name: "help",
        aliases: &["?"],
        usage: "",
        help: "this help",
        args: Args::None(Command::Help),
        complete: Complete::None,
        key: Some("F1"),
        only: None,
    },
    Spec {
        name: "quit",
        aliases: &["exit", "q"],
        usage: "",
        help: "leave meshchat",
        args: Args::None(Command::Quit),
        complete: Complete::None,
        key: Some("Ctrl+C"),
        only: None,
    },
];

/// A typed line, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// Text to send (a leading `//` sends one `/`).
    Text(&'a str),
    Command(Command<'a>),
    Error(Error),
}

/// Why a slash line is not a command; each names the usage where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A lone `/`.
    Empty,
    Unknown(String),
    /// The command exists, in the other interface only.
    NotHere {
        name: &'static str,
        only: Interface,
    },
    /// The argument the usage requires is missing.
    Missing {
        usage: String,
    },
    /// Words after the last argument the usage has.
    Extra {
        usage: String,
        extra: String,
    },
    /// The argument is not what the usage takes (`why` says what it must be).
    Invalid {
        usage: String,
        arg: String,
        why: &'static str,
    },
    /// Something other than `--key PASSPHRASE` after `/join ROOM` (not repeated: it may be a
    /// passphrase typed without its flag).
    KeyExpected {
        usage: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Empty => write!(f, "an empty command; /help lists them"),
            Error::Unknown(name) => write!(f, "unknown command /{name}; /help lists them"),
            Error::NotHere { name, only } => {
                write!(f, "/{name} is only in {}", only.describe())
            }
            Error::Missing { usage } => write!(f, "missing argument; usage: {usage}"),
            Error::Extra { usage, extra } => {
                write!(f, "too many arguments ({extra:?}); usage: {usage}")
            }
            Error::Invalid { usage, arg, why } => {
                write!(f, "{arg:?}: {why}; usage: {usage}")
            }
            Error::KeyExpected { usage } => {
                write!(
                    f,
                    "only {KEY_FLAG} PASSPHRASE may follow the room; usage: {usage}"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// The command `name` (without its `/`) names, by its name or an alias.
pub fn lookup(name: &str) -> Option<&'static Spec> {
    COMMANDS
        .iter()
        .find(|s| s.name == name || s.aliases.contains(&name))
}

/// The commands `interface` has, in the order `/help` lists them.
pub fn available(interface: Interface) -> impl Iterator<Item = &'static Spec> {
    COMMANDS.iter().filter(move |s| s.is_in(interface))
}

/// The aliases `interface` has, as one help line: `/j = /join, /part = /leave, …`.
pub fn aliases_line(interface: Interface) -> String {
    available(interface)
        .filter(|s| !s.aliases.is_empty())
        .map(|s| {
            let aliases: Vec<String> = s.aliases.iter().map(|a| format!("/{a}")).collect();
            format!("{} = /{}", aliases.join(" "), s.name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads a line typed in `interface`: text to send, a command, or why it is neither.
pub fn parse(line: &str, interface: Interface) -> Parsed<'_> {
    if line.starts_with("//") || !line.starts_with('/') {
        return Parsed::Text(line.strip_prefix('/').unwrap_or(line));
    }
    let rest = &line[1..];
    let (name, arg) = rest
        .split_once(char::is_whitespace)
        .map_or((rest, ""), |(c, a)| (c, a.trim()));
    if name.is_empty() {
        return Parsed::Error(Error::Empty);
    }
    let Some(spec) = lookup(name) else {
        return Parsed::Error(Error::Unknown(name.to_owned()));
    };
    if let Some(only) = spec.only.filter(|&only| only != interface) {
        return Parsed::Error(Error::NotHere {
            name: spec.name,
            only,
        });
    }
    match read_args(spec, arg) {
        Ok(cmd) => Parsed::Command(cmd),
        Err(e) => Parsed::Error(e),
    }
}

/// Splits `arg` (trimmed, possibly empty) the way `spec` takes it.
fn read_args<'a>(spec: &Spec, arg: &'a str) -> Result<Command<'a>, Error> {
    let missing = || Error::Missing {
        usage: spec.usage_line(),
    };
    let extra = |extra: &str| Error::Extra {
        usage: spec.usage_line(),
        extra: extra.to_owned(),
    };
    let given = Some(arg).filter(|a| !a.is_empty());
    let one_word = |arg: Option<&'a str>| match arg.and_then(|a| a.split_once(char::is_whitespace))
    {
        Some((_, more)) => Err(extra(more.trim_start())),
        None => Ok(arg),
    };
    match spec.args {
        Args::None(cmd) => match given {
            Some(a) => Err(extra(a)),
            None => Ok(cmd),
        },
        Args::Word(make) => one_word(given)?.map(make).ok_or_else(missing),
        Args::MaybeWord(make) => {
            let word = one_word(given)?;
            make(word).map_err(|why| Error::Invalid {
                usage: spec.usage_line(),
                arg: word.unwrap_or_default().to_owned(),
                why,
            })
        }
        Args::Rest(make) => given.map(make).ok_or_else(missing),
        Args::MaybeRest(make) => Ok(make(given)),
        Args::WordAndMaybeRest(make) => {
            let arg = given.ok_or_else(missing)?;
            Ok(match arg.split_once(char::is_whitespace) {
                Some((word, rest)) => make(word, Some(rest.trim_start())),
                None => make(arg, None),
            })
        }
        Args::WordAndKey(make) => {
            let arg = given.ok_or_else(missing)?;
            let Some((word, rest)) = arg.split_once(char::is_whitespace) else {
                return Ok(make(arg, None));
            };
            let rest = rest.trim_start();
            let key = match rest.strip_prefix(KEY_FLAG) {
                Some("") => return Err(missing()),
                Some(key) if key.starts_with(char::is_whitespace) => key.trim(),
                _ => {
                    return Err(Error::KeyExpected {
                        usage: spec.usage_line(),
                    })
                }
            };
            Ok(make(word, Some(Key(key))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tui(line: &str) -> Parsed<'_> {
        parse(line, Interface::Tui)
    }

    #[test]
    fn parses_commands_and_text() {
        assert_eq!(tui("hello"), Parsed::Text("hello"));
        assert_eq!(tui("//slash"), Parsed::Text("/slash"));
        assert_eq!(
            tui("/join  #Dev "),
            Parsed::Command(Command::Join("#Dev", None))
        );
        assert_eq!(tui("/j dev"), Parsed::Command(Command::Join("dev", None)));
        assert_eq!(tui("/leave"), Parsed::Command(Command::Leave(None)));
        assert_eq!(tui("/part x"), Parsed::Command(Command::Leave(Some("x"))));
        assert_eq!(
            tui("/history 50"),
            Parsed::Command(Command::History(Some(50)))
        );
        assert_eq!(tui("/history"), Parsed::Command(Command::History(None)));
        for quit in ["/quit", "/exit", "/q"] {
            assert_eq!(parse(quit, Interface::Line), Parsed::Command(Command::Quit));
        }
        assert_eq!(
            tui("/msg bob  hi there\nsecond line"),
            Parsed::Command(Command::Msg("bob", Some("hi there\nsecond line")))
        );
        assert_eq!(
            tui("/query 1a2b3c4d"),
            Parsed::Command(Command::Msg("1a2b3c4d", None))
        );
        assert_eq!(
            tui("/nick Jean Pierre"),
            Parsed::Command(Command::Nick("Jean Pierre"))
        );
        assert_eq!(tui("/dms"), Parsed::Command(Command::Dms(None)));
        assert_eq!(tui("/dms bob"), Parsed::Command(Command::Dms(Some("bob"))));
        assert_eq!(tui("/?"), Parsed::Command(Command::Help));
    }

    #[test]
    fn errors_name_the_usage() {
        let error = |line| match tui(line) {
            Parsed::Error(e) => e.to_string(),
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(error("/msg"), "missing argument; usage: /msg WHO [TEXT]");
        assert_eq!(
            error("/join"),
            "missing argument; usage: /join ROOM [--key PASSPHRASE]"
        );
        assert_eq!(
            error("/join a b"),
            "only --key PASSPHRASE may follow the room; usage: /join ROOM [--key PASSPHRASE]"
        );
        assert_eq!(
            error("/rooms all"),
            "too many arguments (\"all\"); usage: /rooms"
        );
        assert_eq!(
            error("/history x"),
            "\"x\": N is a number; usage: /history [N]"
        );
        assert!(error("/frobnicate").contains("unknown command /frobnicate"));
        assert_eq!(error("/"), "an empty command; /help lists them");
        assert_eq!(error("/ join"), "an empty command; /help lists them");
    }

    /// Every command parses in every interface it is in, by its name and every alias, with
    /// the arguments its usage asks for; elsewhere it is refused as not there.
    #[test]
    fn every_command_and_alias_parses() {
        for interface in [Interface::Tui, Interface::Line] {
            for s in COMMANDS {
                let args = match s.args {
                    Args::None(_) => "",
                    Args::Word(_) | Args::Rest(_) | Args::MaybeWord(_) | Args::MaybeRest(_) => "5",
                    Args::WordAndMaybeRest(_) => "5 text",
                    Args::WordAndKey(_) => "5 --key text",
                };
                for name in std::iter::once(&s.name).chain(s.aliases) {
                    let line = format!("/{name} {args}");
                    let parsed = parse(&line, interface);
                    if s.is_in(interface) {
                        assert!(matches!(parsed, Parsed::Command(_)), "{line}: {parsed:?}");
                    } else {
                        assert!(
                            matches!(parsed, Parsed::Error(Error::NotHere { .. })),
                            "{line}: {parsed:?}"
                        );
                    }
                }
            }
        }
    }

    /// No name or alias is taken twice, and each usage's first word says whether the
    /// command needs an argument (`[` for an optional one).
    #[test]
    fn the_table_is_consistent() {
        let mut names: Vec<&str> = COMMANDS
            .iter()
            .flat_map(|s| std::iter::once(s.name).chain(s.aliases.iter().copied()))
            .collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "a name or alias is taken twice");
        for s in COMMANDS {
            let required = matches!(
                s.args,
                Args::Word(_) | Args::Rest(_) | Args::WordAndMaybeRest(_) | Args::WordAndKey(_)
            );
            assert_eq!(s.usage.is_empty(), !s.takes_args(), "{}", s.name);
            assert_eq!(
                required,
                !s.usage.is_empty() && !s.usage.starts_with('['),
                "{}",
                s.name
            );
            assert_eq!(s.complete == Complete::None, !s.takes_args(), "{}", s.name);
        }
    }

    /// `/join ROOM --key PASSPHRASE`: the passphrase is the rest of the line, trimmed, inner
    /// white space kept; errors never repeat it, nor does a command's `Debug`.
    #[test]
    fn join_with_a_key_and_the_private_room_commands() {
        assert_eq!(
            tui("/join team --key  two words "),
            Parsed::Command(Command::Join("team", Some(Key("two words"))))
        );
        assert_eq!(
            parse("/j #team --key s3cret", Interface::Line),
            Parsed::Command(Command::Join("#team", Some(Key("s3cret"))))
        );
        let shown = format!("{:?}", tui("/join team --key hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
        for line in ["/join team --key", "/join team --key   "] {
            assert_eq!(
                tui(line),
                Parsed::Error(Error::Missing {
                    usage: "/join ROOM [--key PASSPHRASE]".into()
                }),
                "{line}"
            );
        }
        for line in [
            "/join team hunter2",
            "/join team --keyhunter2",
            "/join team -k hunter2",
        ] {
            match tui(line) {
                Parsed::Error(e) => assert!(!e.to_string().contains("hunter2"), "{line}: {e}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        assert_eq!(
            tui("/create team"),
            Parsed::Command(Command::Create("team"))
        );
        assert_eq!(
            tui("/invite Jean Pierre"),
            Parsed::Command(Command::Invite("Jean Pierre"))
        );
        assert_eq!(tui("/remove bob"), Parsed::Command(Command::Remove("bob")));
        assert_eq!(tui("/members"), Parsed::Command(Command::Members));
        assert!(matches!(
            tui("/invite"),
            Parsed::Error(Error::Missing { .. })
        ));
    }

    /// The README's sentence of commands lists exactly the table's, with the same usage.
    #[test]
    fn the_readme_lists_every_command() {
        let readme = include_str!("../../../README.md");
        let para = readme
            .split("\n\n")
            .find(|p| p.contains("Commands (the same"))
            .expect("the README's paragraph of slash commands");
        let listed: Vec<&str> = para
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|code| code.starts_with('/'))
            .collect();
        let table: Vec<String> = COMMANDS.iter().map(Spec::usage_line).collect();
        assert_eq!(listed, table, "README.md and commands::COMMANDS disagree");
    }
}
