//! `retention`: the tag history kept for restores, and retention rules written in the file
//! (applied alongside those the CLI and the admin API keep in the database).

use std::time::Duration;

use berth_oci::{Pattern, TagPattern};

use crate::schema::{Problems, join, section};

section! {
    /// berth's own: tag history and retention rules.
    #[derive(Clone, PartialEq)]
    pub struct RetentionConfig {
        taghistory: Duration = Duration::from_secs(14 * 24 * 3600),
            "how long a deleted or moved tag's previous manifest stays restorable (berth tag restore); garbage collection keeps it that long";
        rules: Vec<RetentionRuleConfig>,
            "retention rules, applied alongside those added with berth retention add or the admin API";
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

section! {
    /// One retention rule: in the repositories `repositories` matches, keep the tags any
    /// criterion names; a retention run untags the others (unless another rule keeps them).
    #[derive(Clone, PartialEq)]
    pub struct RetentionRuleConfig {
        repositories: Option<Pattern>, "the repositories the rule applies to (a glob: ci/**)";
        keeplastpushed: Option<u32>, "keep the N most recently pushed tags";
        keeplastpulled: Option<u32>, "keep the N most recently pulled tags";
        keeptags: Vec<String>, "keep tags matching any of these globs (v*)";
        keeptagsregex: Vec<String>, "keep tags matching any of these regular expressions (^v[0-9]+$)";
        keeppushedwithin: Option<Duration>, "keep tags pushed within this time";
        keeppulledwithin: Option<Duration>, "keep tags pulled within this time";
    }
    validate = RetentionRuleConfig::validate;
}

impl RetentionRuleConfig {
    fn validate(&self, path: &str, problems: &mut Problems) {
        if self.repositories.is_none() {
            problems.add(
                join(path, "repositories"),
                "required: the repositories the rule applies to (a glob: ci/**)",
            );
        }
        for (i, glob) in self.keeptags.iter().enumerate() {
            if let Err(e) = TagPattern::parse(glob) {
                problems.add(format!("{path}.keeptags[{i}]"), e.to_string());
            }
        }
        for (i, pattern) in self.keeptagsregex.iter().enumerate() {
            if let Err(e) = regex::Regex::new(pattern) {
                problems.add(
                    format!("{path}.keeptagsregex[{i}]"),
                    format!("not a regular expression: {e}"),
                );
            }
        }
        let keeps_something = self.keeplastpushed.is_some()
            || self.keeplastpulled.is_some()
            || !self.keeptags.is_empty()
            || !self.keeptagsregex.is_empty()
            || self.keeppushedwithin.is_some()
            || self.keeppulledwithin.is_some();
        if !keeps_something {
            problems.add(
                path.to_string(),
                "a retention rule must keep something: give keeplastpushed, keeplastpulled, keeptags, keeptagsregex, keeppushedwithin or keeppulledwithin",
            );
        }
    }
}
