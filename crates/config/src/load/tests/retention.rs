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

#[test]
fn retention_rules_come_from_the_file() {
    let loaded = ok(
        "retention:\n  rules:\n    - repositories: ci/**\n      keeplastpushed: 5\n      keeptags: [v*]\n      keeptagsregex: ['^release-[0-9]+$']\n      keeppushedwithin: 720h\n",
        &[],
    );
    let rules = &loaded.config.retention.rules;
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].repositories.as_ref().unwrap().as_str(), "ci/**");
    assert_eq!(rules[0].keeplastpushed, Some(5));
    assert_eq!(rules[0].keeptags, ["v*"]);
    assert_eq!(rules[0].keeptagsregex, ["^release-[0-9]+$"]);
    assert_eq!(
        rules[0].keeppushedwithin,
        Some(Duration::from_secs(720 * 3600))
    );
}

#[test]
fn bad_retention_rules_name_the_key_path() {
    let error = err(
        "retention:\n  rules:\n    - repositories: ci/**\n      keeptagsregex: ['v(']\n    - keeplastpushed: 1\n    - repositories: x/**\n    - repositories: y/**\n      keeptags: ['v/1']\n",
        &[],
    );
    assert!(
        problem(&error, "retention.rules[0].keeptagsregex[0]")
            .message
            .contains("not a regular expression"),
        "{error}"
    );
    problem(&error, "retention.rules[1].repositories");
    assert!(
        problem(&error, "retention.rules[2]")
            .message
            .contains("must keep something"),
        "{error}"
    );
    problem(&error, "retention.rules[3].keeptags[0]");
}
