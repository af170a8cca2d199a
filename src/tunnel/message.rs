//! Typed views of the tunnel's messages: each datagram/frame is parsed once, here, and
//! the handlers get a view whose length and fixed fields are already checked.
use super::counters::DropReason;
use super::noise;

/// An initiation of exactly [`noise::INIT_LEN`] bytes (Noise part and mac1).
#[derive(Clone, Copy)]
pub struct Init<'a> {
    bytes: &'a [u8; noise::INIT_LEN],
}

impl<'a> Init<'a> {
    /// Size checks of an INIT (type already known): protocol version 1 (no mac1) is
    /// the other version, shorter is short, longer is malformed.
    pub fn parse(msg: &'a [u8]) -> Result<Self, DropReason> {
        if msg.len() == noise::INIT_LEN_V1 {
            return Err(DropReason::HandshakeMismatch);
        }
        if msg.len() < noise::INIT_LEN {
            return Err(DropReason::Short);
        }
        let bytes = msg.try_into().map_err(|_| DropReason::BadHeader)?;
        Ok(Self { bytes })
    }

    /// The whole message.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The mac1 field.
    pub fn mac1(&self) -> [u8; noise::MAC1_LEN] {
        let mut m = [0u8; noise::MAC1_LEN];
        m.copy_from_slice(&self.bytes[noise::INIT_NOISE_LEN..]);
        m
    }
}

/// A response of at least [`noise::RESP_LEN`] bytes; `exact` tells whether it has the
/// right size (a longer one is malformed, but only once it is known to be expected).
#[derive(Clone, Copy)]
pub struct Resp<'a> {
    bytes: &'a [u8],
    /// The receiver index (the initiator's local index) if the size is exact.
    pub receiver: Option<u32>,
}

impl<'a> Resp<'a> {
    pub fn parse(msg: &'a [u8]) -> Result<Self, DropReason> {
        if msg.len() < noise::RESP_LEN {
            return Err(DropReason::Short);
        }
        Ok(Self {
            bytes: msg,
            receiver: noise::Initiator::resp_receiver(msg),
        })
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn exact(&self) -> bool {
        self.bytes.len() == noise::RESP_LEN
    }
}

/// A data message: header and tag present.
#[derive(Clone, Copy)]
pub struct Data<'a> {
    bytes: &'a [u8],
    pub receiver: u32,
    pub counter: u64,
}

impl<'a> Data<'a> {
    pub fn parse(msg: &'a [u8]) -> Result<Self, DropReason> {
        let h = noise::data_header(msg).ok_or(DropReason::Short)?;
        Ok(Self {
            bytes: msg,
            receiver: h.receiver,
            counter: h.counter,
        })
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Length of the packet inside.
    pub fn payload_len(&self) -> usize {
        self.bytes.len() - noise::DATA_OVERHEAD
    }
}

/// The kind of a message, from its 4-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Init,
    Resp,
    Data,
}

/// Read the header: the kind, or why the message is dropped.
pub fn kind(msg: &[u8]) -> Result<Kind, DropReason> {
    match noise::message_type(msg) {
        None if msg.len() < 4 => Err(DropReason::Short),
        Some(noise::TYPE_INIT) => Ok(Kind::Init),
        Some(noise::TYPE_RESP) => Ok(Kind::Resp),
        Some(noise::TYPE_DATA) => Ok(Kind::Data),
        _ => Err(DropReason::BadHeader),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_kinds() {
        assert_eq!(kind(&[1, 0]), Err(DropReason::Short));
        assert_eq!(kind(&[1, 0, 0, 1]), Err(DropReason::BadHeader));
        assert_eq!(kind(&[9, 0, 0, 0]), Err(DropReason::BadHeader));
        assert_eq!(kind(&[4, 0, 0, 0]), Ok(Kind::Data));
        let init = [0u8; noise::INIT_LEN + 1];
        assert!(Init::parse(&init[..noise::INIT_LEN]).is_ok());
        assert_eq!(
            Init::parse(&init[..noise::INIT_LEN_V1]).err(),
            Some(DropReason::HandshakeMismatch)
        );
        assert_eq!(Init::parse(&init[..10]).err(), Some(DropReason::Short));
        assert_eq!(Init::parse(&init).err(), Some(DropReason::BadHeader));
        assert_eq!(
            Data::parse(&init[..noise::DATA_OVERHEAD - 1]).err(),
            Some(DropReason::Short)
        );
        let d = Data::parse(&init[..noise::DATA_OVERHEAD + 3]).expect("data");
        assert_eq!(d.payload_len(), 3);
        assert_eq!(Resp::parse(&init[..5]).err(), Some(DropReason::Short));
    }
}
