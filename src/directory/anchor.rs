//! The source anchor: a synced user's `onPremisesImmutableId` is, by Entra Connect's default,
//! the base64 of its AD account's `objectGUID` (or of `mS-DS-ConsistencyGuid`, which Entra
//! Connect copies from it). This turns it back into the 16 bytes, the escaped binary LDAP
//! filter value that finds the account, and the GUID text AD's tools show.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use uuid::Uuid;

/// The 16 bytes of an AD `objectGUID`, in the order AD stores them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectGuid([u8; 16]);

/// Why an `onPremisesImmutableId` does not name an `objectGUID`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    #[error("onPremisesImmutableId `{0}` is not base64")]
    NotBase64(String),
    #[error(
        "onPremisesImmutableId `{id}` holds {len} bytes, not the 16 of an objectGUID (a custom source anchor?)"
    )]
    NotAGuid { id: String, len: usize },
}

impl ObjectGuid {
    /// Decodes a user's `onPremisesImmutableId`.
    pub fn from_immutable_id(text: &str) -> Result<Self, AnchorError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .map_err(|_| AnchorError::NotBase64(text.to_owned()))?;
        let bytes: [u8; 16] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| AnchorError::NotAGuid {
                id: text.to_owned(),
                len: b.len(),
            })?;
        Ok(Self(bytes))
    }

    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub const fn bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The value as `onPremisesImmutableId` carries it.
    pub fn immutable_id(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The escaped form an LDAP filter needs for a binary value (RFC 4515): `\92\44\37…`.
    pub fn filter_value(&self) -> String {
        use std::fmt::Write as _;
        self.0.iter().fold(String::with_capacity(48), |mut out, b| {
            let _ = write!(out, "\\{b:02x}");
            out
        })
    }

    /// The GUID as AD's tools show it (`Get-ADUser … ObjectGUID`, .NET `Guid`): the first
    /// three groups are the little-endian fields of the stored bytes.
    pub fn to_guid(&self) -> Uuid {
        Uuid::from_bytes_le(self.0)
    }
}

impl fmt::Display for ObjectGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_guid().hyphenated(), f)
    }
}

impl fmt::Debug for ObjectGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectGuid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read from a Samba AD DC: `objectGUID:: kkQ3WJj/WUqV9AGCBCc8TA==`.
    const SAMBA_GUID: &str = "kkQ3WJj/WUqV9AGCBCc8TA==";

    #[test]
    fn an_immutable_id_becomes_the_filter_and_the_guid_ad_shows() {
        let guid = ObjectGuid::from_immutable_id(SAMBA_GUID).unwrap();
        assert_eq!(
            guid.filter_value(),
            r"\92\44\37\58\98\ff\59\4a\95\f4\01\82\04\27\3c\4c"
        );
        // The .NET Guid of those bytes: Data1..Data3 little-endian, the rest as stored.
        assert_eq!(guid.to_string(), "58374492-ff98-4a59-95f4-018204273c4c");
        assert_eq!(guid.immutable_id(), SAMBA_GUID);
    }

    #[test]
    fn anchors_that_are_not_guids_are_refused_with_the_reason() {
        assert_eq!(
            ObjectGuid::from_immutable_id("not base64!"),
            Err(AnchorError::NotBase64("not base64!".into()))
        );
        // The fixture tenant's `bGludXM=` is "linus": a custom anchor, not a GUID.
        let err = ObjectGuid::from_immutable_id("bGludXM=").unwrap_err();
        assert_eq!(
            err,
            AnchorError::NotAGuid {
                id: "bGludXM=".into(),
                len: 5
            }
        );
        assert!(err.to_string().contains("custom source anchor"), "{err}");
    }
}
