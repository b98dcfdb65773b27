//! `scramble` against a real Active Directory (a Samba AD DC, see `samba.rs`) and the
//! simulated tenant: a converted wave's synced users get a password nobody knows, over LDAPS
//! or StartTLS with the certificate verified; refusals are per user; a second run skips those
//! done; the PowerShell script's results round-trip through `--import-results`. Plain LDAP is
//! refused before any connection.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use b2b_convert::config::{DirectorySettings, DirectoryTls, NewPasswordKind, Origin, Secret};
use b2b_convert::directory::{Directory, NewPassword, ObjectGuid, Target, Timeouts, UserFailure};
use b2b_convert::domain::{UserId, UserState};
use b2b_convert::store::Store;
use b2b_convert_sim::{Sim, SimSpec, ThrottleConfig};
use serde_json::json;
use uuid::Uuid;

use crate::samba::{self, AdUser, SambaDc};
use crate::support::{b2b_convert, cli, run, sim_env, text};

const TENANT_ID: &str = "5b0c1a9e-7d3f-4c2a-9e1b-2f6a8d4c0e22";

fn timeouts() -> Timeouts {
    Timeouts {
        connect: std::time::Duration::from_secs(5),
        operation: std::time::Duration::from_secs(10),
    }
}

fn entra_id(n: u128) -> String {
    Uuid::from_u128(0xa1f0_c7a2_0000_4000_8000_0000_0000_0000 + n).to_string()
}

/// A synced Entra user for an AD account, as Entra Connect would create it. `sam` is what
/// Entra ID shows (normally the account's own).
fn synced(n: u128, ad: &AdUser, sam: &str, anchor: &str) -> serde_json::Value {
    json!({
        "id": entra_id(n),
        "displayName": ad.sam,
        "userPrincipalName": format!("{}@scramblecorp.com", ad.sam),
        "mail": format!("{}@fabrikam.com", ad.sam),
        "onPremisesSyncEnabled": true,
        "onPremisesImmutableId": anchor,
        "onPremisesSamAccountName": sam,
        "onPremisesDistinguishedName": ad.dn,
        "onPremisesDomainName": samba::REALM,
    })
}

