//! One `/ws/events` connection's sending side, shared by the fan-out and the connection's task.
//!
//! Server frames are not masked (RFC 6455 §5.1), so a frame's bytes are the same for every
//! client: the fan-out frames each batch once per filter set and hands every client the same
//! `Bytes`. When nothing of a client is waiting, the fan-out writes the batch to its socket
//! itself, without blocking; only what the socket does not take at once is queued for the
//! connection's task, which waits until the socket drains. A round over 1,000 clients is then
//! 1,000 `write`s and no task wake-ups. Every write happens under one lock, queued bytes first,
//! and a queued chunk is always whole frames, so frames never interleave or split.
//!
//! The queue is bounded in event frames (`[http] client_queue`): a client with more waiting is
//! cut off with close code 1008 and the seq to reconnect from; the connection's task gives it
//! `CLOSE_GRACE` to take what is in flight and the close frame.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame as WsFrame, FrameHeader};

use super::fanout::{Batch, Frame, lock};

/// How long a client that was cut off or told to go away gets to take its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// Close code 1008, policy violation: the client reads too slowly.
const CLOSE_TOO_SLOW: u16 = 1008;
/// Close code 1001, going away: the daemon is shutting down.
const CLOSE_GOING_AWAY: u16 = 1001;

/// The socket's writing half.
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// `payloads` as consecutive unmasked, final text frames.
pub fn text_frames<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    let mut out = Vec::new();
    for payload in payloads {
        // Formatting into a Vec cannot fail.
        let _ = header.format(payload.len() as u64, &mut out);
        out.extend_from_slice(payload);
    }
    Bytes::from(out)
}

fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut out = Vec::new();
    let frame = WsFrame::close(Some(CloseFrame {
        code: code.into(),
        reason: reason.into(),
    }));
    let _ = frame.format(&mut out);
    Bytes::from(out)
}

/// Bytes waiting for the socket: whole frames, possibly partly written.
struct Chunk {
    bytes: Bytes,
    /// Event frames in it.
    frames: usize,
    /// Live frames, counted against the client's queue bound (replayed lines and replies are
    /// paced by [`Conn::send`] instead).
    live: bool,
    /// Seq of its last event frame, if it has one.
    last_seq: Option<u64>,
    /// Nothing of it is written yet, so a close frame may still take its place.
    untouched: bool,
}

impl Chunk {
    fn new(bytes: Bytes, frames: usize, last_seq: Option<u64>, live: bool) -> Self {
        Self {
            bytes,
            frames,
            live,
            last_seq,
            untouched: true,
        }
    }

    fn live(bytes: Bytes, frames: usize, last_seq: Option<u64>) -> Self {
        Self::new(bytes, frames, last_seq, true)
    }

    fn control(bytes: Bytes) -> Self {
        Self::new(bytes, 0, None, false)
    }

    /// What it adds to the frames counted against the bound.
    fn bounded(&self) -> usize {
        if self.live { self.frames } else { 0 }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Open,
    /// The client sent a close frame: no more events, but tungstenite's reply goes out.
    PeerClosing,
    /// The close frame is queued; the connection ends once it is written.
    Closing,
    /// The socket failed or the client went away: nothing more is written.
    Gone,
}

/// What became of live frames handed to a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// More than the bound were waiting: the client is being cut off.
    CutOff,
    /// The connection is closing or gone.
    Closed,
}

/// How a connection ended, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    ClientGone,
    /// Cut off for reading too slowly; the client has every frame up to `last_sent`.
    CutOff {
        last_sent: u64,
    },
    Closed,
}

struct Out {
    io: Writer,
    state: State,
    queue: VecDeque<Chunk>,
    queued_frames: usize,
    /// Live batches that arrive while the replay runs; `None` once live.
    held: Option<Vec<Batch>>,
    held_frames: usize,
    /// Seq of the last event frame written whole.
    written_seq: u64,
    cut_after: Option<u64>,
    /// Chunks queued and written so far: [`Conn::send`] waits for its own chunk only.
    queued_chunks: u64,
    written_chunks: u64,
    /// Someone waits in [`Conn::send`].
    flush_waiters: bool,
}

impl Out {
    fn waiting(&self) -> usize {
        self.queued_frames + self.held_frames
    }
}

pub struct Conn {
    out: Mutex<Out>,
    limit: usize,
    /// The fan-out's count of event frames written to any client.
    sent: Arc<AtomicU64>,
    /// Wakes the connection's task: bytes wait for the socket, or the state changed.
    wake: Notify,
    /// Wakes [`Conn::send`]: a chunk was written or the connection is ending.
    flushed: Notify,
}

