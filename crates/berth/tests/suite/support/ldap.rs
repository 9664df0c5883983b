//! A real OpenLDAP `slapd` (Debian's), started for one test with its own configuration, a
//! certificate from its own CA (StartTLS) and a small directory: people, groups and berth's
//! search account. Changes during a test go through `ldapmodify`/`ldapdelete` as an operator
//! would make them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// berth's search account in the directory.
pub const BIND_DN: &str = "cn=berth,ou=services,dc=example,dc=com";
pub const BIND_PASSWORD: &str = "berth-bind-secret";
const ROOT_DN: &str = "cn=admin,dc=example,dc=com";
const ROOT_PASSWORD: &str = "directory-root-secret";

pub struct Slapd {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// A person of the directory: `uid`, display name, password.
pub struct Person<'a> {
    pub uid: &'a str,
    pub name: &'a str,
    pub password: &'a str,
}

impl Slapd {
    /// A directory with `people` under `ou=people` and `groups` (name, member uids) under
    /// `ou=groups` (groupOfNames, members by DN).
    pub fn start(people: &[Person], groups: &[(&str, &[&str])]) -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        std::fs::create_dir(path.join("db")).unwrap();
        // A CA of the test's own and the server's certificate for 127.0.0.1.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "berth test directory CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        std::fs::write(path.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(path.join("cert.pem"), certificate.pem()).unwrap();
        std::fs::write(path.join("key.pem"), key.serialize_pem()).unwrap();
        let p = path.display();
        let config = format!(
            "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {p}/slapd.pid
TLSCACertificateFile {p}/ca.pem
TLSCertificateFile {p}/cert.pem
TLSCertificateKeyFile {p}/key.pem
database mdb
maxsize 10485760
suffix \"dc=example,dc=com\"
rootdn \"{ROOT_DN}\"
rootpw {ROOT_PASSWORD}
directory {p}/db
access to attrs=userPassword by self auth by anonymous auth by * none
access to * by dn.exact=\"{BIND_DN}\" read by self read by * none
"
        );
        std::fs::write(path.join("slapd.conf"), config).unwrap();
        let mut ldif = String::from(
            "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
             dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,dc=example,dc=com\nobjectClass: organizationalUnit\nou: groups\n\n\
             dn: ou=services,dc=example,dc=com\nobjectClass: organizationalUnit\nou: services\n\n",
        );
        ldif.push_str(&format!(
            "dn: {BIND_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: berth\nuserPassword: {BIND_PASSWORD}\n\n"
        ));
        for person in people {
            ldif.push_str(&person_ldif(person));
        }
        for (group, members) in groups {
            ldif.push_str(&format!(
                "dn: cn={group},ou=groups,dc=example,dc=com\nobjectClass: groupOfNames\ncn: {group}\n"
            ));
            for member in *members {
                ldif.push_str(&format!("member: {}\n", person_dn(member)));
            }
            ldif.push('\n');
        }
        std::fs::write(path.join("data.ldif"), ldif).unwrap();
        let added = Command::new(sbin("slapadd"))
            .arg("-f")
            .arg(path.join("slapd.conf"))
            .arg("-l")
            .arg(path.join("data.ldif"))
            .output()
            .expect("slapadd runs (./scripts/test installs slapd)");
        assert!(
            added.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        let mut slapd = Slapd {
            child: None,
            port: free_port(),
            dir,
        };
        slapd.spawn();
        slapd
    }

    fn spawn(&mut self) {
        let path = self.dir.path();
        // -d 0: in the foreground, so that the test owns the process.
        let child = Command::new(sbin("slapd"))
            .arg("-f")
            .arg(path.join("slapd.conf"))
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{}/", self.port))
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slapd starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "slapd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the directory (a directory that is down).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Runs an LDAP client tool as the directory's administrator over StartTLS.
    fn tool(&self, program: &str, args: &[&str], input: &str) {
        use std::io::Write;
        let mut child = Command::new(program)
            .args([
                "-x",
                "-ZZ",
                "-H",
                &self.url(),
                "-D",
                ROOT_DN,
                "-w",
                ROOT_PASSWORD,
            ])
            .args(args)
            .env("LDAPTLS_CACERT", self.ca_file())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e} (./scripts/test installs ldap-utils)"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Removes a person from the directory.
    pub fn delete_person(&self, uid: &str) {
        self.tool("ldapdelete", &[&person_dn(uid)], "");
    }

    /// Removes a member from a group.
    pub fn remove_member(&self, group: &str, uid: &str) {
        self.tool(
            "ldapmodify",
            &[],
            &format!(
                "dn: cn={group},ou=groups,dc=example,dc=com\nchangetype: modify\ndelete: member\nmember: {}\n",
                person_dn(uid)
            ),
        );
    }

    /// The `auth.berth.ldap` section for this directory, indented under `auth: berth:`, with
    /// `extra` lines (already indented by six spaces) added.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "auth:\n  berth:\n    ldap:\n      url: {}\n      cafile: {}\n      binddn: {BIND_DN}\n      bindpassword: {BIND_PASSWORD}\n      userbase: ou=people,dc=example,dc=com\n      groupbase: ou=groups,dc=example,dc=com\n      timeout: 3s\n{extra}",
            self.url(),
            self.ca_file().display()
        )
    }
}

/// slapd and slapadd live in /usr/sbin, which a user's PATH may lack.
fn sbin(program: &str) -> PathBuf {
    let path = PathBuf::from("/usr/sbin").join(program);
    if path.exists() {
        path
    } else {
        PathBuf::from(program)
    }
}

fn person_dn(uid: &str) -> String {
    format!("uid={uid},ou=people,dc=example,dc=com")
}

fn person_ldif(person: &Person) -> String {
    format!(
        "dn: {}\nobjectClass: inetOrgPerson\nuid: {}\ncn: {}\nsn: {}\nmail: {}@example.com\nuserPassword: {}\n\n",
        person_dn(person.uid),
        person.uid,
        person.name,
        person.name,
        person.uid,
        person.password
    )
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