fn tenant_file(dir: &Path, users: &[serde_json::Value]) -> PathBuf {
    let tenant = json!({
        "tenantId": TENANT_ID,
        "displayName": "Scramble Corp",
        "domains": [
            { "id": "scramblecorp.onmicrosoft.com", "isInitial": true, "isDefault": false },
            { "id": "scramblecorp.com", "isDefault": true }
        ],
        "realms": { "fabrikam.com": "Managed" },
        "users": users,
        "applications": [{
            "clientId": "c11e0000-0000-4000-8000-000000000022",
            "displayName": "b2b-convert scramble tests",
            "secrets": ["scramble-test-secret"],
            "roles": ["User.Read.All", "User.Invite.All", "User.ReadWrite.All", "Domain.Read.All",
                      "Organization.Read.All", "IdentityProvider.Read.All", "GroupMember.Read.All",
                      "Directory.Read.All"],
            "delegatedScopes": [],
            "publicClient": false
        }]
    });
    let path = dir.join("tenant.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&tenant).unwrap()).unwrap();
    path
}

/// `[directory]` for the DC, with extra lines.
fn write_config(dir: &Path, dc: &SambaDc, extra: &str) {
    std::fs::write(
        dir.join("b2b-convert.toml"),
        format!(
            "[directory]\nurl = \"{}\"\nca_file = \"{}\"\nbind_dn = \"{}\"\nbase_dn = \"{}\"\n{extra}",
            samba::URL,
            dc.ca_file.display(),
            samba::ADMIN,
            samba::BASE_DN,
        ),
    )
    .unwrap();
}

async fn scramble(dir: &Path, sim: &Sim, args: &[&str]) -> std::process::Output {
    let mut cmd = b2b_convert(dir);
    cmd.arg("scramble")
        .args(["--wave", "pilot"])
        .args(args)
        .envs(sim_env(sim))
        .env("B2BC_DIRECTORY_BIND_PASSWORD", samba::ADMIN_PASSWORD);
    run(cmd).await
}

fn assert_code(output: &std::process::Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

async fn state(dir: &Path, n: u128) -> UserState {
    let store = Store::open(&dir.join("b2b-convert.db")).await.unwrap();
    let wave = store.wave_by_name("pilot").await.unwrap().unwrap();
    let user: UserId = entra_id(n).parse().unwrap();
    let state = store.member(wave.id, user).await.unwrap().unwrap().state;
    store.close().await;
    state
}

/// Plays the emitted PowerShell script the way `Set-ADAccountPassword` would (PowerShell is
/// not available here): for each listed user, find the account by objectGUID, check its
/// sAMAccountName, reset its password, read pwdLastSet, and write the results CSV exactly as
/// Windows PowerShell 5.1's `Export-Csv -NoTypeInformation -Encoding UTF8` does.
async fn play_script(dc: &SambaDc, script: &str, results: &Path) {
    let field = |line: &str, name: &str| {
        let start = line.find(&format!("{name} = '")).unwrap() + name.len() + 4;
        let rest = &line[start..];
        rest[..rest.find('\'').unwrap()].to_owned()
    };
    let mut csv = String::from(
        "\u{feff}\"Wave\",\"UserId\",\"ObjectGuid\",\"SamAccountName\",\"Result\",\"DomainController\",\"PwdLastSet\",\"CompletedAt\",\"Error\"\r\n",
    );
    let wave = field(
        script.lines().find(|l| l.starts_with("$Wave = ")).unwrap(),
        "$Wave",
    );
    for line in script
        .lines()
        .filter(|l| l.contains("[pscustomobject]@{ UserId"))
    {
        let (user, guid, sam) = (
            field(line, "UserId"),
            field(line, "ObjectGuid"),
            field(line, "SamAccountName"),
        );
        let bytes = Uuid::parse_str(&guid).unwrap().to_bytes_le();
        let filter = ObjectGuid::from_bytes(bytes).filter_value();
        let mut ldap = dc.admin().await;
        let (entries, _) = ldap
            .search(
                samba::BASE_DN,
                ldap3::Scope::Subtree,
                &format!("(objectGUID={filter})"),
                vec!["sAMAccountName"],
            )
            .await
            .unwrap()
            .success()
            .unwrap();
        let now = "2026-11-21T12:00:00.0000000Z";
        let row = match entries
            .into_iter()
            .next()
            .map(ldap3::SearchEntry::construct)
        {
            None => format!(
                "\"failed\",\"DC1.test.local\",\"\",\"{now}\",\"Cannot find an object with identity: '{guid}' under: 'DC=test,DC=local'.\""
            ),
            Some(entry) if !entry.attrs["sAMAccountName"][0].eq_ignore_ascii_case(&sam) => format!(
                "\"failed\",\"DC1.test.local\",\"\",\"{now}\",\"the AD account with objectGUID {guid} has sAMAccountName '{}', but Entra ID says '{sam}'\"",
                entry.attrs["sAMAccountName"][0]
            ),
            Some(entry) => {
                let value: Vec<u8> = format!("\"{}-Aa1!\"", Uuid::new_v4())
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .collect();
                ldap.modify(
                    &entry.dn,
                    vec![ldap3::Mod::Replace(
                        b"unicodePwd".to_vec(),
                        std::collections::HashSet::from([value]),
                    )],
                )
                .await
                .unwrap()
                .success()
                .unwrap();
                format!(
                    "\"scrambled\",\"DC1.test.local\",\"2026-11-21T12:00:00.1234567Z\",\"{now}\",\"\""
                )
            }
        };
        let _ = write!(csv, "\"{wave}\",\"{user}\",\"{guid}\",\"{sam}\",{row}\r\n");
        let _ = ldap.unbind().await;
    }
    std::fs::write(results, csv).unwrap();
}

/// A wave converted in the simulated tenant whose synced users have accounts in the DC.
struct Scenario {
    dir: tempfile::TempDir,
    sim: Sim,
    alice: AdUser,
    bob: AdUser,
    carol: AdUser,
    erin: AdUser,
    frank: AdUser,
}

#[tokio::test(flavor = "multi_thread")]
async fn samba_a_converted_wave_is_scrambled_once_and_the_script_round_trips() {
    let dc = SambaDc::start().await;
    let scenario = converted_wave(&dc).await;
    nothing_changes_without_go_ahead(&dc, &scenario).await;
    direct_mode(&dc, &scenario).await;
    script_mode(&dc, &scenario).await;
}

/// AD accounts, their synced Entra users (plus a cloud-only one and one whose account is
/// gone), discovered, planned, invited; all but Carol redeemed.
async fn converted_wave(dc: &SambaDc) -> Scenario {
    let alice = dc
        .create_user("alice", "Alice Partner", "Alice#Old-pw1")
        .await;
    let bob = dc.create_user("bob", "Bob Partner", "Bob#Old-pw1").await;
    let carol = dc
        .create_user("carol", "Carol Partner", "Carol#Old-pw1")
        .await;
    let erin = dc.create_user("erin", "Erin Partner", "Erin#Old-pw1").await;
    let frank = dc
        .create_user("frank", "Frank Partner", "Frank#Old-pw1")
        .await;
    // Frank's account came from another forest: Entra Connect anchors it by
    // mS-DS-ConsistencyGuid, which is not its objectGUID here.
    let frank_anchor = *Uuid::new_v4().as_bytes();
    dc.replace(&frank.dn, "mS-DS-ConsistencyGuid", frank_anchor.to_vec())
        .await;
    let ghost_anchor = ObjectGuid::from_bytes(*Uuid::new_v4().as_bytes()).immutable_id();

    let dir = tempfile::tempdir().unwrap();
    let tenant = tenant_file(
        dir.path(),
        &[
            synced(1, &alice, "alice", &alice.immutable_id()),
            synced(2, &bob, "bob", &bob.immutable_id()),
            synced(3, &carol, "carol", &carol.immutable_id()),
            // Entra ID shows an older sAMAccountName: the account must not be touched.
            synced(4, &erin, "erin.old", &erin.immutable_id()),
            synced(
                5,
                &frank,
                "frank",
                &ObjectGuid::from_bytes(frank_anchor).immutable_id(),
            ),
            // Synced, but its AD account is gone.
            json!({
                "id": entra_id(6), "displayName": "Ghost", "userPrincipalName": "ghost@scramblecorp.com",
                "mail": "ghost@fabrikam.com", "onPremisesSyncEnabled": true,
                "onPremisesImmutableId": ghost_anchor, "onPremisesSamAccountName": "ghost",
            }),
            json!({
                "id": entra_id(7), "displayName": "Dave Cloud", "userPrincipalName": "dave@scramblecorp.com",
                "mail": "dave@fabrikam.com", "otherMails": ["dave@fabrikam.com"],
            }),
        ],
    );
    let sim = Sim::start(SimSpec::from_file(tenant).with_throttling(ThrottleConfig::disabled()))
        .await
        .expect("the simulator starts");
    write_config(dir.path(), dc, "");
    for args in [
        &["discover"][..],
        &["plan", "--wave", "pilot", "--all"],
        &["run", "--wave", "pilot", "--yes", "--reconcile-delay", "0"],
    ] {
        assert_code(&cli(dir.path(), &sim, args).await, 0);
    }
    for n in [1, 2, 4, 5, 6, 7] {
        sim.redeem(&entra_id(n)).unwrap();
    }
    assert_code(
        &cli(
            dir.path(),
            &sim,
            &["status", "--wave", "pilot", "--refresh"],
        )
        .await,
        0,
    );
    Scenario {
        dir,
        sim,
        alice,
        bob,
        carol,
        erin,
        frank,
    }
}

/// A dry run, a run without confirmation and a run against a DC the configured CA does not
/// vouch for change nothing.
async fn nothing_changes_without_go_ahead(dc: &SambaDc, scenario: &Scenario) {
    let Scenario {
        dir, sim, alice, ..
    } = scenario;
    let before = dc.pwd_last_set(&alice.dn).await;

    // Dry run: who and why, nothing changed.
    let dry = scramble(dir.path(), sim, &["--dry-run"]).await;
    assert_code(&dry, 0);
    let stdout = text(&dry.stdout);
    assert!(stdout.contains("Would scramble 5 user(s)"), "{stdout}");
    for expected in [
        "alice@scramblecorp.com",
        "not-redeemed",
        "carol@scramblecorp.com",
        "cloud-only",
        "dave@scramblecorp.com",
    ] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }
    assert_eq!(
        dc.pwd_last_set(&alice.dn).await,
        before,
        "a dry run changes nothing"
    );

    // Without a terminal, nothing happens without --yes.
    let unconfirmed = scramble(dir.path(), sim, &[]).await;
    assert_code(&unconfirmed, 4);
    assert!(
        text(&unconfirmed.stderr).contains("--yes"),
        "{}",
        text(&unconfirmed.stderr)
    );
    assert_eq!(dc.pwd_last_set(&alice.dn).await, before);

    // A DC whose certificate the configured CA did not issue is refused before the bind.
    std::fs::write(
        dir.path().join("b2b-convert.toml"),
        format!(
            "[directory]\nurl = \"{}\"\nca_file = \"{}\"\nbind_dn = \"{}\"\n",
            samba::URL,
            dc.other_ca_file.display(),
            samba::ADMIN
        ),
    )
    .unwrap();
    let wrong_ca = scramble(dir.path(), sim, &["--yes"]).await;
    assert_code(&wrong_ca, 1);
    let stderr = text(&wrong_ca.stderr);
    assert!(
        stderr.contains("certificate") && stderr.contains("directory.ca_file"),
        "{stderr}"
    );
    assert!(!stderr.contains(samba::ADMIN_PASSWORD));
    assert_eq!(dc.pwd_last_set(&alice.dn).await, before);
    write_config(dir.path(), dc, "");
}

/// Two direct runs: three scrambled, two refused per user, two skipped; the
/// second run skips those done.
async fn direct_mode(dc: &SambaDc, scenario: &Scenario) {
    let Scenario {
        dir,
        sim,
        alice,
        bob,
        carol,
        erin,
        frank,
    } = scenario;
    let before = dc.pwd_last_set(&alice.dn).await;

    // Direct mode: three scrambled, two refused per user, two skipped.
    let first = scramble(dir.path(), sim, &["--yes"]).await;
    assert_code(&first, 3);
    let stdout = text(&first.stdout);
    assert!(
        stdout.contains(&format!("on {}", samba::DC_NAME)),
        "{stdout}"
    );
    assert!(stdout.contains(UserFailure::IDENTITY_MISMATCH), "{stdout}");
    assert!(stdout.contains(UserFailure::NOT_FOUND), "{stdout}");
    for user in [&alice, &bob, &frank] {
        assert!(
            !dc.can_bind(&user.upn, &user.password).await,
            "{}: the old password no longer binds",
            user.sam
        );
        assert!(dc.pwd_last_set(&user.dn).await > before, "{}", user.sam);
    }
    assert!(
        dc.can_bind(&erin.upn, &erin.password).await,
        "a mismatched account is left alone"
    );
    assert!(
        dc.can_bind(&carol.upn, &carol.password).await,
        "not redeemed yet"
    );
    for (n, expected) in [
        (1, UserState::Scrambled),
        (2, UserState::Scrambled),
        (3, UserState::Invited),
        (4, UserState::Accepted),
        (5, UserState::Scrambled),
        (6, UserState::Accepted),
        (7, UserState::Accepted),
    ] {
        assert_eq!(state(dir.path(), n).await, expected, "user {n}");
    }
    assert_direct_run_recorded(dir.path()).await;
    let after_first = dc.pwd_last_set(&alice.dn).await;

    // A second run skips those done (and fails the same two again); its JSON document follows
    // docs/schema/scramble.schema.json.
    let second = scramble(dir.path(), sim, &["--yes", "--json"]).await;
    assert_code(&second, 3);
    let stdout = text(&second.stdout);
    assert!(stdout.contains("already-scrambled"), "{stdout}");
    let document: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    crate::schema::assert_valid("scramble", &document);
    assert_eq!(document["mode"], "ldap");
    assert_eq!(
        document["failures"].as_array().unwrap().len(),
        2,
        "{document}"
    );
    assert_eq!(
        dc.pwd_last_set(&alice.dn).await,
        after_first,
        "not scrambled twice"
    );
}

/// The store after the first direct run: states with time and DC, events with who and when.
async fn assert_direct_run_recorded(dir: &Path) {
    let store = Store::open(&dir.join("b2b-convert.db")).await.unwrap();
    let wave = store.wave_by_name("pilot").await.unwrap().unwrap();
    let alice_id: UserId = entra_id(1).parse().unwrap();
    let member = store.member(wave.id, alice_id).await.unwrap().unwrap();
    assert_eq!(member.scrambled_on.as_deref(), Some(samba::DC_NAME));
    assert!(member.scrambled_at.is_some());
    let events = store.wave_events(wave.id).await.unwrap();
    let done: Vec<_> = events
        .iter()
        .filter(|e| e.event.kind == "scramble.done")
        .collect();
    assert_eq!(done.len(), 3);
    assert!(done.iter().all(|e| e.event.detail["by"] == samba::ADMIN
        && e.event.detail["domain_controller"] == samba::DC_NAME
        && e.event.run_id.is_some()));
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.event.kind == "scramble.failed")
        .collect();
    assert_eq!(failed.len(), 2);
    assert!(
        failed
            .iter()
            .any(|e| e.event.detail["code"] == UserFailure::IDENTITY_MISMATCH)
    );
    store.close().await;
}

