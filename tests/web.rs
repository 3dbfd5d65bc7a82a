//! The HTTP/WebSocket server end to end, against the real binary: every endpoint, `since`
//! resume across a restart, the slow-client cut-off, and access from a non-trusted address.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Instant;

use serde_json::{Value, json};
use support::*;
use tokio_tungstenite::tungstenite::{self, Message, protocol::frame::coding::CloseCode};

type Ws = tungstenite::WebSocket<TcpStream>;

const LOCAL: [u8; 4] = [127, 0, 0, 1];

fn config(extra_http: &str) -> String {
    format!(
        "[mqtt]\nlisten = \"127.0.0.1:0\"\nws_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n{extra_http}"
    )
}

fn http_addr(daemon: &Daemon) -> SocketAddr {
    daemon
        .runtime
        .http
        .expect("runtime.json names the HTTP address")
}

/// A TCP connection from a chosen loopback source address (127.0.0.2 plays "remote").
fn connect_from(server: SocketAddr, from: IpAddr, recv_buffer: Option<u32>) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            if let Some(size) = recv_buffer {
                socket.set_recv_buffer_size(size)?;
            }
            socket.bind(SocketAddr::new(from, 0))?;
            socket.connect(server).await
        })
        .expect("connect to the daemon");
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A minimal HTTP/1.1 client: one request per connection.
fn request_from(
    server: SocketAddr,
    from: IpAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut stream = connect_from(server, from, None);
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or_default());
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers: head.to_owned(),
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

fn get(daemon: &Daemon, path: &str) -> Reply {
    request_from(http_addr(daemon), LOCAL.into(), "GET", path, &[], None)
}

fn post(daemon: &Daemon, path: &str, body: &Value) -> Reply {
    request_from(
        http_addr(daemon),
        LOCAL.into(),
        "POST",
        path,
        &[],
        Some(&body.to_string()),
    )
}

fn publish(daemon: &Daemon, topic: &str, payload: Value) {
    let reply = post(
        daemon,
        "/api/publish",
        &json!({"topic": topic, "payload": payload}),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
}

fn ws_connect_from(
    server: SocketAddr,
    from: IpAddr,
    query: &str,
    recv_buffer: Option<u32>,
) -> Result<Ws, tungstenite::Error> {
    let stream = connect_from(server, from, recv_buffer);
    tungstenite::client(format!("ws://{server}/ws/events?{query}"), stream)
        .map(|(ws, _)| ws)
        .map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => unreachable!("blocking socket"),
        })
}

fn ws(daemon: &Daemon, query: &str) -> Ws {
    ws_connect_from(http_addr(daemon), LOCAL.into(), query, None).expect("WebSocket handshake")
}

/// The next text frame as JSON.
fn next_json(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("a frame") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Reads frames until one satisfies `pick`.
fn until(ws: &mut Ws, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        let frame = next_json(ws);
        if pick(&frame) {
            return frame;
        }
    }
}

fn send(ws: &mut Ws, frame: &str) {
    ws.send(Message::text(frame)).unwrap();
}

/// Waits until the daemon's fan-out has `n` clients registered (a handshake is done before
/// the server side registers).
fn wait_clients(daemon: &Daemon, n: u64) {
    wait_for(&format!("{n} WebSocket clients"), || {
        (get(daemon, "/api/status").json()["websocket"]["clients"] == n).then_some(())
    });
}

