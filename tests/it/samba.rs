//! A real Active Directory for tests: a Samba AD domain controller on 127.0.0.1 (LDAP only),
//! with its own CA and a server certificate for `localhost` and `127.0.0.1`, so TLS is really
//! verified (docs: `../shared/ENVIRONMENT.md` §2).
//!
//! Provisioning takes seconds, so one provisioned domain is kept as a template (under cargo's
//! test temp folder) and each test copies it. A DC listens on the fixed LDAP ports, so DCs run
//! one at a time: a test holds an exclusive lock on a file in the system temp folder from
//! before its DC starts until after it stopped (across nextest's processes and cargo test's
//! threads). The DC is stopped by its PID when [`SambaDc`] is dropped.
//!
//! Needs the Debian packages `samba-ad-dc samba-ad-provision` and root (ports 389/636);
//! `.ci/run` installs them. Without them the tests fail and say so: they never pass silently.
//! To leave them out locally: `cargo nextest run -E 'not test(/samba/)'`.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

/// The provisioned domain.
pub const REALM: &str = "test.local";
pub const BASE_DN: &str = "DC=test,DC=local";
pub const ADMIN: &str = "Administrator@test.local";
pub const ADMIN_PASSWORD: &str = "Passw0rd!2345";
/// The DC's DNS name (its root DSE's `dnsHostName`).
pub const DC_NAME: &str = "dc1.test.local";
pub const URL: &str = "ldaps://127.0.0.1";

/// Bump when the provisioning options change, so an old template is not reused.
const TEMPLATE: &str = "samba-template-v1";

/// A running DC, stopped on drop.
pub struct SambaDc {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The CA that issued the DC's certificate (PEM).
    pub ca_file: PathBuf,
    /// Another CA, which did not (for "wrong CA" tests).
    pub other_ca_file: PathBuf,
    _lock: File,
}

/// An account created in the DC.
#[derive(Clone, Debug)]
pub struct AdUser {
    pub sam: String,
    pub dn: String,
    pub upn: String,
    pub password: String,
    /// `objectGUID` as stored (what `onPremisesImmutableId` is the base64 of).
    pub object_guid: [u8; 16],
}

impl AdUser {
    /// The `onPremisesImmutableId` Entra Connect would give this account.
    pub fn immutable_id(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.object_guid)
    }
}