/// The script for the rest (the invited user included), played against the DC, and its
/// results imported: refused whole when a row is wrong, recorded once otherwise.
async fn script_mode(dc: &SambaDc, scenario: &Scenario) {
    let Scenario {
        dir,
        sim,
        alice: _,
        carol,
        ..
    } = scenario;
    let script_path = dir.path().join("scramble.ps1");
    let emitted = scramble(
        dir.path(),
        sim,
        &[
            "--include-invited",
            "--emit-powershell",
            script_path.to_str().unwrap(),
        ],
    )
    .await;
    assert_code(&emitted, 0);
    let mode = std::fs::metadata(&script_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let script = std::fs::read_to_string(&script_path).unwrap();
    assert_eq!(
        script.matches("[pscustomobject]@{ UserId").count(),
        3,
        "{script}"
    );
    assert!(
        script.contains(&format!("UserId = '{}'", entra_id(3))),
        "carol"
    );
    assert!(!script.contains(&entra_id(1)), "alice is done");
    let carol_guid = ObjectGuid::from_bytes(carol.object_guid).to_string();
    assert!(script.contains(&format!("ObjectGuid = '{carol_guid}'")));
    assert!(script.contains("Set-ADAccountPassword -Identity $account.ObjectGUID"));
    let again = scramble(
        dir.path(),
        sim,
        &["--emit-powershell", script_path.to_str().unwrap()],
    )
    .await;
    assert_ne!(
        again.status.code(),
        Some(0),
        "an existing script is not replaced without --force"
    );

    play_and_import(dc, scenario, &script).await;
}

/// Plays the script against the DC and imports its results: refused whole when a row names
/// the wrong account, recorded once otherwise.
async fn play_and_import(dc: &SambaDc, scenario: &Scenario, script: &str) {
    let Scenario {
        dir,
        sim,
        alice,
        carol,
        ..
    } = scenario;
    let carol_guid = ObjectGuid::from_bytes(carol.object_guid).to_string();
    let results = dir.path().join("scramble-pilot-results.csv");
    play_script(dc, script, &results).await;
    assert!(!dc.can_bind(&carol.upn, &carol.password).await);

    // A results file that names the wrong account for a user is refused whole, by line.
    let original = std::fs::read_to_string(&results).unwrap();
    let alice_guid = ObjectGuid::from_bytes(alice.object_guid).to_string();
    let tampered = dir.path().join("tampered.csv");
    std::fs::write(&tampered, original.replace(&carol_guid, &alice_guid)).unwrap();
    let refused = scramble(
        dir.path(),
        sim,
        &["--import-results", tampered.to_str().unwrap()],
    )
    .await;
    assert_code(&refused, 2);
    assert!(
        text(&refused.stderr).contains("tampered.csv, line"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(
        state(dir.path(), 3).await,
        UserState::Invited,
        "nothing recorded"
    );

    let imported = scramble(
        dir.path(),
        sim,
        &["--import-results", results.to_str().unwrap()],
    )
    .await;
    assert_code(&imported, 3);
    let stdout = text(&imported.stdout);
    assert!(
        stdout.contains("1 scramble(s) recorded, 0 already recorded, 2 failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Cannot find an object with identity"),
        "{stdout}"
    );
    assert_eq!(state(dir.path(), 3).await, UserState::Scrambled);
    let reimported = scramble(
        dir.path(),
        sim,
        &["--import-results", results.to_str().unwrap()],
    )
    .await;
    assert!(
        text(&reimported.stdout).contains("0 scramble(s) recorded, 1 already recorded"),
        "{}",
        text(&reimported.stdout)
    );

    let status = cli(dir.path(), sim, &["status", "--wave", "pilot", "--json"]).await;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["states"]["scrambled"], 4);
    {
        let store = Store::open(&dir.path().join("b2b-convert.db"))
            .await
            .unwrap();
        let wave = store.wave_by_name("pilot").await.unwrap().unwrap();
        let carol_id: UserId = entra_id(3).parse().unwrap();
        let member = store.member(wave.id, carol_id).await.unwrap().unwrap();
        assert_eq!(member.scrambled_on.as_deref(), Some("DC1.test.local"));
        assert_eq!(
            member.scrambled_at,
            Some(time::macros::datetime!(2026-11-21 12:00 UTC)),
            "the time the script did it"
        );
        store.close().await;
    }
}

fn settings(
    dc: &SambaDc,
    url: &str,
    tls: DirectoryTls,
    bind_dn: &str,
    password: &str,
) -> DirectorySettings {
    DirectorySettings {
        url: Some(url.parse().unwrap()),
        tls,
        ca_file: Some(dc.ca_file.clone()),
        insecure_skip_verify: false,
        bind_dn: Some(bind_dn.to_owned()),
        bind_password: Some(Secret::new(password, Origin::Default)),
        base_dn: None,
        new_password: NewPasswordKind::Guid,
        random_password_length: 64,
    }
}

fn target(n: u128, user: &AdUser) -> Target {
    Target {
        user_id: entra_id(n).parse().unwrap(),
        user_principal_name: user.upn.clone(),
        object_guid: ObjectGuid::from_bytes(user.object_guid),
        sam_account_name: Some(user.sam.clone()),
        distinguished_name: Some(user.dn.clone()),
        domain_name: Some(samba::REALM.into()),
    }
}

/// A log sink for one test (tracing's thread-local default: the tests below run on one thread).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn samba_the_directory_client_verifies_tls_and_maps_ad_refusals() {
    let dc = SambaDc::start().await;
    let tina = dc.create_user("tina", "Tina Target", "Tina#Old-pw1").await;
    let uma = dc.create_user("uma", "Uma Ordinary", "Uma#Old-pw1").await;
    let pat = dc
        .create_user("pat", "Pat Policy", "Pat#Old-pw1-long-enough")
        .await;

    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fresh = dc.create_user("tom", "Tom Target", "Tom#Old-pw1").await;
    let sentinel = admin_scrambles(&dc, &tina, &fresh, &pat).await;
    ordinary_account_is_refused(&dc, &uma, &fresh).await;
    tls_is_verified(&dc, &logs).await;

    // A wrong bind password says what to check.
    let wrong_password = settings(&dc, samba::URL, DirectoryTls::Ldaps, samba::ADMIN, "nope");
    let err = Directory::connect(&wrong_password, timeouts())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("password is wrong"), "{err}");
    assert!(!err.contains(samba::ADMIN_PASSWORD) && !err.contains("nope"));

    let logs = logs.text();
    assert!(
        !logs.contains(&sentinel),
        "the password never reaches the log"
    );
    assert!(
        !logs.contains(samba::ADMIN_PASSWORD),
        "nor the bind password"
    );
}