impl Conn {
    /// A connection that holds live frames until [`Conn::go_live`] (after any replay).
    /// `limit` bounds the event frames waiting; `since` is where the client says it is.
    pub fn new(io: Writer, limit: usize, sent: Arc<AtomicU64>, since: u64) -> Self {
        Self {
            out: Mutex::new(Out {
                io,
                state: State::Open,
                queue: VecDeque::new(),
                queued_frames: 0,
                held: Some(Vec::new()),
                held_frames: 0,
                written_seq: since,
                cut_after: None,
                queued_chunks: 0,
                written_chunks: 0,
                flush_waiters: false,
            }),
            limit,
            sent,
            wake: Notify::new(),
            flushed: Notify::new(),
        }
    }

    /// Live frames from the fan-out (`framed` is `batch` as WebSocket frames): held during the
    /// replay, otherwise written at once when nothing else is waiting.
    pub fn push_live(&self, batch: &Batch, framed: &Bytes) -> Push {
        let mut out = lock(&self.out);
        if out.state != State::Open {
            return Push::Closed;
        }
        if out.waiting() + batch.len() > self.limit {
            self.cut(&mut out);
            return Push::CutOff;
        }
        if let Some(held) = &mut out.held {
            held.push(batch.clone());
            out.held_frames += batch.len();
            return Push::Queued;
        }
        let last_seq = batch.last().map(|frame| frame.seq);
        self.enqueue(&mut out, Chunk::live(framed.clone(), batch.len(), last_seq));
        Push::Queued
    }

    /// Ends the replay: the held live frames after `last_sent` go out next, then the live feed.
    pub fn go_live(&self, last_sent: u64) {
        let mut out = lock(&self.out);
        let Some(held) = out.held.take() else {
            return;
        };
        out.held_frames = 0;
        if out.state != State::Open {
            return;
        }
        let frames: Vec<&Frame> = held
            .iter()
            .flat_map(|batch| batch.iter())
            .filter(|frame| frame.seq > last_sent)
            .collect();
        if let Some(last) = frames.last() {
            let bytes = text_frames(frames.iter().map(|frame| &frame.text[..]));
            self.enqueue(&mut out, Chunk::live(bytes, frames.len(), Some(last.seq)));
        }
    }

    /// Sends frames outside the live feed (replayed lines, replies) and waits until the socket
    /// took them: the replay goes at the client's pace, and a client that sends faster than it
    /// reads stops being read. `false` once the connection is ending.
    pub async fn send(&self, bytes: Bytes, frames: usize, last_seq: Option<u64>) -> bool {
        let ticket = {
            let mut out = lock(&self.out);
            if out.state != State::Open {
                return false;
            }
            self.enqueue(&mut out, Chunk::new(bytes, frames, last_seq, false));
            out.queued_chunks
        };
        self.written(ticket).await
    }

    /// Waits until everything queued so far is written, or the connection is ending. The
    /// reading side waits here before each client frame, so a client that does not read is
    /// not read either (its pongs and replies cannot pile up).
    pub async fn drained(&self) {
        let ticket = lock(&self.out).queued_chunks;
        self.written(ticket).await;
    }

    async fn written(&self, ticket: u64) -> bool {
        loop {
            let flushed = self.flushed.notified();
            tokio::pin!(flushed);
            flushed.as_mut().enable();
            {
                let mut out = lock(&self.out);
                if out.state != State::Open {
                    return false;
                }
                if out.written_chunks >= ticket {
                    return true;
                }
                out.flush_waiters = true;
            }
            flushed.await;
        }
    }

    /// Sends a close frame after the frame being written, and nothing after it.
    pub fn close(&self, code: u16, reason: &str) {
        let mut out = lock(&self.out);
        if matches!(out.state, State::Open | State::PeerClosing) {
            self.close_locked(&mut out, code, reason);
        }
    }

    /// The daemon is shutting down: close 1001 after the frame being written.
    pub fn close_going_away(&self) {
        self.close(CLOSE_GOING_AWAY, "ongwatch is shutting down");
    }

    /// The client sent a close frame: no more events go out, tungstenite's reply still does.
    pub fn peer_closing(&self) {
        let mut out = lock(&self.out);
        if out.state == State::Open {
            out.state = State::PeerClosing;
            drop_untouched(&mut out);
            self.ending();
        }
    }

    /// The reading side ended: after a close handshake the connection ends once the reply is
    /// written; without one the client is gone.
    pub fn reader_done(&self) {
        let mut out = lock(&self.out);
        match out.state {
            State::PeerClosing => {
                out.state = State::Closing;
                self.ending();
            }
            State::Open => self.gone(&mut out),
            State::Closing | State::Gone => {}
        }
    }

    /// Event frames waiting for this client (queued or held), for `/metrics`.
    pub fn waiting(&self) -> usize {
        lock(&self.out).waiting()
    }

