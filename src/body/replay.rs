//! The [`ReplayBody`] and the state its clones share.

use crate::BoxError;
use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

/// The default replay cap: 64 KiB of data frames.
pub const DEFAULT_CAP: usize = 64 * 1024;

/// A request body that records what the first attempt sends, so that a later attempt can
/// send the same data frames and trailers again.
///
/// Every clone shares one recording. The first clone that is polled streams the wrapped
/// body and records its data frames and trailers, up to `cap` bytes of data. After the
/// wrapped body has ended within the cap, every clone that is polled from the start replays
/// the recorded frames. A body that cannot be replayed is still sent once in full:
///
/// - a body whose [`size_hint`](Body::size_hint) lower bound exceeds the cap is streamed
///   without being recorded;
/// - a body that passes the cap while it streams drops its recording and goes on streaming;
/// - a body whose stream failed, or whose streaming clone was dropped before the end, keeps
///   no usable recording.
///
/// A clone polled while the body cannot be replayed returns a [`ReplayError`] instead of a
/// truncated, empty or duplicated body. [`Replayable`](super::Replayable) reads the shared
/// state through a [`ReplayHandle`] and never retries such a request, so a retry layer
/// never sends that error.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Full};
/// use tower_backoff::body::ReplayBody;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_backoff::BoxError> {
/// let first = ReplayBody::new(Full::new(Bytes::from_static(b"hello")));
/// let second = first.clone();
///
/// assert_eq!(first.collect().await?.to_bytes(), "hello");
/// assert!(second.handle().is_replayable());
/// assert_eq!(second.collect().await?.to_bytes(), "hello");
/// # Ok(())
/// # }
/// ```
pub struct ReplayBody<B> {
    recording: Arc<Recording>,
    source: Arc<Mutex<Option<Pin<Box<B>>>>>,
    role: Role,
}

/// What one clone does with the shared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Not polled yet: the role is chosen at the first poll.
    Idle,
    /// Streams the wrapped body and records it.
    Recording,
    /// Streams the wrapped body without recording it.
    Forwarding,
    /// Replays the recording. `next` is the index of the next data frame and `sent` the
    /// number of data bytes replayed so far.
    Replaying {
        next: usize,
        sent: usize,
        trailers_sent: bool,
    },
    /// Has returned its last frame or an error.
    Done,
}

/// How far the wrapped body has been read, for all clones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No clone has polled the wrapped body yet, so any clone can still send all of it.
    Unread,
    /// Like `Unread`, but the size hint exceeds the cap, so the body is never recorded.
    Oversized,
    /// One clone streams the wrapped body and records it.
    Recording,
    /// The wrapped body ended within the cap: every clone can replay it.
    Complete,
    /// One clone streams the wrapped body without recording it.
    Forwarding,
    /// The wrapped body was read but not recorded to its end, so it cannot be sent again.
    Spent,
}

/// The recording that all clones of one [`ReplayBody`] share.
#[derive(Debug)]
struct Recording {
    cap: usize,
    state: Mutex<RecordingState>,
}

#[derive(Debug)]
struct RecordingState {
    phase: Phase,
    frames: Vec<Bytes>,
    trailers: Option<HeaderMap>,
    /// The data bytes held in `frames`.
    buffered: usize,
    /// The largest value `buffered` has reached.
    max_buffered: usize,
    /// Whether the wrapped body's size hint was exact before the first poll. Replays keep an
    /// exact hint only in that case, so that every attempt uses the same HTTP/1.1 framing
    /// (`Content-Length` or chunked, which alone carries trailers).
    exact_size: bool,
}

impl Recording {
    fn lock(&self) -> MutexGuard<'_, RecordingState> {
        // The state stays consistent between statements, so a panic in another clone
        // leaves nothing half-written worth refusing.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RecordingState {
    /// Marks the recording as replayable, or as spent if it was abandoned.
    fn finish(&mut self) {
        if self.phase == Phase::Recording {
            self.phase = Phase::Complete;
        } else if self.phase == Phase::Forwarding {
            self.phase = Phase::Spent;
        }
    }