/// As Administrator: a chosen value reaches AD (and only AD), generated values replace the
/// old password, the password policy's refusal and a missing account are per-user failures.
async fn admin_scrambles(dc: &SambaDc, tina: &AdUser, fresh: &AdUser, pat: &AdUser) -> String {
    // Verified LDAPS; the base DN comes from the DC when not configured.
    let admin = settings(
        dc,
        samba::URL,
        DirectoryTls::Ldaps,
        samba::ADMIN,
        samba::ADMIN_PASSWORD,
    );
    let mut directory = Directory::connect(&admin, timeouts()).await.unwrap();
    assert_eq!(directory.domain_controller(), samba::DC_NAME);
    assert_eq!(directory.base_dn(), samba::BASE_DN);

    // The value goes to AD (the user can sign in with it) and nowhere else.
    let sentinel = format!("Sentinel-{}-Aa1!", Uuid::new_v4());
    let before = dc.pwd_last_set(&tina.dn).await;
    let done = directory
        .scramble(&target(1, tina), NewPassword::chosen_for_tests(&sentinel))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.dn, tina.dn);
    assert!(dc.pwd_last_set(&tina.dn).await > before, "pwdLastSet moved");
    assert!(done.pwd_last_set_before.is_some());
    assert!(dc.can_bind(&tina.upn, &sentinel).await);
    assert!(
        !dc.can_bind(&tina.upn, &tina.password).await,
        "the old password is gone"
    );
    assert!(!format!("{done:?}").contains(&sentinel));

    // A generated value: unknown to everyone; the old password stops working.
    directory
        .scramble(
            &target(2, fresh),
            NewPassword::generate(NewPasswordKind::Guid, 64),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!dc.can_bind(&fresh.upn, &fresh.password).await);

    // The domain's policy refuses a GUID for Pat (a fine-grained policy of 40 characters):
    // 0000052D, with the fix; a long random value passes.
    dc.samba_tool(&[
        "domain",
        "passwordsettings",
        "pso",
        "create",
        "long-passwords",
        "1",
        "--min-pwd-length=40",
    ]);
    dc.samba_tool(&[
        "domain",
        "passwordsettings",
        "pso",
        "apply",
        "long-passwords",
        "pat",
    ]);
    let refused = directory
        .scramble(
            &target(3, pat),
            NewPassword::generate(NewPasswordKind::Guid, 64),
        )
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.code, UserFailure::PASSWORD_POLICY, "{refused:?}");
    assert!(refused.message.contains("0000052D"), "{}", refused.message);
    assert!(refused.fix.contains("random"), "{}", refused.fix);
    assert!(dc.can_bind(&pat.upn, &pat.password).await, "unchanged");
    directory
        .scramble(
            &target(3, pat),
            NewPassword::generate(NewPasswordKind::Random, 64),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!dc.can_bind(&pat.upn, &pat.password).await);

    // A missing account is a per-user failure; the connection carries on.
    let ghost = Target {
        object_guid: ObjectGuid::from_bytes(*Uuid::new_v4().as_bytes()),
        ..target(4, tina)
    };
    let missing = directory
        .scramble(&ghost, NewPassword::generate(NewPasswordKind::Guid, 64))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(missing.code, UserFailure::NOT_FOUND);
    assert!(missing.fix.contains(samba::REALM), "{}", missing.fix);
    directory.close().await;

    sentinel
}

