//! The Engine.IO / Socket.IO text codec for the websocket transport.
//!
//! Over websocket every frame holds exactly one Engine.IO packet (no payload framing), so the
//! codec is a single type digit followed by data. Parsing returns an error for anything it does
//! not understand instead of panicking: the bytes come from a server we do not control.

use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PacketError {
    #[error("empty packet")]
    Empty,
    #[error("unknown Engine.IO packet type {0:?}")]
    EngineType(char),
    #[error("unknown Socket.IO packet type {0:?}")]
    SocketType(char),
    #[error("invalid open packet: {0}")]
    Open(String),
    #[error("invalid Socket.IO event: {0}")]
    Event(String),
}

/// What the server announces in the Engine.IO `open` packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub sid: String,
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EnginePacket {
    Open(Handshake),
    Close,
    /// Probe payloads ride along with ping/pong (`2probe`) and must be echoed back.
    Ping(String),
    Pong(String),
    Message(String),
    Upgrade,
    Noop,
}

impl EnginePacket {
    pub fn parse(text: &str) -> Result<Self, PacketError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(PacketError::Empty)?;
        let rest = chars.as_str();
        Ok(match kind {
            '0' => EnginePacket::Open(parse_open(rest)?),
            '1' => EnginePacket::Close,
            '2' => EnginePacket::Ping(rest.to_owned()),
            '3' => EnginePacket::Pong(rest.to_owned()),
            '4' => EnginePacket::Message(rest.to_owned()),
            '5' => EnginePacket::Upgrade,
            '6' => EnginePacket::Noop,
            other => return Err(PacketError::EngineType(other)),
        })
    }

    pub fn encode(&self) -> String {
        match self {
            // A client never sends `open`; encoding it anyway keeps the codec symmetric for tests.
            EnginePacket::Open(h) => format!(
                "0{}",
                serde_json::json!({
                    "sid": h.sid,
                    "pingInterval": h.ping_interval_ms,
                    "pingTimeout": h.ping_timeout_ms,
                    "upgrades": [],
                })
            ),
            EnginePacket::Close => "1".to_owned(),
            EnginePacket::Ping(data) => format!("2{data}"),
            EnginePacket::Pong(data) => format!("3{data}"),
            EnginePacket::Message(data) => format!("4{data}"),
            EnginePacket::Upgrade => "5".to_owned(),
            EnginePacket::Noop => "6".to_owned(),
        }
    }
}

fn parse_open(json: &str) -> Result<Handshake, PacketError> {
    let value: Value =
        serde_json::from_str(json).map_err(|e| PacketError::Open(format!("not JSON: {e}")))?;
    let sid = value
        .get("sid")
        .and_then(Value::as_str)
        .ok_or_else(|| PacketError::Open("no sid".to_owned()))?;
    let millis = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| PacketError::Open(format!("no numeric {key}")))
    };
    Ok(Handshake {
        sid: sid.to_owned(),
        ping_interval_ms: millis("pingInterval")?,
        ping_timeout_ms: millis("pingTimeout")?,
    })
}

/// A Socket.IO packet, carried inside an Engine.IO `message`.
#[derive(Debug, Clone, PartialEq)]
pub enum SocketPacket {
    Connect {
        namespace: String,
        data: Option<Value>,
    },
    Disconnect {
        namespace: String,
    },
    Event {
        namespace: String,
        id: Option<u64>,
        name: String,
        args: Vec<Value>,
    },
    Ack {
        namespace: String,
        id: Option<u64>,
        args: Vec<Value>,
    },
    /// `4` (v2 calls it ERROR, v4 CONNECT_ERROR): the server refused the namespace.
    Error {
        namespace: String,
        data: Option<Value>,
    },
    /// Binary events and acks (`5`, `6`) carry attachments in further frames, which no provider
    /// we talk to uses; they are recognised so they can be skipped rather than misparsed.
    Binary,
}