    /// Drops the recorded frames, because the body can no longer be replayed.
    fn spend(&mut self) {
        self.phase = Phase::Spent;
        self.frames = Vec::new();
        self.trailers = None;
        self.buffered = 0;
    }

    /// Records one data frame, or switches to forwarding when it would pass the cap.
    fn record_data(&mut self, data: &Bytes, cap: usize) {
        if self.phase != Phase::Recording {
            return;
        }

        let buffered = self.buffered.saturating_add(data.len());
        if buffered > cap {
            self.frames = Vec::new();
            self.buffered = 0;
            self.phase = Phase::Forwarding;
            return;
        }

        self.frames.push(data.clone());
        self.buffered = buffered;
        self.max_buffered = self.max_buffered.max(buffered);
    }
}

fn lock_source<B>(source: &Mutex<Option<Pin<Box<B>>>>) -> MutexGuard<'_, Option<Pin<Box<B>>>> {
    source.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B: Body> ReplayBody<B> {
    /// Wraps `body` with the default cap of 64 KiB.
    pub fn new(body: B) -> Self {
        Self::with_cap(body, DEFAULT_CAP)
    }

    /// Wraps `body`, recording at most `cap` bytes of data frames.
    pub fn with_cap(body: B, cap: usize) -> Self {
        let hint = body.size_hint();
        let oversized = usize::try_from(hint.lower()).map_or(true, |lower| lower > cap);
        let phase = if oversized {
            Phase::Oversized
        } else {
            Phase::Unread
        };

        let state = RecordingState {
            phase,
            frames: Vec::new(),
            trailers: None,
            buffered: 0,
            max_buffered: 0,
            exact_size: hint.exact().is_some(),
        };
        Self {
            recording: Arc::new(Recording {
                cap,
                state: Mutex::new(state),
            }),
            source: Arc::new(Mutex::new(Some(Box::pin(body)))),
            role: Role::Idle,
        }
    }
}

impl<B> ReplayBody<B> {
    /// Returns the maximum number of data bytes this body records.
    pub fn cap(&self) -> usize {
        self.recording.cap
    }

    /// Returns a handle to the state that this body shares with its clones.
    pub fn handle(&self) -> ReplayHandle {
        ReplayHandle {
            recording: Arc::clone(&self.recording),
        }
    }

    /// Chooses the role of this clone at its first poll.
    fn choose_role(&self) -> Result<Role, ReplayError> {
        let mut state = self.recording.lock();
        match state.phase {
            Phase::Unread => {
                state.phase = Phase::Recording;
                Ok(Role::Recording)
            }
            Phase::Oversized => {
                state.phase = Phase::Forwarding;
                Ok(Role::Forwarding)
            }
            Phase::Complete => Ok(Role::Replaying {
                next: 0,
                sent: 0,
                trailers_sent: false,
            }),
            Phase::Recording | Phase::Forwarding => Err(ReplayError::StillStreaming),
            Phase::Spent => Err(ReplayError::NotRecorded),
        }
    }

    /// Returns the next recorded frame, or `None` after the trailers.
    fn replay_frame(&mut self) -> Option<Frame<Bytes>> {
        let Role::Replaying {
            next,
            sent,
            trailers_sent,
        } = &mut self.role
        else {
            return None;
        };

        let state = self.recording.lock();
        if let Some(data) = state.frames.get(*next) {
            *next += 1;
            *sent += data.len();
            return Some(Frame::data(data.clone()));
        }
        if !*trailers_sent {
            *trailers_sent = true;
            if let Some(trailers) = &state.trailers {
                return Some(Frame::trailers(trailers.clone()));
            }
        }
        None
    }
}