/// An account without the "Reset password" right is refused per user, with the fix.
async fn ordinary_account_is_refused(dc: &SambaDc, uma: &AdUser, fresh: &AdUser) {
    // An ordinary account may not reset others' passwords.
    let ordinary = settings(dc, samba::URL, DirectoryTls::Ldaps, &uma.upn, &uma.password);
    let mut as_uma = Directory::connect(&ordinary, timeouts()).await.unwrap();
    let denied = as_uma
        .scramble(
            &target(5, fresh),
            NewPassword::generate(NewPasswordKind::Guid, 64),
        )
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(denied.code, UserFailure::INSUFFICIENT_RIGHTS, "{denied:?}");
    assert!(denied.fix.contains("Reset password"), "{}", denied.fix);
    as_uma.close().await;
}

/// StartTLS and names verify; a wrong CA or the system's roots are refused before the bind;
/// `insecure_skip_verify` connects with a loud warning.
async fn tls_is_verified(dc: &SambaDc, logs: &Captured) {
    // StartTLS on 389, and the DC's DNS name in the URL, verify too.
    for (url, tls) in [
        ("ldap://127.0.0.1", DirectoryTls::StartTls),
        ("ldaps://localhost", DirectoryTls::Ldaps),
    ] {
        let directory = Directory::connect(
            &settings(dc, url, tls, samba::ADMIN, samba::ADMIN_PASSWORD),
            timeouts(),
        )
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
        directory.close().await;
    }

    // A wrong CA, or none (the system's roots), is refused before the bind.
    let wrong = DirectorySettings {
        ca_file: Some(dc.other_ca_file.clone()),
        ..settings(
            dc,
            samba::URL,
            DirectoryTls::Ldaps,
            samba::ADMIN,
            samba::ADMIN_PASSWORD,
        )
    };
    let err = Directory::connect(&wrong, timeouts())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("directory.ca_file"), "{err}");
    let system = DirectorySettings {
        ca_file: None,
        ..settings(
            dc,
            samba::URL,
            DirectoryTls::Ldaps,
            samba::ADMIN,
            samba::ADMIN_PASSWORD,
        )
    };
    let err = Directory::connect(&system, timeouts())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not trust"), "{err}");

    // Labs: no verification, but a loud warning.
    let lab = DirectorySettings {
        ca_file: None,
        insecure_skip_verify: true,
        ..settings(
            dc,
            samba::URL,
            DirectoryTls::Ldaps,
            samba::ADMIN,
            samba::ADMIN_PASSWORD,
        )
    };
    Directory::connect(&lab, timeouts())
        .await
        .unwrap()
        .close()
        .await;
    assert!(logs.text().contains("NOT verified"), "{}", logs.text());
}