#[test]
fn status_metrics_pages_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(
        dir.path(),
        &config("token = \"very-secret-token-42\"\n"),
        &[],
    );
    let status = get(&daemon, "/api/status");
    assert_eq!(status.status, 200);
    let status = status.json();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert!(status["uptime_seconds"].is_i64());
    assert_eq!(status["topic_root"], "stream");
    for output in ["event_log", "mqtt", "commands", "web"] {
        assert!(
            status["outputs"][output]["capacity"].as_u64().unwrap() > 0,
            "{output} in {status}"
        );
    }
    assert_eq!(status["outputs"]["web"]["policy"], "drop_oldest");
    assert_eq!(status["mqtt"]["mode"], "embedded");
    assert_eq!(
        status["mqtt"]["ws_listen"],
        daemon.runtime.mqtt_ws.unwrap().to_string()
    );
    wait_for("the MQTT bridge to connect", || {
        (get(&daemon, "/api/status").json()["mqtt"]["bridge"]["connected"] == true).then_some(())
    });
    assert!(status["hub"]["accepted"].as_u64().unwrap() >= 1);
    assert!(status["trigger_kinds"].as_array().unwrap().len() >= 14);

    // A retained provider state on the bus shows up as the provider's health: the built-in hype
    // meter's (only ongwatch publishes provider states, so none can be posted here).
    publish(
        &daemon,
        "stream/synthetic/hype",
        json!({"level": 3, "score": 30.0}),
    );
    let status = wait_for("provider state and hype in /api/status", || {
        let status = get(&daemon, "/api/status").json();
        (status["providers"]["hype"]["state"] == "connected" && status["hype"]["level"] == 3)
            .then_some(status)
    });
    assert!(
        status["providers"]["hype"]["detail"]
            .as_str()
            .unwrap()
            .contains("built-in hype meter"),
        "{status}"
    );

    let metrics = get(&daemon, "/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics.headers.contains("text/plain; version=0.0.4"));
    for needle in [
        "ongwatch_build_info{version=",
        "ongwatch_hub_accepted_total ",
        "ongwatch_dedup_dropped_total 0",
        "ongwatch_events_in_total{family=\"synthetic/hype\",provider=\"\"} 1",
        "ongwatch_events_out_total{output=\"event_log\"}",
        "ongwatch_output_queue_depth{output=\"mqtt\"}",
        "ongwatch_output_dropped_total{output=\"web\"} 0",
        "ongwatch_mqtt_reconnects_total 0",
        "ongwatch_provider_state{provider=\"hype\",state=\"connected\"} 1",
        "ongwatch_provider_state{provider=\"twitch\",state=\"error\"} 0",
        "ongwatch_websocket_cut_off_total 0",
    ] {
        assert!(
            metrics.body.contains(needle),
            "{needle} missing in\n{}",
            metrics.body
        );
    }

    let mut everything = String::new();
    for (path, needle) in [
        ("/", "ongwatch"),
        ("/overlay/alerts", "alert"),
        ("/overlay/hype", "mqtt.min.js"),
        ("/assets/dashboard.js", "OW.stream"),
        ("/assets/uplot.min.js", "uPlot"),
        ("/assets/uplot.LICENSE", "MIT"),
        ("/assets/mqtt.min.js", "mqtt"),
        ("/assets/mqtt.LICENSE.md", "MIT"),
    ] {
        let reply = get(&daemon, path);
        assert_eq!(reply.status, 200, "{path}");
        assert!(reply.body.contains(needle), "{path} lacks {needle}");
        everything.push_str(&reply.body);
    }
    assert_eq!(get(&daemon, "/assets/nope.js").status, 404);
    // A plain GET of the event stream is told what it needs, not left hanging.
    let plain = get(&daemon, "/ws/events");
    assert_eq!(plain.status, 426, "{}", plain.body);
    assert!(plain.body.contains("Upgrade: websocket"), "{}", plain.body);
    everything.push_str(&get(&daemon, "/api/status").body);
    everything.push_str(&get(&daemon, "/metrics").body);
    assert!(!everything.contains("very-secret-token-42"));
}

