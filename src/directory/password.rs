//! The new on-prem password: drawn from the operating system's secure random source, kept in
//! memory that is wiped when it is dropped, encoded the one way AD accepts it, and never shown.
//!
//! [`NewPassword`] has no `Display`, no `Clone` and a redacting `Debug`; the only way to the
//! value is `NewPassword::unicode_pwd`, which the LDAP client sends to the DC once.

use std::fmt;

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use zeroize::Zeroizing;

use crate::config::NewPasswordKind;

/// Characters of a `random` password: every class AD's complexity rule counts (upper, lower,
/// digit, symbol), no space, no `"` (unicodePwd wraps the value in quotes) and no `'`.
pub(crate) const ALPHABET_TEXT: &str =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&()*+,-./:;<=>?@[]^_{|}~";
const ALPHABET: &[u8] = ALPHABET_TEXT.as_bytes();

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A generated password, used once and wiped from memory on drop.
pub struct NewPassword(Zeroizing<String>);

impl NewPassword {
    /// A fresh value of the configured kind: a random GUID (36 characters: lower-case letters,
    /// digits and `-`, three of AD's four complexity classes), or `random_length` characters
    /// of all four classes.
    pub fn generate(kind: NewPasswordKind, random_length: usize) -> Self {
        match kind {
            NewPasswordKind::Guid => Self::guid(),
            NewPasswordKind::Random => Self::random(random_length),
        }
    }

    fn guid() -> Self {
        loop {
            let mut bytes = Zeroizing::new([0u8; 16]);
            fill(&mut bytes[..]);
            // RFC 9562 version 4 (random) and variant bits, formatted in place (no copies).
            bytes[6] = (bytes[6] & 0x0f) | 0x40;
            bytes[8] = (bytes[8] & 0x3f) | 0x80;
            let mut text = Zeroizing::new(String::with_capacity(36));
            for (i, b) in bytes.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    text.push('-');
                }
                text.push(char::from(HEX[usize::from(b >> 4)]));
                text.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
            // All 32 hex digits being digits (or letters) is a chance in millions; such a value
            // would miss a complexity class.
            if text.bytes().any(|b| b.is_ascii_alphabetic())
                && text.bytes().any(|b| b.is_ascii_digit())
            {
                return Self(text);
            }
        }
    }

    fn random(length: usize) -> Self {
        // Rejection sampling: only bytes below the largest multiple of the alphabet's size, so
        // every character is equally likely.
        let limit = 256 - 256 % ALPHABET.len();
        loop {
            let mut text = Zeroizing::new(String::with_capacity(length));
            let mut bytes = Zeroizing::new(vec![0u8; length * 2]);
            while text.len() < length {
                fill(&mut bytes);
                for &b in bytes.iter() {
                    if usize::from(b) < limit && text.len() < length {
                        text.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
                    }
                }
            }
            let classes = [
                text.bytes().any(|b| b.is_ascii_uppercase()),
                text.bytes().any(|b| b.is_ascii_lowercase()),
                text.bytes().any(|b| b.is_ascii_digit()),
                text.bytes().any(|b| !b.is_ascii_alphanumeric()),
            ];
            if classes.iter().all(|c| *c) {
                return Self(text);
            }
        }
    }

    /// A value the caller chose. Only for tests that must prove where the value goes (that
    /// it reaches AD and nothing else): the point of a scramble is that nobody knows it.
    #[doc(hidden)]
    pub fn chosen_for_tests(value: &str) -> Self {
        Self(Zeroizing::new(value.to_owned()))
    }

    /// The `unicodePwd` value: the password in double quotes, UTF-16LE. Wiped on drop.
    pub(crate) fn unicode_pwd(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity((self.0.len() + 2) * 2));
        for unit in "\""
            .encode_utf16()
            .chain(self.0.encode_utf16())
            .chain("\"".encode_utf16())
        {
            out.extend_from_slice(&unit.to_le_bytes());
        }
        out
    }

    #[cfg(test)]
    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword([REDACTED])")
    }
}

fn fill(bytes: &mut [u8]) {
    SystemRandom::new()
        .fill(bytes)
        .expect("the operating system's random source works");
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn a_guid_password_is_a_fresh_v4_guid() {
        let values: HashSet<String> = (0..50)
            .map(|_| {
                NewPassword::generate(NewPasswordKind::Guid, 64)
                    .expose()
                    .to_owned()
            })
            .collect();
        assert_eq!(values.len(), 50, "no repeats");
        for value in &values {
            let guid = uuid::Uuid::parse_str(value).unwrap();
            assert_eq!(guid.get_version_num(), 4, "{value}");
            assert_eq!(value.len(), 36);
        }
    }

    #[test]
    fn a_random_password_has_the_length_and_every_class() {
        for length in [16, 64, 256] {
            let password = NewPassword::generate(NewPasswordKind::Random, length);
            let value = password.expose();
            assert_eq!(value.chars().count(), length);
            assert!(value.bytes().all(|b| ALPHABET.contains(&b)), "{value}");
            assert!(value.bytes().any(|b| b.is_ascii_uppercase()));
            assert!(value.bytes().any(|b| b.is_ascii_lowercase()));
            assert!(value.bytes().any(|b| b.is_ascii_digit()));
            assert!(value.bytes().any(|b| !b.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn unicode_pwd_is_the_quoted_value_in_utf16le() {
        let password = NewPassword::chosen_for_tests("Pa1é");
        assert_eq!(
            password.unicode_pwd().as_slice(),
            b"\"\0P\0a\x001\0\xe9\0\"\0",
            "what `printf '\"%s\"' | iconv -t UTF-16LE` gives"
        );
    }

    #[test]
    fn debug_never_shows_the_value() {
        let password = NewPassword::chosen_for_tests("visible?");
        assert_eq!(format!("{password:?}"), "NewPassword([REDACTED])");
    }
}