impl<B> ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    /// Polls the wrapped body and records what it returns.
    fn poll_source(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut source = lock_source(&self.source);
        let Some(body) = source.as_mut() else {
            // The recording completed, or a clone was dropped mid-stream and took the wrapped
            // body with it.
            self.role = Role::Done;
            return Poll::Ready(None);
        };

        let polled = ready!(body.as_mut().poll_frame(cx));
        let at_end = body.is_end_stream();
        let mut state = self.recording.lock();

        let frame = match polled {
            None => {
                state.finish();
                *source = None;
                self.role = Role::Done;
                return Poll::Ready(None);
            }
            Some(Err(error)) => {
                state.spend();
                *source = None;
                self.role = Role::Done;
                return Poll::Ready(Some(Err(error.into())));
            }
            Some(Ok(frame)) => frame.map_data(|mut data| data.copy_to_bytes(data.remaining())),
        };

        if let Some(data) = frame.data_ref() {
            state.record_data(data, self.recording.cap);
            if state.phase == Phase::Forwarding && self.role == Role::Recording {
                tracing::debug!(
                    cap = self.recording.cap,
                    "request body passed the replay cap; it is sent once and not retried"
                );
                self.role = Role::Forwarding;
            }
        } else if let Some(trailers) = frame.trailers_ref() {
            if state.phase == Phase::Recording {
                state.trailers = Some(trailers.clone());
            }
        } else {
            // http-body 1 defines only data and trailers frames. A frame of any other kind
            // cannot be recorded, so the body is sent on but not replayed.
            state.spend();
        }

        // Trailers are the last frame of a body. hyper stops polling once `is_end_stream`
        // is true, so the recording must complete now rather than at a later `None`.
        // NOTE: hyper 1 also drops an HTTP/1.1 body without a final poll once it has
        // written `Content-Length` bytes. A body with an exact size hint that does not
        // report `is_end_stream` after its last data frame is therefore never complete
        // there, and its request is sent once.
        if frame.is_trailers() || at_end {
            state.finish();
            *source = None;
            self.role = Role::Done;
        }
        Poll::Ready(Some(Ok(frame)))
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();

        if this.role == Role::Idle {
            match this.choose_role() {
                Ok(role) => this.role = role,
                Err(error) => {
                    this.role = Role::Done;
                    return Poll::Ready(Some(Err(Box::new(error))));
                }
            }
        }

        match this.role {
            Role::Recording | Role::Forwarding => this.poll_source(cx),
            Role::Replaying { .. } => {
                let frame = this.replay_frame();
                if frame.is_none() {
                    this.role = Role::Done;
                }
                Poll::Ready(frame.map(Ok))
            }
            Role::Idle | Role::Done => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.role {
            Role::Done => true,
            Role::Replaying {
                next,
                trailers_sent,
                ..
            } => {
                let state = self.recording.lock();
                next >= state.frames.len() && (trailers_sent || state.trailers.is_none())
            }
            Role::Recording | Role::Forwarding => self.streaming_is_end_stream(),
            Role::Idle => self.idle_is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.role {
            Role::Done => SizeHint::with_exact(0),
            Role::Replaying { sent, .. } => {
                let state = self.recording.lock();
                replay_size_hint(&state, sent)
            }
            Role::Recording | Role::Forwarding => self.source_size_hint(),
            Role::Idle => {
                let state = self.recording.lock();
                match state.phase {
                    Phase::Complete => replay_size_hint(&state, 0),
                    Phase::Unread | Phase::Oversized => {
                        drop(state);
                        self.source_size_hint()
                    }
                    // This clone fails at its first poll. An exact hint of zero would let
                    // hyper send an empty body with `Content-Length: 0` and never poll it.
                    Phase::Recording | Phase::Forwarding | Phase::Spent => SizeHint::new(),
                }
            }
        }
    }
}

impl<B: Body> ReplayBody<B> {
    /// Whether the wrapped body has ended, for the streaming clone. A body can report its
    /// end without a final poll, and hyper then stops polling, so the recording completes
    /// here too.
    fn streaming_is_end_stream(&self) -> bool {
        let mut source = lock_source(&self.source);
        let Some(body) = source.as_ref() else {
            return true;
        };
        if !body.is_end_stream() {
            return false;
        }

        self.recording.lock().finish();
        *source = None;
        true
    }

    /// Whether a clone that has not been polled yet would return no frame.
    fn idle_is_end_stream(&self) -> bool {
        let source = lock_source(&self.source);
        let mut state = self.recording.lock();
        match state.phase {
            Phase::Complete => state.frames.is_empty() && state.trailers.is_none(),
            // A wrapped body that ends before its first poll is an empty body, which is
            // recorded completely by recording nothing.
            Phase::Unread => {
                let empty = source.as_ref().is_some_and(|body| body.is_end_stream());
                if empty {
                    state.phase = Phase::Complete;
                }
                empty
            }
            _ => false,
        }
    }

    fn source_size_hint(&self) -> SizeHint {
        let source = lock_source(&self.source);
        source
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |body| body.size_hint())
    }
}