impl SocketPacket {
    pub fn parse(text: &str) -> Result<Self, PacketError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(PacketError::Empty)?;
        let (namespace, rest) = split_namespace(chars.as_str());
        let namespace = namespace.to_owned();
        let (id, data) = split_ack_id(rest);
        let data = data.trim();
        let json = || -> Option<Value> {
            if data.is_empty() {
                None
            } else {
                // A non-JSON payload is kept as a string so an error message still reaches the user.
                Some(serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_owned())))
            }
        };
        Ok(match kind {
            '0' => SocketPacket::Connect {
                namespace,
                data: json(),
            },
            '1' => SocketPacket::Disconnect { namespace },
            '2' => {
                let items: Vec<Value> = serde_json::from_str(data)
                    .map_err(|e| PacketError::Event(format!("not a JSON array: {e}")))?;
                let mut items = items.into_iter();
                let name = match items.next() {
                    Some(Value::String(name)) => name,
                    _ => return Err(PacketError::Event("no event name".to_owned())),
                };
                SocketPacket::Event {
                    namespace,
                    id,
                    name,
                    args: items.collect(),
                }
            }
            '3' => SocketPacket::Ack {
                namespace,
                id,
                args: match json() {
                    Some(Value::Array(args)) => args,
                    Some(other) => vec![other],
                    None => Vec::new(),
                },
            },
            '4' => SocketPacket::Error {
                namespace,
                data: json(),
            },
            '5' | '6' => SocketPacket::Binary,
            other => return Err(PacketError::SocketType(other)),
        })
    }

    /// Encodes for sending. Only what a client sends is supported in full; the default
    /// namespace `/` is left out as the protocol expects.
    pub fn encode(&self) -> String {
        let ns = |namespace: &str| {
            if namespace.is_empty() || namespace == "/" {
                String::new()
            } else {
                format!("{namespace},")
            }
        };
        let id = |id: &Option<u64>| id.map(|i| i.to_string()).unwrap_or_default();
        match self {
            SocketPacket::Connect { namespace, data } => format!(
                "0{}{}",
                ns(namespace),
                data.as_ref().map(Value::to_string).unwrap_or_default()
            ),
            SocketPacket::Disconnect { namespace } => format!("1{}", ns(namespace)),
            SocketPacket::Event {
                namespace,
                id: ack,
                name,
                args,
            } => {
                let mut items = Vec::with_capacity(args.len() + 1);
                items.push(Value::String(name.clone()));
                items.extend(args.iter().cloned());
                format!("2{}{}{}", ns(namespace), id(ack), Value::Array(items))
            }
            SocketPacket::Ack {
                namespace,
                id: ack,
                args,
            } => format!(
                "3{}{}{}",
                ns(namespace),
                id(ack),
                Value::Array(args.clone())
            ),
            SocketPacket::Error { namespace, data } => format!(
                "4{}{}",
                ns(namespace),
                data.as_ref().map(Value::to_string).unwrap_or_default()
            ),
            SocketPacket::Binary => "5".to_owned(),
        }
    }
}

/// `/chat,rest` → (`/chat`, `rest`); anything not starting with `/` is the default namespace.
fn split_namespace(text: &str) -> (&str, &str) {
    if text.starts_with('/') {
        match text.find(',') {
            Some(comma) => (&text[..comma], &text[comma + 1..]),
            None => (text, ""),
        }
    } else {
        ("/", text)
    }
}

