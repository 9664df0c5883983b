//! `retention`: the tag history kept for restores.

use super::*;

#[test]
fn the_tag_history_is_kept_two_weeks_unless_set() {
    let config = ok("", &[]).config;
    assert_eq!(
        config.retention.taghistory,
        Duration::from_secs(14 * 24 * 3600)
    );
    let loaded = ok("retention:\n  taghistory: 72h\n", &[]);
    assert_eq!(
        loaded.config.retention.taghistory,
        Duration::from_secs(72 * 3600)
    );
    assert_eq!(loaded.sources["retention.taghistory"], Source::File);
    let from_env = ok("", &[("BERTH_RETENTION_TAGHISTORY", "30m")]);
    assert_eq!(
        from_env.config.retention.taghistory,
        Duration::from_secs(1800)
    );
}

#[test]
fn a_bad_tag_history_names_the_key() {
    let error = err("retention:\n  taghistory: forever\n", &[]);
    problem(&error, "retention.taghistory");
    let error = err("retention:\n  taghistory: 0s\n", &[]);
    assert!(
        problem(&error, "retention.taghistory")
            .message
            .contains("greater than 0"),
        "{error}"
    );
}