#[test]
fn publish_trigger_and_history_reach_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), &config(""), &[]);
    let mut client = ws(&daemon, "topics=stream/support/%23,stream/synthetic/%23");
    let mut other = ws(&daemon, "topics=stream/community/follows");
    wait_clients(&daemon, 2);
    let mut sub = mosquitto_sub(daemon.mqtt_port(), "stream/synthetic/#", &[]);

    publish(&daemon, "stream/synthetic/bpm", json!({"bpm": 120}));
    // The hype meter's level 0 from its start may still be on its way under synthetic/#.
    let frame = until(&mut client, "the bpm publish", |f| {
        f["topic"] != "stream/synthetic/hype"
    });
    assert_eq!(frame["topic"], "stream/synthetic/bpm");
    assert_eq!(frame["event"], json!({"bpm": 120}));
    let bpm_seq = frame["seq"].as_u64().unwrap();
    let line = sub.wait_line(&["stream/synthetic/bpm "]);
    assert_eq!(
        payload_on(&line, "stream/synthetic/bpm").unwrap()["bpm"],
        120
    );
    let logged = wait_for("the publish in the event log", || {
        daemon
            .log_lines()
            .into_iter()
            .find(|l| l["topic"] == "stream/synthetic/bpm")
    });
    assert_eq!(logged["seq"].as_u64().unwrap(), bpm_seq);

    let accepted = post(
        &daemon,
        "/api/trigger",
        &json!({"type": "cheer", "user": "alinsa_vix", "amount": 2490, "message": "Cheer2490 CHAOS"}),
    );
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let cheer = until(&mut client, "the triggered cheer", |f| {
        f["topic"] == "stream/support/cheers"
    });
    let event = &cheer["event"];
    assert_eq!(event["provider"], "twitch");
    assert_eq!(event["user"], "alinsa_vix");
    assert_eq!(event["amount"], 2490);
    assert_eq!(event["message"], "Cheer2490 CHAOS");
    assert_eq!(event["test"], true);
    assert!(cheer["seq"].as_u64().unwrap() > bpm_seq);

    let follow = post(
        &daemon,
        "/api/trigger",
        &json!({"type": "follow", "user": "newfan"}),
    );
    assert_eq!(follow.status, 202);
    let frame = next_json(&mut other);
    assert_eq!(frame["event"]["type"], "follow");
    assert_eq!(frame["event"]["user"], "newfan");

    for (body, needle) in [
        (json!({"topic": "stream/+/x", "payload": {}}), "wildcard"),
        (json!({"topic": "$SYS/x", "payload": {}}), "reserves"),
        (json!({"topic": "", "payload": {}}), "empty"),
    ] {
        let reply = post(&daemon, "/api/publish", &body);
        assert_eq!(reply.status, 400, "{body}");
        assert!(
            reply.json()["error"].as_str().unwrap().contains(needle),
            "{}",
            reply.body
        );
    }
    let reply = post(&daemon, "/api/trigger", &json!({"type": "bogus"}));
    assert_eq!(reply.status, 400);
    assert!(reply.json()["error"].as_str().unwrap().contains("cheer"));

    // History from the log: latest, filtered, paged with since.
    let support = get(&daemon, "/api/events?topic=stream/support/%23");
    assert_eq!(support.status, 200);
    let support = support.json();
    let events = support["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{support}");
    assert_eq!(events[0]["event"]["user"], "alinsa_vix");
    assert_eq!(support["next_since"], events[0]["seq"]);

    let all = get(&daemon, "/api/events?limit=1000").json();
    let seqs: Vec<u64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let page = get(&daemon, &format!("/api/events?since={}&limit=2", seqs[0])).json();
    let paged: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(paged, seqs[1..3]);
    assert_eq!(page["next_since"], seqs[2]);
    assert_eq!(get(&daemon, "/api/events?topic=a/%23/b").status, 400);
}