    /// Writes what the fan-out could not, until the connection ends.
    pub async fn run(&self) -> End {
        let mut woken = Box::pin(self.wake.notified());
        let mut grace: Option<Pin<Box<tokio::time::Sleep>>> = None;
        poll_fn(|cx| {
            loop {
                let mut out = lock(&self.out);
                let written = self.write_queued(&mut out, cx);
                if let Poll::Ready(Err(_)) = written {
                    self.gone(&mut out);
                }
                let cut = out.cut_after.map(|last_sent| End::CutOff { last_sent });
                match (out.state, written) {
                    (State::Gone, _) => return Poll::Ready(End::ClientGone),
                    (State::Closing, Poll::Ready(_)) => {
                        return Poll::Ready(cut.unwrap_or(End::Closed));
                    }
                    _ => {}
                }
                if out.state != State::Open {
                    let grace =
                        grace.get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_GRACE)));
                    if grace.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(cut.unwrap_or(End::ClientGone));
                    }
                }
                drop(out);
                // Wait for more bytes or a change of state (the socket's readiness is registered
                // by the write above when it is full).
                match woken.as_mut().poll(cx) {
                    Poll::Ready(()) => woken.set(self.wake.notified()),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await
    }

    /// Queues `chunk` and writes what the socket takes now; the rest is the task's.
    fn enqueue(&self, out: &mut Out, chunk: Chunk) {
        let idle = out.queue.is_empty();
        out.queued_chunks += 1;
        out.queued_frames += chunk.bounded();
        out.queue.push_back(chunk);
        if idle {
            // A no-op waker: if the socket is full, the connection's task takes over and
            // registers its own.
            let mut cx = Context::from_waker(Waker::noop());
            match self.write_queued(out, &mut cx) {
                Poll::Ready(Ok(())) => return,
                Poll::Ready(Err(_)) => self.gone(out),
                Poll::Pending => {}
            }
        }
        self.wake.notify_one();
    }

    /// Writes queued chunks until the queue is empty or the socket is full.
    fn write_queued(&self, out: &mut Out, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if out.state == State::Gone {
            return Poll::Ready(Ok(()));
        }
        while let Some(front) = out.queue.front_mut() {
            let written = match Pin::new(&mut out.io).poll_write(cx, &front.bytes) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            front.bytes.advance(written);
            front.untouched = false;
            if front.bytes.is_empty() {
                out.queued_frames -= front.bounded();
                if let Some(seq) = front.last_seq {
                    out.written_seq = seq;
                }
                self.sent.fetch_add(front.frames as u64, Ordering::Relaxed);
                out.queue.pop_front();
                out.written_chunks += 1;
                if std::mem::take(&mut out.flush_waiters) {
                    self.flushed.notify_waiters();
                }
            }
        }
        // Sockets do not buffer; this keeps any writer that does honest.
        Pin::new(&mut out.io).poll_flush(cx)
    }

    /// Cuts a client off that has too much waiting.
    fn cut(&self, out: &mut Out) {
        // A partly written chunk is finished before the close frame, so the client will have
        // everything up to its last frame.
        let last_sent = out
            .queue
            .front()
            .filter(|chunk| !chunk.untouched)
            .and_then(|chunk| chunk.last_seq)
            .unwrap_or(out.written_seq);
        out.cut_after = Some(last_sent);
        let reason = format!(
            "too slow: more than {} events waiting; reconnect with since={last_sent}",
            self.limit
        );
        self.close_locked(out, CLOSE_TOO_SLOW, &reason);
    }

    fn close_locked(&self, out: &mut Out, code: u16, reason: &str) {
        drop_untouched(out);
        out.state = State::Closing;
        self.enqueue(out, Chunk::control(close_frame(code, reason)));
        self.ending();
    }

    /// The socket failed or the client went without a close: nothing more is written.
    fn gone(&self, out: &mut Out) {
        out.state = State::Gone;
        drop_untouched(out);
        self.ending();
    }

    fn ending(&self) {
        self.wake.notify_one();
        self.flushed.notify_waiters();
    }

    /// Frames tungstenite writes itself on the reading side: pongs, the reply to a close.
    fn push_control(&self, bytes: &[u8]) {
        let mut out = lock(&self.out);
        if !matches!(out.state, State::Open | State::PeerClosing) {
            return;
        }
        self.enqueue(&mut out, Chunk::control(Bytes::copy_from_slice(bytes)));
        // After the client's close, tungstenite's next write is its reply: nothing may follow
        // it, not even a close of our own.
        if out.state == State::PeerClosing {
            out.state = State::Closing;
            self.ending();
        }
    }
}