/// Leading digits before the JSON are the ack id.
fn split_ack_id(text: &str) -> (Option<u64>, &str) {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return (None, text);
    }
    // Too many digits to be an id: treat as data and let the JSON parse decide.
    match text[..digits].parse() {
        Ok(id) => (Some(id), &text[digits..]),
        Err(_) => (None, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_eio3_open() {
        let p = EnginePacket::parse(
            r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":5000}"#,
        )
        .unwrap();
        assert_eq!(
            p,
            EnginePacket::Open(Handshake {
                sid: "abc".into(),
                ping_interval_ms: 25000,
                ping_timeout_ms: 5000
            })
        );
    }

    #[test]
    fn rejects_bad_open() {
        assert!(matches!(
            EnginePacket::parse("0"),
            Err(PacketError::Open(_))
        ));
        assert!(matches!(
            EnginePacket::parse(r#"0{"sid":1,"pingInterval":1,"pingTimeout":1}"#),
            Err(PacketError::Open(_))
        ));
        assert!(matches!(
            EnginePacket::parse(r#"0{"sid":"a","pingInterval":"x","pingTimeout":1}"#),
            Err(PacketError::Open(_))
        ));
    }

    #[test]
    fn engine_round_trip() {
        for p in [
            EnginePacket::Close,
            EnginePacket::Ping(String::new()),
            EnginePacket::Ping("probe".into()),
            EnginePacket::Pong(String::new()),
            EnginePacket::Message(r#"2["a"]"#.into()),
            EnginePacket::Upgrade,
            EnginePacket::Noop,
            EnginePacket::Open(Handshake {
                sid: "s".into(),
                ping_interval_ms: 1,
                ping_timeout_ms: 2,
            }),
        ] {
            assert_eq!(EnginePacket::parse(&p.encode()).unwrap(), p);
        }
        assert_eq!(EnginePacket::Ping(String::new()).encode(), "2");
        assert_eq!(EnginePacket::Pong(String::new()).encode(), "3");
    }

    #[test]
    fn engine_errors() {
        assert_eq!(EnginePacket::parse(""), Err(PacketError::Empty));
        assert_eq!(EnginePacket::parse("9"), Err(PacketError::EngineType('9')));
        assert_eq!(EnginePacket::parse("é"), Err(PacketError::EngineType('é')));
    }

    #[test]
    fn parses_event_with_arg() {
        let p = SocketPacket::parse(r#"2["event",{"type":"donation","message":[]}]"#).unwrap();
        assert_eq!(
            p,
            SocketPacket::Event {
                namespace: "/".into(),
                id: None,
                name: "event".into(),
                args: vec![json!({"type":"donation","message":[]})]
            }
        );
    }

    #[test]
    fn parses_namespace_and_ack_id() {
        let p = SocketPacket::parse(r#"2/chat,12["say","hi",3]"#).unwrap();
        assert_eq!(
            p,
            SocketPacket::Event {
                namespace: "/chat".into(),
                id: Some(12),
                name: "say".into(),
                args: vec![json!("hi"), json!(3)]
            }
        );
        assert_eq!(
            SocketPacket::parse("3/chat,7[1]").unwrap(),
            SocketPacket::Ack {
                namespace: "/chat".into(),
                id: Some(7),
                args: vec![json!(1)]
            }
        );
    }

    #[test]
    fn parses_connect_disconnect_error() {
        assert_eq!(
            SocketPacket::parse("0").unwrap(),
            SocketPacket::Connect {
                namespace: "/".into(),
                data: None
            }
        );
        assert_eq!(
            SocketPacket::parse(r#"0{"sid":"x"}"#).unwrap(),
            SocketPacket::Connect {
                namespace: "/".into(),
                data: Some(json!({"sid":"x"}))
            }
        );
        assert_eq!(
            SocketPacket::parse("0/admin").unwrap(),
            SocketPacket::Connect {
                namespace: "/admin".into(),
                data: None
            }
        );
        assert_eq!(
            SocketPacket::parse("1").unwrap(),
            SocketPacket::Disconnect {
                namespace: "/".into()
            }
        );
        assert_eq!(
            SocketPacket::parse(r#"4"Not authorized""#).unwrap(),
            SocketPacket::Error {
                namespace: "/".into(),
                data: Some(json!("Not authorized"))
            }
        );
        // v2 servers send error text without JSON quotes sometimes.
        assert_eq!(
            SocketPacket::parse("4bad token").unwrap(),
            SocketPacket::Error {
                namespace: "/".into(),
                data: Some(json!("bad token"))
            }
        );
        assert_eq!(
            SocketPacket::parse(r#"51-["a",{"_placeholder":true,"num":0}]"#).unwrap(),
            SocketPacket::Binary
        );
    }

    #[test]
    fn encodes_emit() {
        let p = SocketPacket::Event {
            namespace: "/".into(),
            id: None,
            name: "authenticate".into(),
            args: vec![json!({"method":"jwt","token":"t"})],
        };
        assert_eq!(
            p.encode(),
            r#"2["authenticate",{"method":"jwt","token":"t"}]"#
        );
        assert_eq!(SocketPacket::parse(&p.encode()).unwrap(), p);
        assert_eq!(
            SocketPacket::Connect {
                namespace: "/".into(),
                data: None
            }
            .encode(),
            "0"
        );
        assert_eq!(
            SocketPacket::Event {
                namespace: "/n".into(),
                id: Some(3),
                name: "e".into(),
                args: vec![]
            }
            .encode(),
            r#"2/n,3["e"]"#
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for text in [
            "",
            "2",
            "2[",
            "2[]",
            "2[1,2]",
            "2{}",
            "2/ns",
            "2/ns,",
            "299999999999999999999999999[\"a\"]",
            "x",
            "\u{0}",
            "2[\"\u{1F600}\"",
            "4",
            "3",
            "/",
        ] {
            let _ = SocketPacket::parse(text);
            let _ = EnginePacket::parse(text);
        }
        assert!(SocketPacket::parse("2[]").is_err());
        assert!(SocketPacket::parse("2[1]").is_err());
        assert!(SocketPacket::parse("9").is_err());
        assert_eq!(
            SocketPacket::parse("299999999999999999999999[\"a\"]").ok(),
            None,
            "an overlong id is data, and that data is not an event array"
        );
    }

    #[test]
    fn random_protocol_soup_never_panics() {
        const ALPHABET: &[char] = &[
            '0', '1', '2', '3', '4', '5', '6', '9', '/', ',', '[', ']', '{', '}', '"', ':', 'a',
            '-', '\\', ' ', 'é', '\u{0}',
        ];
        for _ in 0..20_000 {
            let len = rand::random_range(0..24);
            let text: String = (0..len)
                .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())])
                .collect();
            if let Ok(EnginePacket::Message(m)) = EnginePacket::parse(&text) {
                let _ = SocketPacket::parse(&m);
            }
            let _ = SocketPacket::parse(&text);
        }
    }

    #[test]
    fn every_prefix_of_a_real_frame_parses_without_panic() {
        let frame =
            r#"42/ns,5["event",{"type":"donation","message":[{"amount":"13.37","name":"é"}]}]"#;
        for (i, _) in frame.char_indices() {
            if let Ok(EnginePacket::Message(m)) = EnginePacket::parse(&frame[..i]) {
                let _ = SocketPacket::parse(&m);
            }
        }
    }
}