#[test]
fn websocket_ops_and_bad_frames_keep_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), &config(""), &[]);
    let mut client = ws(&daemon, "topics=stream/support/cheers");

    send(&mut client, "this is not json");
    let error = next_json(&mut client);
    assert_eq!(error["op"], "error");
    assert!(error["error"].as_str().unwrap().contains("bad frame"));
    send(&mut client, r#"{"op":"dance"}"#);
    assert_eq!(next_json(&mut client)["op"], "error");
    client.send(Message::binary(vec![1, 2, 3])).unwrap();
    assert_eq!(next_json(&mut client)["op"], "error");
    send(&mut client, r#"{"op":"subscribe","topics":["a/#/b"]}"#);
    assert_eq!(next_json(&mut client)["op"], "error");
    send(
        &mut client,
        r#"{"op":"publish","topic":"stream/+","payload":{}}"#,
    );
    assert_eq!(next_json(&mut client)["op"], "error");

    send(&mut client, r#"{"op":"ping"}"#);
    assert_eq!(next_json(&mut client), json!({"op": "pong"}));

    send(
        &mut client,
        r#"{"op":"subscribe","topics":["stream/bots/#"]}"#,
    );
    let subscribed = next_json(&mut client);
    assert_eq!(subscribed["op"], "subscribed");
    assert_eq!(
        subscribed["topics"],
        json!(["stream/support/cheers", "stream/bots/#"])
    );

    // What a client publishes reaches everyone, itself included when subscribed.
    let mut sub = mosquitto_sub(daemon.mqtt_port(), "stream/bots/#", &[]);
    send(
        &mut client,
        r#"{"op":"publish","topic":"stream/bots/bpm","payload":{"bpm":90}}"#,
    );
    let published = next_json(&mut client);
    assert_eq!(
        published,
        json!({"op": "published", "topic": "stream/bots/bpm"})
    );
    let frame = next_json(&mut client);
    assert_eq!(frame["topic"], "stream/bots/bpm");
    assert_eq!(frame["event"]["bpm"], 90);
    sub.wait_line(&["stream/bots/bpm ", "\"bpm\":90"]);

    send(
        &mut client,
        r#"{"op":"unsubscribe","topics":["stream/bots/#"]}"#,
    );
    assert_eq!(
        next_json(&mut client),
        json!({"op": "unsubscribed", "topics": ["stream/support/cheers"]})
    );
    publish(&daemon, "stream/bots/bpm", json!({"bpm": 91}));
    // Only ongwatch publishes cheers (topic authority): the marker is a triggered one.
    let refused = post(
        &daemon,
        "/api/publish",
        &json!({"topic": "stream/support/cheers", "payload": {"marker": 1}}),
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("topic authority"), "{}", refused.body);
    let accepted = post(
        &daemon,
        "/api/trigger",
        &json!({"type": "cheer", "user": "marker", "amount": 1}),
    );
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let frame = next_json(&mut client);
    assert_eq!(
        (&frame["topic"], &frame["event"]["user"]),
        (&json!("stream/support/cheers"), &json!("marker")),
        "no bots/ after unsubscribe"
    );

    let refused = ws_connect_from(http_addr(&daemon), LOCAL.into(), "topics=a/%23/b", None);
    match refused {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("a bad filter must be refused: {other:?}"),
    }
}

/// The seqs of the log lines on `topic` after `since`, as a client filtering on it must see.
fn log_seqs(daemon: &Daemon, topic: &str, since: u64) -> Vec<u64> {
    daemon
        .log_lines()
        .into_iter()
        .filter(|l| l["topic"] == topic)
        .map(|l| l["seq"].as_u64().unwrap())
        .filter(|seq| *seq > since)
        .collect()
}

#[test]
fn since_resumes_across_a_restart_with_no_gap_and_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let topic = "stream/test/counter";
    let mut daemon = Daemon::start_in(dir.path(), &config(""), &[]);
    for n in 0..30 {
        publish(&daemon, topic, json!({"n": n}));
    }
    let mut client = ws(&daemon, "topics=stream/test/counter&since=0");
    let mut seen = Vec::new();
    for _ in 0..10 {
        let frame = next_json(&mut client);
        seen.push(frame["seq"].as_u64().unwrap());
    }
    drop(client);
    assert_eq!(daemon.proc.terminate(), Some(0));

    let daemon = Daemon::start_in(dir.path(), &config(""), &[]);
    for n in 30..60 {
        publish(&daemon, topic, json!({"n": n}));
    }
    // Resume while events keep coming, so the replay and the live feed overlap.
    let last = *seen.last().unwrap();
    let publishing = {
        let addr = http_addr(&daemon);
        std::thread::spawn(move || {
            for n in 60..300 {
                let body = json!({"topic": topic, "payload": {"n": n}}).to_string();
                let reply =
                    request_from(addr, LOCAL.into(), "POST", "/api/publish", &[], Some(&body));
                assert_eq!(reply.status, 202);
            }
        })
    };
    let mut client = ws(&daemon, &format!("topics=stream/test/counter&since={last}"));
    let mut resumed = Vec::new();
    loop {
        let frame = next_json(&mut client);
        resumed.push(frame["seq"].as_u64().unwrap());
        if frame["event"]["n"] == 299 {
            break;
        }
    }
    publishing.join().unwrap();
    seen.extend(&resumed);
    let expected = wait_for("every publish in the event log", || {
        let seqs = log_seqs(&daemon, topic, 0);
        (seqs.len() == 300).then_some(seqs)
    });
    assert_eq!(
        seen, expected,
        "every event once, in order, across the restart"
    );
}

#[test]
fn a_replay_larger_than_the_socket_buffers_arrives_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), &config(""), &[]);
    let topic = "stream/test/big";
    // 300 events of 32 KiB: 9.6 MB of replay, more than the socket buffers of loopback TCP
    // take at once, so the daemon's writes to this client are partial and must be resumed.
    let filler = "x".repeat(32 * 1024);
    let mut publisher = ws(&daemon, "topics=");
    for n in 0..300 {
        let frame = json!({"op": "publish", "topic": topic, "payload": {"n": n, "filler": filler}});
        send(&mut publisher, &frame.to_string());
    }
    for _ in 0..300 {
        until(&mut publisher, "a publish reply", |f| {
            f["op"] == "published"
        });
    }
    wait_for("every publish in the event log", || {
        (log_seqs(&daemon, topic, 0).len() == 300).then_some(())
    });
    let mut client = ws_connect_from(
        http_addr(&daemon),
        LOCAL.into(),
        "topics=stream/test/big&since=0",
        Some(4096),
    )
    .expect("WebSocket handshake");
    let numbers: Vec<u64> = (0..300)
        .map(|_| next_json(&mut client)["event"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (0..300).collect::<Vec<_>>());
    // The connection is still live after the replay.
    publish(&daemon, topic, json!({"n": 300}));
    assert_eq!(next_json(&mut client)["event"]["n"], 300);
}

