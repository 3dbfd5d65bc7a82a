//! The one template syntax of ongwatch's text outputs: chat announcements, rules and webhook
//! bodies.
//!
//! `{name}` is a placeholder; `{{` and `}}` are literal braces; an unclosed `{` or a lone `}`
//! is an error. What a name means is the caller's business: parsing turns each name into the
//! caller's field type (or refuses it with the caller's message), rendering asks the caller
//! for each field's text. Webhook bodies are JSON, full of braces: there
//! ([`Template::parse_lenient`]) only a `{name}` the caller knows is a placeholder and every
//! other brace stays as written.
//!
//! A foundation module: it depends on nothing else in the crate.

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("has an unclosed '{{' (write {{{{ for a literal brace)")]
    Unclosed,
    #[error("has a '}}' without '{{' (write }}}} for a literal brace)")]
    Unopened,
    /// The caller refused a placeholder's name; its own message.
    #[error("{0}")]
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<F> {
    Text(String),
    Field(F),
}

/// A parsed template over the caller's field type `F`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template<F>(Vec<Piece<F>>);

impl<F> Template<F> {
    /// The strict syntax; `field` turns a placeholder's name (as written between the braces)
    /// into a field, or says why it is not one.
    pub fn parse(
        text: &str,
        mut field: impl FnMut(&str) -> Result<F, String>,
    ) -> Result<Self, Error> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find(['{', '}']) {
            literal.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("{{") {
                literal.push('{');
                rest = after;
            } else if let Some(after) = tail.strip_prefix("}}") {
                literal.push('}');
                rest = after;
            } else if tail.starts_with('}') {
                return Err(Error::Unopened);
            } else {
                let end = tail.find('}').ok_or(Error::Unclosed)?;
                let field = field(&tail[1..end]).map_err(Error::Name)?;
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Field(field));
                rest = &tail[end + 1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Self(pieces))
    }

    /// The lenient syntax of JSON bodies: `{name}` is a placeholder when `field` knows the
    /// name; any other brace is literal text, and there are no escapes.
    pub fn parse_lenient(text: &str, mut field: impl FnMut(&str) -> Option<F>) -> Self {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let known = after
                .find('}')
                .and_then(|close| Some((close, field(&after[..close])?)));
            match known {
                Some((close, field)) => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Field(field));
                    rest = &after[close + 1..];
                }
                None => {
                    literal.push('{');
                    rest = after;
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Self(pieces)
    }

    /// The text with every field written by `value`.
    pub fn render(&self, mut value: impl FnMut(&F, &mut String)) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Field(field) => value(field, &mut out),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(name: &str) -> Result<String, String> {
        Ok(name.to_owned())
    }

    fn show(template: &Template<String>) -> String {
        template.render(|name, out| {
            out.push('<');
            out.push_str(name);
            out.push('>');
        })
    }

    #[test]
    fn placeholders_and_escaped_braces() {
        let template = Template::parse("{{{count}}} for {user}!", any).unwrap();
        assert_eq!(show(&template), "{<count>} for <user>!");
        assert_eq!(show(&Template::parse("", any).unwrap()), "");
        assert_eq!(show(&Template::parse("plain", any).unwrap()), "plain");
    }

    #[test]
    fn syntax_errors_are_named() {
        assert_eq!(Template::parse("live {title", any), Err(Error::Unclosed));
        assert_eq!(Template::parse("a } b", any), Err(Error::Unopened));
        assert!(Error::Unclosed.to_string().contains("unclosed"));
        assert!(Error::Unopened.to_string().contains("without"));
    }

    #[test]
    fn the_caller_refuses_names_with_its_own_message() {
        let only_user = |name: &str| match name {
            "user" => Ok(()),
            other => Err(format!("{{{other}}} is not a placeholder")),
        };
        assert!(Template::parse("{user}", only_user).is_ok());
        assert_eq!(
            Template::parse("{nope}", only_user),
            Err(Error::Name("{nope} is not a placeholder".into()))
        );
    }

    #[test]
    fn lenient_templates_keep_unknown_braces() {
        let known =
            |name: &str| (name == "seq" || name.starts_with("event.")).then(|| name.to_owned());
        let template = Template::parse_lenient(
            r#"{"seq": {seq}, "user": "{event.user}", "x": {"y": {nope}}, "open": "{"#,
            known,
        );
        assert_eq!(
            show(&template),
            r#"{"seq": <seq>, "user": "<event.user>", "x": {"y": {nope}}, "open": "{"#
        );
    }
}
