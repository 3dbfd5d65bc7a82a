//! The generic IRCv3 layer: one line split into tags, prefix, command and parameters, all borrowed
//! from the line.
//!
//! Parsing only finds the boundaries of the parts and checks the grammar; tags are split and
//! unescaped when someone asks for them, because most consumers read a handful of tags from a
//! few commands and the tag section is most of a Twitch line.

use std::borrow::Cow;

/// Why a line is not a valid IRC message. Twitch never sends these; a line that fails here is
/// counted and logged by the reader, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IrcError {
    #[error("empty line")]
    Empty,
    #[error("`@` starts a tag section but no tag follows")]
    EmptyTags,
    #[error("`:` starts a prefix but the prefix is empty")]
    EmptyPrefix,
    #[error("no command after the tags or prefix")]
    MissingCommand,
    #[error("invalid command {0:?}: must be letters or a three-digit number")]
    InvalidCommand(String),
    #[error("empty parameter: a double space or a space at the end of the line")]
    EmptyParameter,
    #[error("{command} has no channel parameter")]
    MissingChannel { command: &'static str },
    #[error("{command} lacks its {what}")]
    MissingField {
        command: &'static str,
        what: &'static str,
    },
}

/// One IRC line, borrowed. Cheap to copy: it is a handful of slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrcMessage<'a> {
    raw: &'a str,
    tags: Tags<'a>,
    prefix: Option<&'a str>,
    command: &'a str,
    /// The middle parameters exactly as on the wire, single spaces between them (checked).
    middle: &'a str,
    trailing: Option<&'a str>,
}

impl<'a> IrcMessage<'a> {
    /// Splits one line (a trailing `\r\n` or `\n` is ignored).
    ///
    /// Strict where Twitch is regular: empty tag sections, empty prefixes, commands that are
    /// neither letters nor a three-digit numeric, and empty parameters are errors, so that a
    /// corrupted line is reported instead of being half understood.
    pub fn parse(line: &'a str) -> Result<Self, IrcError> {
        let raw = line
            .strip_suffix('\n')
            .map_or(line, |l| l.strip_suffix('\r').unwrap_or(l));
        if raw.is_empty() {
            return Err(IrcError::Empty);
        }
        let mut rest = raw;

        let mut tags = Tags::EMPTY;
        if let Some(after) = rest.strip_prefix('@') {
            let (section, tail) = after.split_once(' ').ok_or(IrcError::MissingCommand)?;
            if section.is_empty() {
                return Err(IrcError::EmptyTags);
            }
            tags = Tags(section);
            rest = tail;
        }

        let mut prefix = None;
        if let Some(after) = rest.strip_prefix(':') {
            let (p, tail) = after.split_once(' ').ok_or(IrcError::MissingCommand)?;
            if p.is_empty() {
                return Err(IrcError::EmptyPrefix);
            }
            prefix = Some(p);
            rest = tail;
        }

        let (command, params) = match rest.split_once(' ') {
            Some((command, params)) => (command, Some(params)),
            None => (rest, None),
        };
        if command.is_empty() {
            return Err(IrcError::MissingCommand);
        }
        let bytes = command.as_bytes();
        let valid = bytes.iter().all(u8::is_ascii_alphabetic)
            || (bytes.len() == 3 && bytes.iter().all(u8::is_ascii_digit));
        if !valid {
            // Bounded: the error ends up in a log line, the command may be a 10 KB blob.
            return Err(IrcError::InvalidCommand(command.chars().take(32).collect()));
        }

        let (middle, trailing) = match params {
            None => ("", None),
            Some(params) => split_params(params)?,
        };

        Ok(Self {
            raw,
            tags,
            prefix,
            command,
            middle,
            trailing,
        })
    }

    /// The whole line, without its line ending.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    pub fn tags(&self) -> Tags<'a> {
        self.tags
    }

    /// Shorthand for `tags().get(key)`.
    pub fn tag(&self, key: &str) -> Option<TagValue<'a>> {
        self.tags.get(key)
    }

    pub fn prefix(&self) -> Option<Prefix<'a>> {
        self.prefix.map(Prefix::split)
    }

    pub fn command(&self) -> &'a str {
        self.command
    }

    /// Every parameter in order, the trailing one last.
    pub fn params(&self) -> Params<'a> {
        Params {
            middle: (!self.middle.is_empty()).then_some(self.middle),
            trailing: self.trailing,
        }
    }

    pub fn param(&self, index: usize) -> Option<&'a str> {
        self.params().nth(index)
    }

    /// The parameter introduced by ` :`, which may contain spaces.
    pub fn trailing(&self) -> Option<&'a str> {
        self.trailing
    }

    /// The first parameter without its `#`, when it names a channel.
    pub fn channel(&self) -> Option<&'a str> {
        self.param(0)?.strip_prefix('#')
    }
}