fn replay_size_hint(state: &RecordingState, sent: usize) -> SizeHint {
    let remaining = u64::try_from(state.buffered.saturating_sub(sent)).unwrap_or(u64::MAX);
    if state.exact_size {
        return SizeHint::with_exact(remaining);
    }
    let mut hint = SizeHint::new();
    hint.set_lower(remaining);
    hint
}

impl<B> Clone for ReplayBody<B> {
    /// Returns a clone that starts at the beginning of the body, whatever this one has sent.
    fn clone(&self) -> Self {
        Self {
            recording: Arc::clone(&self.recording),
            source: Arc::clone(&self.source),
            role: Role::Idle,
        }
    }
}

impl<B> Drop for ReplayBody<B> {
    fn drop(&mut self) {
        if !matches!(self.role, Role::Recording | Role::Forwarding) {
            return;
        }

        // The streaming clone is gone before the end of the body, so what it recorded is a
        // prefix that must never be sent as a whole body.
        let mut state = self.recording.lock();
        if matches!(state.phase, Phase::Recording | Phase::Forwarding) {
            state.spend();
        }
        drop(state);

        // Dropping the wrapped body closes it, so that its producer, such as a channel
        // sender, stops producing.
        lock_source(&self.source).take();
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.recording.lock();
        f.debug_struct("ReplayBody")
            .field("cap", &self.recording.cap)
            .field("phase", &state.phase)
            .field("role", &self.role)
            .field("buffered_bytes", &state.buffered)
            .finish()
    }
}

/// A handle to the state that the clones of one [`ReplayBody`] share.
///
/// [`Replayable`](super::Replayable) keeps one per request to learn, after each attempt,
/// whether the body can be sent again.
#[derive(Debug, Clone)]
pub struct ReplayHandle {
    recording: Arc<Recording>,
}

impl ReplayHandle {
    /// Whether a clone polled now would send the whole body: either no clone has read the
    /// body yet, or it ended within the cap and was recorded.
    ///
    /// A body whose size hint exceeds the cap is never replayable.
    pub fn is_replayable(&self) -> bool {
        let state = self.recording.lock();
        matches!(state.phase, Phase::Unread | Phase::Complete)
    }

    /// Whether the body ended within the cap and was recorded.
    pub fn is_complete(&self) -> bool {
        self.recording.lock().phase == Phase::Complete
    }

    /// The data bytes recorded now.
    pub fn buffered_bytes(&self) -> usize {
        self.recording.lock().buffered
    }

    /// The largest number of data bytes the recording has held. It never exceeds the cap.
    pub fn max_buffered_bytes(&self) -> usize {
        self.recording.lock().max_buffered
    }

    /// Returns the maximum number of data bytes the body records.
    pub fn cap(&self) -> usize {
        self.recording.cap
    }
}

/// The error a [`ReplayBody`] clone returns when it cannot send the whole body.
///
/// A retry layer with [`Replayable`](super::Replayable) never starts an attempt that would
/// return it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayError {
    /// Another clone is still streaming the wrapped body.
    StillStreaming,
    /// The wrapped body was read but not recorded to its end: it passed the cap, failed, or
    /// its streaming clone was dropped early.
    NotRecorded,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::StillStreaming => {
                f.write_str("request body cannot be replayed: another attempt is still sending it")
            }
            ReplayError::NotRecorded => f.write_str(
                "request body cannot be replayed: it was not recorded to its end \
                 (it passed the replay cap, failed, or its attempt stopped early)",
            ),
        }
    }
}

impl std::error::Error for ReplayError {}
