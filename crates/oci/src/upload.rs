//! Upload session identifiers.

use std::fmt;

use crate::error::RegistryError;

/// The id of a blob upload session: a random UUID, in its canonical lowercase form. Parsing is
/// strict so that an id from a URL is safe to use as a file name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UploadId(uuid::Uuid);

impl UploadId {
    pub fn random() -> Self {
        UploadId(uuid::Uuid::new_v4())
    }

    /// An id that is not exactly what [`UploadId::random`] produces cannot name a session, so
    /// it is reported as unknown rather than invalid.
    pub fn parse(s: &str) -> Result<UploadId, RegistryError> {
        match uuid::Uuid::try_parse(s) {
            Ok(id) if id.hyphenated().to_string() == s => Ok(UploadId(id)),
            _ => Err(RegistryError::upload_unknown()),
        }
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UploadId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_spellings() {
        let id = UploadId::random();
        assert_eq!(UploadId::parse(&id.to_string()).unwrap(), id);
        let upper = id.to_string().to_uppercase();
        assert!(UploadId::parse(&upper).is_err());
        let simple = id.to_string().replace('-', "");
        assert!(UploadId::parse(&simple).is_err());
        assert!(UploadId::parse("../../etc/passwd").is_err());
        assert!(UploadId::parse("").is_err());
    }
}