/// Plain LDAP never leaves the machine: the configuration refuses it, and so does the
/// directory client itself, before opening a connection.
#[tokio::test(flavor = "multi_thread")]
async fn plain_ldap_is_refused_before_connecting() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let url = format!("ldap://127.0.0.1:{port}");
    let settings = DirectorySettings {
        url: Some(url.parse().unwrap()),
        tls: DirectoryTls::Ldaps,
        ca_file: None,
        insecure_skip_verify: false,
        bind_dn: Some("svc@corp".into()),
        bind_password: Some(Secret::new("pw", Origin::Default)),
        base_dn: None,
        new_password: NewPasswordKind::Guid,
        random_password_length: 64,
    };
    let err = Directory::connect(&settings, timeouts()).await.unwrap_err();
    assert!(err.to_string().contains("refusing plain LDAP"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("b2b-convert.toml"),
        format!("[directory]\nurl = \"{url}\"\nbind_dn = \"svc@corp\"\n"),
    )
    .unwrap();
    let mut cmd = b2b_convert(dir.path());
    cmd.args(["scramble", "--wave", "pilot", "--yes"])
        .env("B2BC_DIRECTORY_BIND_PASSWORD", "pw");
    let output = run(cmd).await;
    assert_code(&output, 2);
    assert!(
        text(&output.stderr).contains("plain LDAP is refused"),
        "{}",
        text(&output.stderr)
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no connection was made"
    );
}

