//! The membership protocol's datagrams on the wire: sealing and opening
//! them with the group's membership key (ChaCha20-Poly1305, from ring),
//! and refusing replays.
//!
//! ```text
//! | version 1 | salt 4 | counter 8 | ciphertext of the SWIM message | tag 16 |
//! ```
//!
//! The nonce is `salt ‖ counter`: the salt is drawn at random when a manager
//! starts and the counter goes up with every datagram it sends, so no nonce
//! repeats within a start. The 13-byte header is the AEAD's associated
//! data, so none of it can be changed either. A datagram that does not
//! open is dropped without an answer: a manager never speaks first to a
//! stranger, so its port is no amplifier.
//!
//! Replays: for each sender (each salt) the highest counter seen and a
//! window of the 64 before it are kept (as IPsec and WireGuard do); a
//! datagram older than the window, or seen already, is dropped. A replayed
//! ack could otherwise keep a dead member alive.
//!
//! Pure functions over bytes: this module does no I/O and knows nothing of
//! SWIM's messages (see `membership`) or of sockets (see `control::group`).

use std::collections::HashMap;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// The only version this manager reads or writes; another is dropped, so a
/// later format can run beside this one during an upgrade.
pub const VERSION: u8 = 1;
const SALT: usize = 4;
const HEADER: usize = 1 + SALT + 8;
const TAG: usize = 16;
/// Bytes a sealed datagram adds to the message it carries.
pub const OVERHEAD: usize = HEADER + TAG;
/// The largest datagram sent or read: it fits a 1500-byte Ethernet frame
/// with its IP and UDP headers, so it is never fragmented.
pub const MAX_DATAGRAM: usize = 1400;
/// The largest SWIM message a datagram carries.
pub const MAX_MESSAGE: usize = MAX_DATAGRAM - OVERHEAD;

/// Senders whose replay window is kept; past it the least recently heard
/// goes. Members times a few restarts each.
const MAX_SENDERS: usize = 4096;
/// Counters behind the highest one seen that are still accepted once.
const WINDOW: u64 = 64;

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    #[error("too short or too long to be a membership datagram")]
    Size,
    #[error("another version of the membership protocol")]
    Version,
    #[error("it does not authenticate with this group's key")]
    Forged,
    #[error("a replay of a datagram already received")]
    Replay,
}

/// Seals what this manager sends.
pub struct Sealer {
    key: LessSafeKey,
    salt: [u8; SALT],
    counter: u64,
}

impl Sealer {
    /// A sealer under `key` (see `Tls::membership_key`) with a salt of its
    /// own.
    pub fn new(key: &[u8; 32], salt: [u8; SALT]) -> Sealer {
        Sealer { key: aead_key(key), salt, counter: 0 }
    }

    /// The datagram carrying `message`.
    pub fn seal(&mut self, message: &[u8]) -> Vec<u8> {
        self.counter += 1;
        let mut out = Vec::with_capacity(message.len() + OVERHEAD);
        out.push(VERSION);
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.counter.to_be_bytes());
        let header: [u8; HEADER] = out[..HEADER].try_into().expect("header length");
        out.extend_from_slice(message);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(&header), Aad::from(header), &mut out[HEADER..])
            .expect("a message within bounds always seals");
        out.extend_from_slice(tag.as_ref());
        out
    }
}

/// Opens what this manager receives, remembering what it opened.
pub struct Opener {
    key: LessSafeKey,
    /// Per salt: the highest counter seen, the window behind it (bit i set:
    /// `highest - i` was seen), and when it was last used (for eviction).
    seen: HashMap<[u8; SALT], Seen>,
    clock: u64,
}

struct Seen {
    highest: u64,
    window: u64,
    used: u64,
}

impl Opener {
    pub fn new(key: &[u8; 32]) -> Opener {
        Opener { key: aead_key(key), seen: HashMap::new(), clock: 0 }
    }

    /// The message `datagram` carries, or why it was dropped. The datagram
    /// is decrypted in place.
    pub fn open<'a>(&mut self, datagram: &'a mut [u8]) -> Result<&'a [u8], Dropped> {
        if datagram.len() < OVERHEAD || datagram.len() > MAX_DATAGRAM {
            return Err(Dropped::Size);
        }
        if datagram[0] != VERSION {
            return Err(Dropped::Version);
        }
        let (header, body) = datagram.split_at_mut(HEADER);
        let header: [u8; HEADER] = (&*header).try_into().expect("split at the header");
        let salt: [u8; SALT] = header[1..1 + SALT].try_into().expect("salt length");
        let counter = u64::from_be_bytes(header[1 + SALT..].try_into().expect("counter length"));
        // Checked before the (costlier) decryption, recorded only after it:
        // a forger must not move anyone's window.
        if self.is_replay(&salt, counter) {
            return Err(Dropped::Replay);
        }
        let plain = self.key.open_in_place(nonce(&header), Aad::from(header), body).map_err(|_| Dropped::Forged)?;
        self.record(salt, counter);
        Ok(plain)
    }

    fn is_replay(&self, salt: &[u8; SALT], counter: u64) -> bool {
        match self.seen.get(salt) {
            None => false,
            Some(seen) if counter > seen.highest => false,
            Some(seen) => {
                let behind = seen.highest - counter;
                behind >= WINDOW || seen.window & (1 << behind) != 0
            }
        }
    }

    fn record(&mut self, salt: [u8; SALT], counter: u64) {
        self.clock += 1;
        if !self.seen.contains_key(&salt) && self.seen.len() >= MAX_SENDERS {
            // The sender heard from least recently is most likely gone (a
            // manager that restarted has a new salt).
            if let Some(oldest) = self.seen.iter().min_by_key(|(_, s)| s.used).map(|(k, _)| *k) {
                self.seen.remove(&oldest);
            }
        }
        let seen = self.seen.entry(salt).or_insert(Seen { highest: counter, window: 0, used: 0 });
        seen.used = self.clock;
        if counter > seen.highest {
            let shift = counter - seen.highest;
            seen.window = if shift >= WINDOW { 0 } else { seen.window << shift };
            seen.highest = counter;
        }
        seen.window |= 1 << (seen.highest - counter);
    }
}