/// Splits `a b c :trailing text` after the command's space. `middle` keeps the single spaces
/// so the parser stores two slices instead of a vector.
fn split_params(params: &str) -> Result<(&str, Option<&str>), IrcError> {
    if let Some(trailing) = params.strip_prefix(':') {
        return Ok(("", Some(trailing)));
    }
    let bytes = params.as_bytes();
    let mut start = 0;
    loop {
        match params[start..].find(' ') {
            None => {
                if start == bytes.len() {
                    return Err(IrcError::EmptyParameter);
                }
                return Ok((params, None));
            }
            Some(0) => return Err(IrcError::EmptyParameter),
            Some(offset) => {
                let space = start + offset;
                match bytes.get(space + 1) {
                    None => return Err(IrcError::EmptyParameter),
                    Some(b':') => return Ok((&params[..space], Some(&params[space + 2..]))),
                    Some(_) => start = space + 1,
                }
            }
        }
    }
}

/// `nick!user@host`, or a server name (then only `nick` is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix<'a> {
    pub raw: &'a str,
    pub nick: &'a str,
    pub user: Option<&'a str>,
    pub host: Option<&'a str>,
}

impl<'a> Prefix<'a> {
    fn split(raw: &'a str) -> Self {
        let (rest, host) = match raw.split_once('@') {
            Some((rest, host)) => (rest, Some(host)),
            None => (raw, None),
        };
        let (nick, user) = match rest.split_once('!') {
            Some((nick, user)) => (nick, Some(user)),
            None => (rest, None),
        };
        Self {
            raw,
            nick,
            user,
            host,
        }
    }
}

/// Iterator over the parameters of an [`IrcMessage`].
#[derive(Debug, Clone)]
pub struct Params<'a> {
    middle: Option<&'a str>,
    trailing: Option<&'a str>,
}

impl<'a> Iterator for Params<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if let Some(middle) = self.middle {
            return Some(match middle.split_once(' ') {
                Some((first, rest)) => {
                    self.middle = Some(rest);
                    first
                }
                None => {
                    self.middle = None;
                    middle
                }
            });
        }
        self.trailing.take()
    }
}

/// The tag section of a line (without `@`), split on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tags<'a>(&'a str);

impl<'a> Tags<'a> {
    const EMPTY: Tags<'static> = Tags("");

    /// The tag section as sent, still escaped.
    pub fn raw(&self) -> &'a str {
        self.0
    }

    /// `(key, value)` pairs in wire order. A tag without `=` has an empty value; empty
    /// segments (`;;`) are skipped.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, TagValue<'a>)> + 'a {
        self.0.split(';').filter(|s| !s.is_empty()).map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key, TagValue(value))
        })
    }

    /// The first tag with this key. Scans the section: to read many tags of one line, iterate
    /// once instead (the typed layer does).
    pub fn get(&self, key: &str) -> Option<TagValue<'a>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// A tag value as sent, escaped (`\s` for space, `\:` for `;`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TagValue<'a>(pub &'a str);

impl<'a> TagValue<'a> {
    pub fn raw(&self) -> &'a str {
        self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The IRCv3 unescaped value; borrows unless the value holds a backslash.
    pub fn unescape(&self) -> Cow<'a, str> {
        unescape(self.0)
    }
}

/// IRCv3 tag unescaping. An unknown escape keeps the escaped character and a lone trailing
/// backslash is dropped, as the specification asks, so no input is an error.
pub fn unescape(value: &str) -> Cow<'_, str> {
    let Some(first) = value.find('\\') else {
        return Cow::Borrowed(value);
    };
    let mut out = String::with_capacity(value.len());
    out.push_str(&value[..first]);
    let mut chars = value[first..].chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    Cow::Owned(out)
}