#[test]
fn a_client_that_does_not_read_is_cut_off_and_never_slows_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), &config("client_queue = 16\n"), &[]);
    let addr = http_addr(&daemon);
    let topic = "stream/test/flood";
    // A small receive window makes the stalled client's socket fill sooner.
    let mut stalled = ws_connect_from(addr, LOCAL.into(), "topics=stream/test/%23", Some(4096))
        .expect("handshake");
    // Each reading client reports every seq it gets; the test publishes the next message only
    // once both have the previous one, so they never have more than one frame waiting, however
    // slow this machine is, while the stalled client's backlog grows by one per publish.
    let (got_tx, got_rx) = std::sync::mpsc::channel::<(usize, u64)>();
    let readers: Vec<_> = (0..2)
        .map(|index| {
            let mut reader = ws(&daemon, "topics=stream/test/%23");
            let got_tx = got_tx.clone();
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                loop {
                    let frame = next_json(&mut reader);
                    let seq = frame["seq"].as_u64().unwrap();
                    seqs.push(seq);
                    let _ = got_tx.send((index, seq));
                    if frame["event"]["last"] == true {
                        return seqs;
                    }
                }
            })
        })
        .collect();
    wait_clients(&daemon, 3);
    let mut received = [0usize; 2];
    let mut both_have = |count: usize| {
        while received.iter().any(|&n| n < count) {
            let (index, _) = got_rx
                .recv_timeout(PATIENCE)
                .expect("a reading client stopped receiving");
            received[index] += 1;
        }
    };

    let padding = "x".repeat(16 * 1024);
    let mut published = 0;
    let cut = loop {
        publish(&daemon, topic, json!({"n": published, "padding": padding}));
        published += 1;
        both_have(published);
        if published % 4 == 0 {
            let status = get(&daemon, "/api/status").json();
            if status["websocket"]["cut_off"] == 1 {
                break status;
            }
        }
        assert!(published < 1_000, "the stalled client was never cut off");
    };
    assert_eq!(cut["websocket"]["clients"], 2);
    // What a stalled client holds is bounded in the kernel too: its 16 frames, at most 128 KiB
    // unsent in the daemon's socket and its own 8 KiB window make about 25 publishes of 16 KiB.
    // Without that limit the autotuned send buffer grows to 4 MiB and takes hundreds.
    assert!(published <= 60, "cut off only after {published} publishes");
    publish(&daemon, topic, json!({"last": true}));

    let expected = wait_for("every publish in the event log", || {
        let seqs = log_seqs(&daemon, topic, 0);
        (seqs.len() == published + 1).then_some(seqs)
    });
    for reader in readers {
        assert_eq!(
            reader.join().unwrap(),
            expected,
            "a reading client got everything"
        );
    }

    // The stalled client finally reads: what was in flight, then the close frame.
    let close = loop {
        match stalled.read() {
            Ok(Message::Close(frame)) => break frame.expect("a close frame with a code"),
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(close.code, CloseCode::Policy);
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.reason.contains("too slow"), "{}", close.reason);
    assert!(close.reason.contains("since="), "{}", close.reason);
    let metrics = get(&daemon, "/metrics").body;
    assert!(
        metrics.contains("ongwatch_websocket_cut_off_total 1"),
        "{metrics}"
    );
}

