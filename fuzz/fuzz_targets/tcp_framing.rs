//! TCP length framing against a model: the stream fed in arbitrary chunks gives exactly
//! the frames (and the first length error) that reading it in one go gives.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tunbox::tunnel::{FrameDecoder, FrameError};

/// The model: frames of the whole stream, then the error that stops it, if any.
fn model(stream: &[u8], max: usize) -> (Vec<&[u8]>, Option<FrameError>) {
    let mut frames = Vec::new();
    let mut at = 0;
    while stream.len() - at >= 2 {
        let len = usize::from(u16::from_be_bytes([stream[at], stream[at + 1]]));
        if len == 0 {
            return (frames, Some(FrameError::ZeroLength));
        }
        if len > max {
            return (frames, Some(FrameError::TooLong { len, max }));
        }
        if stream.len() - at - 2 < len {
            break;
        }
        frames.push(&stream[at + 2..at + 2 + len]);
        at += 2 + len;
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = usize::from(u16::from_be_bytes([data[0], data[1]])).clamp(1, 65535);
    let chunk = usize::from(data[2]).max(1);
    let stream = &data[3..];
    let (want, want_err) = model(stream, max);
    let mut dec = FrameDecoder::new(max);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut err = None;
    let mut at = 0;
    'feed: while at < stream.len() {
        let space = dec.space();
        assert!(!space.is_empty());
        let n = space.len().min(chunk).min(stream.len() - at);
        space[..n].copy_from_slice(&stream[at..at + n]);
        dec.filled(n);
        at += n;
        loop {
            match dec.next_frame() {
                Ok(Some(f)) => got.push(f.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break 'feed;
                }
            }
        }
    }
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(&g[..], *w);
    }
    assert_eq!(err, want_err);
});