impl SambaDc {
    /// Copies the template domain (provisioning it first if needed), starts `samba` on it and
    /// waits until an LDAPS bind with verified TLS works.
    pub async fn start() -> Self {
        require_tools();
        let lock = take_lock();
        stop_leftover();
        let template = template();
        let dir = tempfile::Builder::new()
            .prefix("b2b-convert-dc-")
            .tempdir()
            .expect("a temp folder for the DC");
        let dc = dir.path().join("dc");
        run(Command::new("cp").arg("-a").arg(&template).arg(&dc));
        let conf = dc.join("etc/smb.conf");
        let text = std::fs::read_to_string(&conf).expect("the template's smb.conf");
        std::fs::write(
            &conf,
            text.replace(&template.display().to_string(), &dc.display().to_string()),
        )
        .expect("rewrite smb.conf");

        let pki = dir.path().join("pki");
        std::fs::create_dir(&pki).unwrap();
        let (ca_file, key, cert) = certificates(&pki);
        let (other_ca_file, _, _) = certificates(&pki.join("other"));

        let log = File::create(dir.path().join("samba.out")).unwrap();
        let child = Command::new("samba")
            .arg("-s")
            .arg(&conf)
            .args(["-i", "-M", "single"])
            .arg(format!("--option=tls keyfile={}", key.display()))
            .arg(format!("--option=tls certfile={}", cert.display()))
            .arg(format!("--option=tls cafile={}", ca_file.display()))
            // Like Windows (OldPasswordAllowedPeriod, 60 minutes by default), Samba accepts the
            // previous password for NTLM-backed logons, LDAP simple binds included, for an hour
            // after a reset. Off here, so "the old password no longer binds" shows the reset
            // itself; docs/operations.md tells operators about the hour.
            .arg("--option=old password allowed period=0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("samba starts");
        std::fs::write(pid_file(), child.id().to_string()).expect("write the DC's pid file");
        let mut dc = Self {
            child: Some(child),
            dir,
            ca_file,
            other_ca_file,
            _lock: lock,
        };
        dc.wait_ready().await;
        dc
    }

    async fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "samba exited ({status}) before serving LDAPS:\n{}",
                    self.log()
                );
            }
            if let Ok(mut ldap) = self.connect(URL, false).await
                && ldap
                    .simple_bind(ADMIN, ADMIN_PASSWORD)
                    .await
                    .is_ok_and(|r| r.rc == 0)
            {
                let _ = ldap.unbind().await;
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "samba did not serve LDAPS within 60 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What samba wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("samba.out")).unwrap_or_default()
    }

    /// An LDAP connection that trusts only this DC's CA (not bound yet).
    pub async fn connect(&self, url: &str, starttls: bool) -> ldap3::result::Result<ldap3::Ldap> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca_file).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let settings = LdapConnSettings::new()
            .set_config(Arc::new(config))
            .set_starttls(starttls)
            .set_conn_timeout(Duration::from_secs(5));
        let (conn, ldap) = LdapConnAsync::with_settings(settings, url).await?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// A connection bound as the domain's Administrator.
    pub async fn admin(&self) -> ldap3::Ldap {
        let mut ldap = self.connect(URL, false).await.expect("connect as admin");
        ldap.simple_bind(ADMIN, ADMIN_PASSWORD)
            .await
            .unwrap()
            .success()
            .expect("admin bind");
        ldap
    }

    /// Creates an enabled user `sam` in CN=Users with `password` and reads its objectGUID.
    pub async fn create_user(&self, sam: &str, display_name: &str, password: &str) -> AdUser {
        let mut ldap = self.admin().await;
        let dn = format!("CN={display_name},CN=Users,{BASE_DN}");
        let upn = format!("{sam}@{REALM}");
        let quoted: Vec<u8> = format!("\"{password}\"")
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let text = |s: &str| s.as_bytes().to_vec();
        ldap.add(
            &dn,
            vec![
                (text("objectClass"), HashSet::from([text("user")])),
                (text("sAMAccountName"), HashSet::from([text(sam)])),
                (text("userPrincipalName"), HashSet::from([text(&upn)])),
                (text("displayName"), HashSet::from([text(display_name)])),
                (text("unicodePwd"), HashSet::from([quoted])),
                (text("userAccountControl"), HashSet::from([text("512")])),
            ],
        )
        .await
        .unwrap()
        .success()
        .unwrap_or_else(|e| panic!("create {dn}: {e}"));
        let object_guid = self.object_guid(&mut ldap, &dn).await;
        let _ = ldap.unbind().await;
        AdUser {
            sam: sam.to_owned(),
            dn,
            upn,
            password: password.to_owned(),
            object_guid,
        }
    }

    async fn object_guid(&self, ldap: &mut ldap3::Ldap, dn: &str) -> [u8; 16] {
        let (entries, _) = ldap
            .search(dn, Scope::Base, "(objectClass=*)", vec!["objectGUID"])
            .await
            .unwrap()
            .success()
            .unwrap();
        let entry = SearchEntry::construct(entries.into_iter().next().unwrap());
        let bytes = entry
            .bin_attrs
            .get("objectGUID")
            .and_then(|v| v.first().cloned())
            .or_else(|| {
                entry
                    .attrs
                    .get("objectGUID")
                    .and_then(|v| v.first().map(|s| s.as_bytes().to_vec()))
            })
            .expect("objectGUID");
        bytes.try_into().expect("16 bytes")
    }

    /// Sets an attribute of `dn` as Administrator.
    pub async fn replace(&self, dn: &str, attribute: &str, value: Vec<u8>) {
        let mut ldap = self.admin().await;
        ldap.modify(
            dn,
            vec![Mod::Replace(
                attribute.as_bytes().to_vec(),
                HashSet::from([value]),
            )],
        )
        .await
        .unwrap()
        .success()
        .unwrap_or_else(|e| panic!("set {attribute} of {dn}: {e}"));
        let _ = ldap.unbind().await;
    }

    /// Whether `user` can bind with `password` (LDAP result 0).
    pub async fn can_bind(&self, user: &str, password: &str) -> bool {
        let mut ldap = self.connect(URL, false).await.expect("connect");
        let rc = ldap.simple_bind(user, password).await.unwrap().rc;
        let _ = ldap.unbind().await;
        rc == 0
    }

    /// The account's `pwdLastSet` (FILETIME).
    pub async fn pwd_last_set(&self, dn: &str) -> i64 {
        let mut ldap = self.admin().await;
        let (entries, _) = ldap
            .search(dn, Scope::Base, "(objectClass=*)", vec!["pwdLastSet"])
            .await
            .unwrap()
            .success()
            .unwrap();
        let entry = SearchEntry::construct(entries.into_iter().next().unwrap());
        let _ = ldap.unbind().await;
        entry.attrs["pwdLastSet"][0].parse().unwrap()
    }

    /// Runs `samba-tool` against this DC's database.
    pub fn samba_tool(&self, args: &[&str]) -> String {
        let dc = self.dir.path().join("dc");
        let output = Command::new("samba-tool")
            .args(args)
            .arg("-H")
            .arg(dc.join("private/sam.ldb"))
            .arg("-s")
            .arg(dc.join("etc/smb.conf"))
            .output()
            .expect("samba-tool runs");
        assert!(
            output.status.success(),
            "samba-tool {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for SambaDc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
        let _ = std::fs::remove_file(pid_file());
        // The lock is released after this, when `_lock` is dropped: the next DC may start.
    }
}

