//! `retention`: the tag history kept for restores.

use std::time::Duration;

use crate::schema::{Problems, join, section};

section! {
    /// berth's own: the tag history.
    #[derive(Clone, PartialEq)]
    pub struct RetentionConfig {
        taghistory: Duration = Duration::from_secs(14 * 24 * 3600),
            "how long a deleted or moved tag's previous manifest stays restorable (berth tag restore); garbage collection keeps it that long";
    }
    validate = RetentionConfig::validate;
}

impl RetentionConfig {
    fn validate(&self, path: &str, problems: &mut Problems) {
        if self.taghistory.is_zero() {
            problems.add(
                join(path, "taghistory"),
                "must be greater than 0: a deleted tag could not be restored",
            );
        }
    }
}
