//! Deterministic, version-pinned randomness for the simulator.
//!
//! Owns the `SplitMix64` generator, the keyed hash used to derive every generated value from
//! `(seed, index)`, and the reversible index <-> object-id encoding that lets the simulator
//! find user *i* from its GUID in O(1). It must not use `rand` or any other crate whose output
//! could change between versions: a seed must give the same tenant forever.

use std::fmt::Write as _;

/// `SplitMix64` (Steele, Lea, Flood 2014): a tiny, fixed, well-mixed 64-bit generator.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fully determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// A value in `0..bound` (`bound` > 0); the tiny modulo bias is irrelevant here.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let len = u64::try_from(items.len()).unwrap_or(u64::MAX);
        let index = usize::try_from(self.below(len)).unwrap_or(0);
        &items[index]
    }
}

/// The `SplitMix64` output function (a bijective 64-bit mixer).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of `(seed, domain, index)`; `domain` separates independent uses of the same index.
pub fn keyed(seed: u64, domain: u64, index: u64) -> u64 {
    mix64(mix64(seed ^ mix64(domain)) ^ index)
}

/// Formats 16 bytes as a lowercase GUID string.
pub fn format_guid(bytes: [u8; 16]) -> String {
    let hex = |range: std::ops::Range<usize>| -> String {
        bytes[range].iter().fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    };
    format!(
        "{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    )
}

/// Parses a GUID string (any case) into 16 bytes.
pub fn parse_guid(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || text.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A random-looking but stable version-4 GUID for `(seed, domain, index)`.
pub fn stable_guid(seed: u64, domain: u64, index: u64) -> String {
    let a = keyed(seed, domain, index);
    let b = keyed(seed, domain ^ 0x5555, index);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    set_v4_bits(&mut bytes);
    format_guid(bytes)
}

fn set_v4_bits(bytes: &mut [u8; 16]) {
    bytes[6] = (bytes[6] & 0x0F) | 0x40;
    bytes[8] = (bytes[8] & 0x3F) | 0x80;
}

/// Encodes a user index into a v4-shaped GUID that [`decode_indexed_guid`] can invert.
///
/// A 4-round Feistel network keyed by the seed scrambles the index into 64 bits (so ids look
/// random and differ between seeds); the remaining bits carry a keyed check value so that an
/// arbitrary GUID is recognised as "not one of ours" instead of mapping to some user.
pub fn indexed_guid(seed: u64, index: u64) -> String {
    let scrambled = feistel(seed, index, false);
    let check = keyed(seed, 0x00C0_FFEE, scrambled);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&scrambled.to_be_bytes()[..6]);
    // Byte 6: version nibble + 4 bits of the scrambled index; byte 7: 8 more; byte 8: variant
    // + 4 more bits (6 available, 4 used) => 48 + 4 + 8 + 4 = 64 bits of index.
    let tail = scrambled & 0xFFFF; // the last 16 bits
    bytes[6] = 0x40 | u8::try_from((tail >> 12) & 0x0F).unwrap_or(0);
    bytes[7] = u8::try_from((tail >> 4) & 0xFF).unwrap_or(0);
    bytes[8] = 0x80 | u8::try_from(tail & 0x0F).unwrap_or(0);
    bytes[9..].copy_from_slice(&check.to_be_bytes()[..7]);
    format_guid(bytes)
}

/// Inverts [`indexed_guid`]; `None` when the GUID was not produced for this seed.
pub fn decode_indexed_guid(seed: u64, text: &str) -> Option<u64> {
    let bytes = parse_guid(text)?;
    if bytes[6] & 0xF0 != 0x40 || bytes[8] & 0xF0 != 0x80 {
        return None;
    }
    let mut high = [0u8; 8];
    high[2..].copy_from_slice(&bytes[..6]);
    let high = u64::from_be_bytes(high) << 16;
    let tail = (u64::from(bytes[6] & 0x0F) << 12)
        | (u64::from(bytes[7]) << 4)
        | u64::from(bytes[8] & 0x0F);
    let scrambled = high | tail;
    let check = keyed(seed, 0x00C0_FFEE, scrambled);
    if bytes[9..] != check.to_be_bytes()[..7] {
        return None;
    }
    Some(feistel(seed, scrambled, true))
}

fn feistel(seed: u64, value: u64, inverse: bool) -> u64 {
    let mut left = (value >> 32) & 0xFFFF_FFFF;
    let mut right = value & 0xFFFF_FFFF;
    let round = |r: u64, k: u64| keyed(seed, 0xFE15_7E10 + k, r) & 0xFFFF_FFFF;
    if inverse {
        for k in (0..4).rev() {
            let previous_right = left;
            left = right ^ round(previous_right, k);
            right = previous_right;
        }
    } else {
        for k in 0..4 {
            let next_left = right;
            right = left ^ round(right, k);
            left = next_left;
        }
    }
    (left << 32) | right
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_sequence_is_pinned() {
        // Reference values of SplitMix64 seeded with 0 (published test vector).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn indexed_guid_round_trips_and_rejects_foreign_ids() {
        for index in [0, 1, 2, 999, 123_456, 999_999, u64::from(u32::MAX) + 7] {
            let id = indexed_guid(42, index);
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "4", "version nibble in {id}");
            assert_eq!(decode_indexed_guid(42, &id), Some(index), "{id}");
            assert_eq!(
                decode_indexed_guid(43, &id),
                None,
                "other seed must not decode {id}"
            );
        }
        assert_eq!(
            decode_indexed_guid(42, "00000000-0000-4000-8000-000000000000"),
            None
        );
        assert_eq!(decode_indexed_guid(42, "not-a-guid"), None);
    }

    #[test]
    fn guids_differ_per_index() {
        let a = indexed_guid(7, 1);
        let b = indexed_guid(7, 2);
        assert_ne!(a, b);
        assert_ne!(stable_guid(7, 1, 1), stable_guid(7, 1, 2));
    }
}
