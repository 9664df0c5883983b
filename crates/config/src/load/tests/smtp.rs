//! `smtp`: the mail server, from the file and the environment; what it refuses.

use super::*;
use crate::{SmtpConfig, SmtpSecurity};

#[test]
fn smtp_is_absent_unless_configured_and_reads_from_file_and_environment() {
    assert_eq!(ok("", &[]).config.smtp, None);
    let loaded = ok(
        "smtp:\n  host: mail.example.com\n  security: tls\n  user: berth\n  password: hunter2\n  from: \"berth <registry@example.com>\"\n",
        &[("BERTH_SMTP_PORT", "2465")],
    );
    let smtp = loaded.config.smtp.clone().unwrap();
    assert_eq!(
        smtp,
        SmtpConfig {
            host: "mail.example.com".into(),
            port: Some(2465),
            security: SmtpSecurity::Tls,
            user: Some("berth".into()),
            password: Some("hunter2".into()),
            from: "berth <registry@example.com>".into(),
        }
    );
    assert_eq!(smtp.effective_port(), 2465);
    assert!(!crate::explain(&loaded).contains("hunter2"));
    let plain = ok(
        "smtp:\n  host: localhost\n  security: none\n  from: registry@example.com\n",
        &[],
    );
    assert_eq!(plain.config.smtp.unwrap().effective_port(), 25);
}

#[test]
fn bad_smtp_settings_name_their_key() {
    only_problem(
        "smtp:\n  host: mail.example.com\n  from: nobody\n",
        &[],
        "smtp.from",
        "expected an address",
        Source::File,
    );
    only_problem(
        "smtp:\n  from: registry@example.com\n",
        &[],
        "smtp.host",
        "required with smtp",
        Source::File,
    );
    only_problem(
        "smtp:\n  host: mail.example.com\n  from: registry@example.com\n  user: berth\n",
        &[],
        "smtp.password",
        "required when smtp.user is set",
        Source::File,
    );
    let error = err(
        "smtp:\n  host: mail.example.com\n  from: registry@example.com\n  security: ssl\n",
        &[],
    );
    assert!(
        problem(&error, "smtp.security")
            .message
            .contains("expected starttls, tls or none")
    );
}