/// Without `[directory]`, direct mode says what to set (or to use the script); dry runs and
/// scripts need no directory; a wave with nothing due writes no script.
#[tokio::test(flavor = "multi_thread")]
async fn scramble_without_a_directory_says_what_to_set() {
    let sim = crate::support::quiet_sim(40).await;
    let dir = tempfile::tempdir().unwrap();
    assert_code(&cli(dir.path(), &sim, &["discover"]).await, 0);
    assert_code(
        &cli(dir.path(), &sim, &["plan", "--wave", "pilot", "--all"]).await,
        0,
    );

    let output = cli(dir.path(), &sim, &["scramble", "--wave", "pilot", "--yes"]).await;
    assert_code(&output, 2);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("directory.url") && stderr.contains("--emit-powershell"),
        "{stderr}"
    );

    let dry = cli(
        dir.path(),
        &sim,
        &["scramble", "--wave", "pilot", "--dry-run"],
    )
    .await;
    assert_code(&dry, 0);
    let stdout = text(&dry.stdout);
    assert!(stdout.contains("Would scramble 0 user(s)"), "{stdout}");
    assert!(
        stdout.contains("not-converted"),
        "nothing was run yet: {stdout}"
    );

    let script = dir.path().join("s.ps1");
    let emitted = cli(
        dir.path(),
        &sim,
        &[
            "scramble",
            "--wave",
            "pilot",
            "--emit-powershell",
            script.to_str().unwrap(),
        ],
    )
    .await;
    assert_code(&emitted, 0);
    assert!(
        text(&emitted.stdout).contains("no script written"),
        "{}",
        text(&emitted.stdout)
    );
    assert!(!script.exists());

    let output = cli(
        dir.path(),
        &sim,
        &["scramble", "--wave", "nope", "--dry-run"],
    )
    .await;
    assert_code(&output, 2);
}
