//! Stream framing for the TCP transport: every message is preceded by its length as
//! 2 bytes, big-endian (simpletun's framing, so `--plaintext --transport tcp` talks to
//! simpletun). Robust to partial reads and writes; a length of zero or longer than the
//! buffer is an error that closes the connection.
//!
//! Both halves own one buffer made at construction and never allocate afterwards.

/// Size of the length prefix.
pub const LEN_PREFIX: usize = 2;

/// A hostile or broken length prefix. The connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    ZeroLength,
    TooLong { len: usize, max: usize },
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ZeroLength => write!(f, "frame length 0"),
            Self::TooLong { len, max } => write!(f, "frame length {len} exceeds the maximum {max}"),
        }
    }
}

/// Receive side: read bytes from the stream into [`FrameDecoder::space`], report them
/// with [`FrameDecoder::filled`], then take complete frames with
/// [`FrameDecoder::next_frame`].
pub struct FrameDecoder {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    max_frame: usize,
}

impl FrameDecoder {
    /// `max_frame`: the largest payload accepted (1..=65535). The buffer holds a few
    /// frames so that one `read` can take several.
    pub fn new(max_frame: usize) -> Self {
        let max_frame = max_frame.clamp(1, u16::MAX as usize);
        let cap = (4 * (LEN_PREFIX + max_frame)).max(16 * 1024);
        Self {
            buf: vec![0u8; cap].into_boxed_slice(),
            start: 0,
            end: 0,
            max_frame,
        }
    }

    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Free space to read into; never empty (a full frame always fits after the
    /// buffered bytes are moved to the front).
    pub fn space(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < LEN_PREFIX + self.max_frame {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were written into the slice from [`FrameDecoder::space`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let avail = self.end - self.start;
        if avail < LEN_PREFIX {
            return Ok(None);
        }
        let len = u16::from_be_bytes([self.buf[self.start], self.buf[self.start + 1]]) as usize;
        if len == 0 {
            return Err(FrameError::ZeroLength);
        }
        if len > self.max_frame {
            return Err(FrameError::TooLong {
                len,
                max: self.max_frame,
            });
        }
        if avail < LEN_PREFIX + len {
            return Ok(None);
        }
        let from = self.start + LEN_PREFIX;
        self.start = from + len;
        Ok(Some(&self.buf[from..from + len]))
    }

    /// Forget everything (new connection).
    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

/// Send side: a fixed queue of framed messages waiting for the socket.
/// Put a message with [`StreamTx::slot`] + [`StreamTx::commit`], write
/// [`StreamTx::pending`] to the socket and report progress with [`StreamTx::consume`].
pub struct StreamTx {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl StreamTx {
    /// `capacity`: bytes queued at most (like a socket send buffer).
    pub fn new(capacity: usize) -> Self {
        Self {
            buf: vec![0u8; capacity.max(LEN_PREFIX + 1)].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Space for one message of up to `max_len` bytes (the length prefix is reserved in
    /// front of it), or `None` if the queue cannot take it now.
    pub fn slot(&mut self, max_len: usize) -> Option<&mut [u8]> {
        let max_len = max_len.min(u16::MAX as usize);
        let need = LEN_PREFIX + max_len;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end < need {
            if self.buf.len() - (self.end - self.start) < need {
                return None;
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let from = self.end + LEN_PREFIX;
        Some(&mut self.buf[from..from + max_len])
    }

    /// The message written into the last [`StreamTx::slot`] is `len` bytes long
    /// (1..=slot size). A zero length is ignored: it would be a fatal frame for the peer.
    pub fn commit(&mut self, len: usize) {
        if len == 0 || len > u16::MAX as usize || self.end + LEN_PREFIX + len > self.buf.len() {
            return;
        }
        self.buf[self.end..self.end + LEN_PREFIX].copy_from_slice(&(len as u16).to_be_bytes());
        self.end += LEN_PREFIX + len;
    }

    /// Convenience: queue a copy of `msg`. False if it does not fit now (or is empty).
    pub fn push(&mut self, msg: &[u8]) -> bool {
        if msg.is_empty() {
            return false;
        }
        match self.slot(msg.len()) {
            Some(s) => {
                s[..msg.len()].copy_from_slice(msg);
                self.commit(msg.len());
                true
            }
            None => false,
        }
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// `n` bytes of [`StreamTx::pending`] were written.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Replace the queue's content with `other`'s pending bytes (already framed, maybe
    /// partly written), e.g. when a connection moves to a slot with a bigger queue.
    /// False (and empty) if they do not fit.
    pub fn replace_with(&mut self, other: &StreamTx) -> bool {
        self.reset();
        let p = other.pending();
        if p.len() > self.buf.len() {
            return false;
        }
        self.buf[..p.len()].copy_from_slice(p);
        self.end = p.len();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(d: &mut FrameDecoder, bytes: &[u8]) {
        let s = d.space();
        s[..bytes.len()].copy_from_slice(bytes);
        d.filled(bytes.len());
    }

    fn frames(msgs: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for m in msgs {
            v.extend_from_slice(&(m.len() as u16).to_be_bytes());
            v.extend_from_slice(m);
        }
        v
    }

    #[test]
    fn byte_by_byte() {
        let msgs: [&[u8]; 3] = [b"hello", &[0xAA; 1500], b"x"];
        let wire = frames(&msgs);
        let mut d = FrameDecoder::new(2000);
        let mut got: Vec<Vec<u8>> = Vec::new();
        for b in &wire {
            feed(&mut d, &[*b]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f.to_vec());
            }
        }
        assert_eq!(got.len(), 3);
        for (g, m) in got.iter().zip(msgs.iter()) {
            assert_eq!(&g[..], *m);
        }
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn many_frames_in_one_read_and_split_header() {
        let mut msgs: Vec<Vec<u8>> = Vec::new();
        for i in 0..200u32 {
            msgs.push(vec![i as u8; 1 + (i as usize * 37) % 1400]);
        }
        let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
        let wire = frames(&refs);
        let mut d = FrameDecoder::new(1500);
        let mut got = Vec::new();
        // Odd chunk sizes so that headers and bodies are split everywhere.
        let mut pos = 0;
        let mut step = 1;
        while pos < wire.len() {
            let room = d.space().len();
            let n = step.min(wire.len() - pos).min(room);
            feed(&mut d, &wire[pos..pos + n]);
            pos += n;
            step = step * 7 % 3001 + 1;
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f.to_vec());
            }
        }
        assert_eq!(got, msgs);
    }

    #[test]
    fn zero_length_is_an_error() {
        let mut d = FrameDecoder::new(1500);
        feed(&mut d, &[0, 0, 1, 2]);
        assert_eq!(d.next_frame(), Err(FrameError::ZeroLength));
    }

    #[test]
    fn too_long_is_an_error_before_the_body_arrives() {
        let mut d = FrameDecoder::new(1500);
        feed(&mut d, &[0x05]);
        assert_eq!(d.next_frame(), Ok(None));
        feed(&mut d, &[0xDD]);
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLong {
                len: 0x05DD,
                max: 1500
            })
        );
        let mut d = FrameDecoder::new(1500);
        feed(&mut d, &[0xFF, 0xFF]);
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLong {
                len: 65535,
                max: 1500
            })
        );
        // Exactly the maximum is fine.
        let mut d = FrameDecoder::new(1500);
        let wire = frames(&[&[7u8; 1500]]);
        feed(&mut d, &wire);
        assert_eq!(d.next_frame().unwrap().unwrap().len(), 1500);
    }

    #[test]
    fn space_never_empty_and_buffer_reused() {
        let mut d = FrameDecoder::new(100);
        let wire = frames(&[&[1u8; 100][..]; 1000]);
        let mut pos = 0;
        let mut count = 0;
        let base = d.buf.as_ptr();
        while pos < wire.len() {
            let s = d.space();
            assert!(!s.is_empty());
            let n = s.len().min(wire.len() - pos).min(333);
            s[..n].copy_from_slice(&wire[pos..pos + n]);
            d.filled(n);
            pos += n;
            while let Some(f) = d.next_frame().unwrap() {
                assert_eq!(f, &[1u8; 100][..]);
                count += 1;
            }
        }
        assert_eq!(count, 1000);
        assert_eq!(base, d.buf.as_ptr());
    }

    #[test]
    fn tx_partial_writes_round_trip() {
        let mut tx = StreamTx::new(4096);
        let mut d = FrameDecoder::new(1500);
        let mut sent = Vec::new();
        let mut got = Vec::new();
        let mut i = 0u32;
        while got.len() < 300 {
            // Queue while there is room.
            while sent.len() < 300 {
                let len = 1 + (i as usize * 131) % 1500;
                let Some(s) = tx.slot(len) else { break };
                s[..len].fill(i as u8);
                tx.commit(len);
                sent.push(vec![i as u8; len]);
                i += 1;
            }
            // The "socket" takes an odd amount.
            let n = tx.pending().len().min(1 + (i as usize * 17) % 900);
            let chunk = tx.pending()[..n].to_vec();
            tx.consume(n);
            feed(&mut d, &chunk);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f.to_vec());
            }
        }
        assert_eq!(got, sent);
        assert!(tx.is_empty());
    }

    #[test]
    fn tx_full_refuses_instead_of_growing() {
        let mut tx = StreamTx::new(100);
        assert!(tx.push(&[1; 60]));
        assert!(!tx.push(&[2; 60]));
        assert!(!tx.push(&[]));
        tx.consume(10);
        assert!(!tx.push(&[2; 60]));
        tx.consume(52);
        assert!(tx.is_empty());
        assert!(tx.push(&[2; 60]));
        assert_eq!(&tx.pending()[..2], &[0, 60]);
    }
}
