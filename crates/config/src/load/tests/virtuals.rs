//! berth's `virtuals`.

use super::*;

const HUB: &str = "remotes:\n  hub:\n    prefix: hub\n    urls: [https://registry-1.docker.io]\n";

#[test]
fn virtuals_load_with_their_members_in_order() {
    let loaded = ok(
        &format!(
            "{HUB}virtuals:\n  all:\n    prefix: all\n    locals: [team, base/images]\n    remotes: [hub]\n    deploy: team\n  ro:\n    prefix: ro\n    remotes: [hub]\n"
        ),
        &[],
    );
    let all = &loaded.config.virtuals["all"];
    assert_eq!(all.prefix.as_deref(), Some("all"));
    assert_eq!(all.locals, ["team", "base/images"]);
    assert_eq!(all.remotes, ["hub"]);
    assert_eq!(all.deploy.as_deref(), Some("team"));
    let ro = &loaded.config.virtuals["ro"];
    assert!(ro.locals.is_empty());
    assert_eq!(ro.deploy, None);
}

/// The one problem of a configuration with the remote `hub` and the virtual `all` made of
/// `virtual_yaml` (its keys below `virtuals.all`).
fn refused(virtual_yaml: &str, path: &str, want: &str) {
    only_problem(
        &format!("{HUB}virtuals:\n  all:\n{virtual_yaml}"),
        &[],
        path,
        want,
        Source::File,
    );
}

#[test]
fn misconfigured_virtuals_are_refused_naming_the_key() {
    refused("    locals: [team]\n", "virtuals.all.prefix", "required");
    refused(
        "    prefix: all\n",
        "virtuals.all.locals",
        "at least one member",
    );
    refused(
        "    prefix: all\n    locals: [team]\n    deploy: other\n",
        "virtuals.all.deploy",
        "not one of locals",
    );
    refused(
        "    prefix: all\n    remotes: [quay]\n",
        "virtuals.all.remotes[0]",
        "not a remote repository",
    );
    refused(
        "    prefix: all\n    locals: [team, all/inner]\n",
        "virtuals.all.locals[1]",
        "contain itself",
    );
    refused(
        "    prefix: all\n    locals: [hub/library]\n",
        "virtuals.all.locals[0]",
        "remotes.hub.prefix",
    );
    refused(
        "    prefix: hub/virtual\n    locals: [team]\n",
        "virtuals.all.prefix",
        "overlaps remotes.hub.prefix",
    );
    refused(
        "    prefix: all\n    locals: ['Team!']\n",
        "virtuals.all.locals[0]",
        "not a repository name prefix",
    );
}

#[test]
fn a_virtual_naming_another_virtual_is_refused() {
    let error = err(
        &format!(
            "{HUB}virtuals:\n  a:\n    prefix: a\n    locals: [b]\n  b:\n    prefix: b\n    locals: [team]\n    remotes: [a]\n"
        ),
        &[],
    );
    let a = problem(&error, "virtuals.a.locals[0]");
    assert!(a.message.contains("virtuals.b.prefix"), "{a}");
    let b = problem(&error, "virtuals.b.remotes[0]");
    assert!(b.message.contains("is a virtual repository"), "{b}");
}