#[test]
fn untrusted_addresses_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let remote: IpAddr = [127, 0, 0, 2].into();
    let daemon = Daemon::start_in(
        &dir.path().join("locked"),
        &config("token = \"s3cret\"\ntrusted = [\"127.0.0.1/32\"]\n"),
        &[],
    );
    let addr = http_addr(&daemon);
    let from_remote = |path: &str, headers: &[(&str, &str)]| {
        request_from(addr, remote, "GET", path, headers, None)
    };

    let refused = from_remote("/api/status", &[]);
    assert_eq!(refused.status, 401);
    assert!(refused.json()["error"].as_str().unwrap().contains("token"));
    assert_eq!(from_remote("/api/status?token=wrong", &[]).status, 401);
    assert_eq!(from_remote("/", &[]).status, 401);
    assert_eq!(from_remote("/metrics", &[]).status, 401);
    assert_eq!(from_remote("/api/status?token=s3cret", &[]).status, 200);
    assert_eq!(
        from_remote("/api/status", &[("Authorization", "Bearer s3cret")]).status,
        200
    );
    let body = json!({"topic": "stream/test/remote", "payload": {"ok": true}}).to_string();
    let posted = request_from(
        addr,
        remote,
        "POST",
        "/api/publish",
        &[("Authorization", "Bearer s3cret")],
        Some(&body),
    );
    assert_eq!(posted.status, 202);

    match ws_connect_from(addr, remote, "topics=%23", None) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("a WebSocket without the token must be refused: {other:?}"),
    }
    let mut client = ws_connect_from(
        addr,
        remote,
        "topics=stream/test/%23&since=0&token=s3cret",
        None,
    )
    .expect("with the token");
    assert_eq!(next_json(&mut client)["event"]["ok"], true);

    // Trusted addresses need no token, but a foreign web page or host name is refused.
    assert_eq!(get(&daemon, "/api/status").status, 200);
    let cross = request_from(
        addr,
        LOCAL.into(),
        "POST",
        "/api/publish",
        &[("Origin", "https://evil.example")],
        Some(&body),
    );
    assert_eq!(cross.status, 403);

    // No token configured: untrusted addresses are refused outright, with the fix.
    let open = Daemon::start_in(
        &dir.path().join("open"),
        &config("trusted = [\"127.0.0.1/32\"]\n"),
        &[],
    );
    let reply = request_from(
        http_addr(&open),
        remote,
        "GET",
        "/api/status?token=x",
        &[],
        None,
    );
    assert_eq!(reply.status, 401);
    let reply = request_from(http_addr(&open), remote, "GET", "/api/status", &[], None);
    assert_eq!(reply.status, 403);
    let error = reply.json()["error"].as_str().unwrap().to_owned();
    assert!(error.contains("[http] token is not set"), "{error}");
    assert!(error.contains("127.0.0.1/32"), "{error}");
}