fn aead_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key"))
}

fn nonce(header: &[u8; HEADER]) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&header[1..]);
    Nonce::assume_unique_for_key(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn a_sealed_message_opens_once_and_only_under_the_same_key() {
        let mut sealer = Sealer::new(&KEY, [1, 2, 3, 4]);
        let mut opener = Opener::new(&KEY);
        let datagram = sealer.seal(b"ping");
        assert_eq!(datagram.len(), 4 + OVERHEAD);
        assert!(!datagram.windows(4).any(|w| w == b"ping"), "the message is encrypted");
        assert_eq!(opener.open(&mut datagram.clone()), Ok(&b"ping"[..]));
        assert_eq!(opener.open(&mut datagram.clone()), Err(Dropped::Replay));
        let mut stranger = Opener::new(&[8; 32]);
        assert_eq!(stranger.open(&mut sealer.seal(b"ping")), Err(Dropped::Forged));
    }

    #[test]
    fn any_changed_byte_is_a_forgery() {
        let mut sealer = Sealer::new(&KEY, [1, 2, 3, 4]);
        let datagram = sealer.seal(b"suspect member 7");
        for i in 1..datagram.len() {
            let mut changed = datagram.clone();
            changed[i] ^= 0x40;
            let mut opener = Opener::new(&KEY);
            assert_eq!(opener.open(&mut changed), Err(Dropped::Forged), "byte {i}");
        }
        let mut other_version = datagram.clone();
        other_version[0] = 2;
        assert_eq!(Opener::new(&KEY).open(&mut other_version), Err(Dropped::Version));
        assert_eq!(Opener::new(&KEY).open(&mut datagram[..OVERHEAD - 1].to_vec()), Err(Dropped::Size));
        assert_eq!(Opener::new(&KEY).open(&mut vec![VERSION; MAX_DATAGRAM + 1]), Err(Dropped::Size));
    }

    #[test]
    fn late_datagrams_within_the_window_open_once_older_ones_never() {
        let mut sealer = Sealer::new(&KEY, [9; 4]);
        let sent: Vec<Vec<u8>> = (0..100).map(|i| sealer.seal(format!("m{i}").as_bytes())).collect();
        let mut opener = Opener::new(&KEY);
        // Received out of order: 99 first, then the rest backwards.
        assert!(opener.open(&mut sent[99].clone()).is_ok());
        for (i, datagram) in sent.iter().enumerate().rev().skip(1) {
            let behind = 99 - i as u64;
            let got = opener.open(&mut datagram.clone()).map(|m| m.to_vec());
            if behind < WINDOW {
                assert!(got.is_ok(), "{behind} behind");
                assert_eq!(opener.open(&mut datagram.clone()), Err(Dropped::Replay));
            } else {
                assert_eq!(got, Err(Dropped::Replay), "{behind} behind: older than the window");
            }
        }
        // Another sender (another salt) has a window of its own.
        let mut other = Sealer::new(&KEY, [10; 4]);
        assert!(opener.open(&mut other.seal(b"x")).is_ok());
    }

    #[test]
    fn a_forgery_does_not_move_the_window() {
        let mut sealer = Sealer::new(&KEY, [5; 4]);
        let first = sealer.seal(b"a");
        let mut opener = Opener::new(&KEY);
        // A forger claims counter 1,000 of this salt: it does not open, so
        // the real counter 1 still does.
        let mut forged = first.clone();
        forged[5..13].copy_from_slice(&1000u64.to_be_bytes());
        assert_eq!(opener.open(&mut forged), Err(Dropped::Forged));
        assert!(opener.open(&mut first.clone()).is_ok());
    }

    #[test]
    fn the_senders_remembered_are_bounded() {
        let mut opener = Opener::new(&KEY);
        for i in 0..(MAX_SENDERS as u32 + 10) {
            let mut sealer = Sealer::new(&KEY, i.to_be_bytes());
            assert!(opener.open(&mut sealer.seal(b"hi")).is_ok());
        }
        assert_eq!(opener.seen.len(), MAX_SENDERS);
    }
}