/// SIGTERM to the one PID started, then SIGKILL if it is still there after 10 s.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn require_tools() {
    let found = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(
        found("samba") && found("samba-tool"),
        "these tests need a Samba AD DC: `apt-get install --no-install-recommends samba-ad-dc samba-ad-provision` \
         (scripts/test does), or leave them out with `cargo nextest run -E 'not test(/samba/)'`"
    );
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the Samba DC listens on ports 389 and 636, which needs root; or leave these tests out with `cargo nextest run -E 'not test(/samba/)'`"
    );
}

/// The system-wide lock that lets one DC run at a time.
fn take_lock() -> File {
    let path = std::env::temp_dir().join("b2b-convert-samba-dc.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("open the DC lock file");
    file.lock().expect("take the DC lock");
    file
}

fn pid_file() -> PathBuf {
    std::env::temp_dir().join("b2b-convert-samba-dc.pid")
}

/// A DC left running by a test process that was killed (we hold the lock, so nobody else's
/// DC is running): stop it by the PID it recorded, if that PID is still a samba.
fn stop_leftover() {
    let Ok(text) = std::fs::read_to_string(pid_file()) else {
        return;
    };
    let pid = text.trim();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() == "samba" {
        let _ = Command::new("kill").args(["-TERM", pid]).status();
        let started = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists()
            && started.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = std::fs::remove_file(pid_file());
}

/// The provisioned template domain, made once (under the lock) and reused.
fn template() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let template = root.join(TEMPLATE);
    if template.join("ready").exists() {
        return template;
    }
    let _ = std::fs::remove_dir_all(&template);
    let work = root.join(format!("{TEMPLATE}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let started = Instant::now();
    let output = Command::new("samba-tool")
        .args([
            "domain",
            "provision",
            "--realm=TEST.LOCAL",
            "--domain=TEST",
            "--server-role=dc",
            "--dns-backend=NONE",
            "--use-rfc2307",
            "--host-name=dc1",
        ])
        .arg(format!("--adminpass={ADMIN_PASSWORD}"))
        .arg(format!("--targetdir={}", work.display()))
        .arg(format!("--option=log file={}/log.%m", work.display()))
        .args([
            "--option=interfaces=lo",
            "--option=bind interfaces only=yes",
            "--option=server services=ldap",
        ])
        .output()
        .expect("samba-tool runs");
    assert!(
        output.status.success(),
        "samba-tool domain provision failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Paths in smb.conf name the folder; the copies rewrite them from the template's name.
    let conf = work.join("etc/smb.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace(&work.display().to_string(), &template.display().to_string()),
    )
    .unwrap();
    std::fs::rename(&work, &template).expect("move the template in place");
    File::create(template.join("ready"))
        .and_then(|mut f| writeln!(f, "provisioned in {:?}", started.elapsed()))
        .unwrap();
    template
}

/// A new CA and a server certificate it issued for `localhost` and `127.0.0.1`, as PEM files
/// in `dir`: (CA, server key, server certificate).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "b2b-convert test CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, DC_NAME);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    let ca_file = dir.join("ca.pem");
    let key_file = dir.join("key.pem");
    let cert_file = dir.join("cert.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    // Samba refuses a key file others can read.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    (ca_file, key_file, cert_file)
}

fn run(cmd: &mut Command) {
    let output = cmd.output().expect("command runs");
    assert!(
        output.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