/// Drops the held and queued frames nothing of which is written yet; a chunk being written is
/// kept, as a frame cut in half would corrupt the stream.
fn drop_untouched(out: &mut Out) {
    out.held = None;
    out.held_frames = 0;
    let started = out.queue.pop_front().filter(|chunk| !chunk.untouched);
    out.queue.clear();
    out.queued_frames = 0;
    if let Some(chunk) = started {
        out.queued_frames = chunk.bounded();
        out.queue.push_back(chunk);
    }
}

/// The socket as tungstenite's reading side sees it: reads come from the socket, and what
/// tungstenite writes (pongs, close replies) joins the connection's queue in order.
pub struct ReadSide<R> {
    pub read: R,
    pub conn: Arc<Conn>,
}

impl<R: AsyncRead + Unpin> AsyncRead for ReadSide<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<R: Unpin> AsyncWrite for ReadSide<R> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // tungstenite hands over whole frames, and the queue takes them whole.
        self.conn.push_control(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Text payloads and close codes (`close N`) of unmasked frames, in order.
#[cfg(test)]
pub(crate) fn parse_frames(mut bytes: &[u8]) -> Vec<String> {
    let mut seen = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, head) = match bytes[1] & 0x7f {
            126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            n => (usize::from(n), 2),
        };
        let payload = &bytes[head..head + len];
        seen.push(match opcode {
            8 => format!("close {}", u16::from_be_bytes([payload[0], payload[1]])),
            _ => String::from_utf8_lossy(payload).into_owned(),
        });
        bytes = &bytes[head + len..];
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn batch(seqs: &[u64]) -> (Batch, Bytes) {
        let frames: Batch = seqs
            .iter()
            .map(|seq| Frame {
                seq: *seq,
                text: Bytes::from(format!("{{\"seq\":{seq}}}")),
            })
            .collect();
        let bytes = text_frames(frames.iter().map(|frame| &frame.text[..]));
        (frames, bytes)
    }

    #[tokio::test]
    async fn holds_live_frames_through_the_replay_then_writes_in_order() {
        let (writer, mut client) = tokio::io::duplex(1 << 16);
        let sent = Arc::new(AtomicU64::new(0));
        let conn = Arc::new(Conn::new(Box::new(writer), 16, sent.clone(), 0));
        let (live, live_bytes) = batch(&[4, 5, 6]);
        assert_eq!(conn.push_live(&live, &live_bytes), Push::Queued);
        // The replay went up to 4; the held 4 is not sent twice.
        for seq in 1..=4 {
            let line = format!("{{\"seq\":{seq}}}");
            assert!(
                conn.send(text_frames([line.as_bytes()]), 1, Some(seq))
                    .await
            );
        }
        conn.go_live(4);
        let (next, next_bytes) = batch(&[7]);
        assert_eq!(conn.push_live(&next, &next_bytes), Push::Queued);
        conn.close(1001, "bye");
        assert_eq!(conn.run().await, End::Closed);
        drop(conn);
        let mut bytes = Vec::new();
        client.read_to_end(&mut bytes).await.unwrap();
        let seqs: Vec<String> = (1..=7).map(|seq| format!("{{\"seq\":{seq}}}")).collect();
        let mut expected = seqs;
        expected.push("close 1001".into());
        assert_eq!(parse_frames(&bytes), expected);
        assert_eq!(sent.load(Ordering::Relaxed), 7);
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut_off_after_whole_frames() {
        // A pipe that takes a little over one batch: the rest waits in the queue.
        let (writer, mut client) = tokio::io::duplex(64);
        let conn = Arc::new(Conn::new(
            Box::new(writer),
            4,
            Arc::new(AtomicU64::new(0)),
            0,
        ));
        conn.go_live(0);
        let mut pushed = Vec::new();
        for seq in 1..=20 {
            let (live, bytes) = batch(&[seq]);
            pushed.push(conn.push_live(&live, &bytes));
        }
        assert!(pushed.contains(&Push::CutOff), "{pushed:?}");
        assert_eq!(pushed.last(), Some(&Push::Closed));
        // The task holds the only reference, so the pipe ends with it.
        let run = tokio::spawn(async move { conn.run().await });
        let mut bytes = Vec::new();
        client.read_to_end(&mut bytes).await.unwrap();
        let End::CutOff { last_sent } = run.await.unwrap() else {
            panic!("cut off")
        };
        let seen = parse_frames(&bytes);
        assert_eq!(seen.last().map(String::as_str), Some("close 1008"));
        let events: Vec<String> = (1..=last_sent)
            .map(|seq| format!("{{\"seq\":{seq}}}"))
            .collect();
        assert_eq!(
            seen[..seen.len() - 1],
            events[..],
            "whole frames up to since"
        );
    }
}
