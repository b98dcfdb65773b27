use std::path::Path;

use super::raw::RawSettings;
use super::*;
use crate::domain::{Rule, RuleMode};

/// Writes `text` as a config file in a fresh folder and loads it with `env` and `flags`.
fn load_text(
    text: &str,
    env: &[(&str, &str)],
    flags: Vec<FlagOverride>,
) -> (tempfile::TempDir, Result<Settings, Error>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b2b-convert.toml");
    std::fs::write(&path, text).unwrap();
    let sources = Sources {
        config_path: Some(path),
        env: Environment::from_pairs(env.iter().copied()),
        flags,
    };
    let result = load(&sources);
    (dir, result)
}

fn value_of<'a>(settings: &'a Settings, key: &str) -> &'a EffectiveValue {
    settings
        .effective_values()
        .iter()
        .find(|v| v.key == key)
        .unwrap_or_else(|| panic!("no effective value for {key}"))
}

#[test]
fn example_config_holds_exactly_the_defaults() {
    let mut parsed: RawSettings = toml::from_str(EXAMPLE_CONFIG).unwrap();
    parsed.fill_rule_defaults();
    let mut defaults = RawSettings::default();
    defaults.fill_rule_defaults();
    assert_eq!(parsed, defaults);
}

#[test]
fn the_partner_preflight_is_on_by_default_documented_and_can_be_turned_off() {
    assert!(EXAMPLE_CONFIG.contains("\ncheck_partner_settings = true\n"));
    let (_dir, settings) = load_text("", &[], vec![]);
    assert!(settings.unwrap().invitation.check_partner_settings);
    let (_dir, settings) = load_text(
        "[invitation]\ncheck_partner_settings = false\n",
        &[],
        vec![],
    );
    assert!(!settings.unwrap().invitation.check_partner_settings);
}

#[test]
fn restore_mail_on_failure_is_on_by_default_documented_and_can_be_turned_off() {
    assert!(EXAMPLE_CONFIG.contains("\nrestore_mail_on_failure = true\n"));
    let (_dir, settings) = load_text("", &[], vec![]);
    assert!(settings.unwrap().invitation.restore_mail_on_failure);
    let (_dir, settings) = load_text(
        "[invitation]\nrestore_mail_on_failure = false\n",
        &[],
        vec![],
    );
    assert!(!settings.unwrap().invitation.restore_mail_on_failure);
}

#[test]
fn example_config_documents_every_key() {
    // Uncomment every `# key = value` line; the result must parse and leave no key unset.
    let uncommented: String = EXAMPLE_CONFIG
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if toml::from_str::<toml::Table>(rest).is_ok() && rest.contains(" = ") => {
                rest.to_owned()
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut raw: RawSettings = toml::from_str(&uncommented).unwrap();
    raw.fill_rule_defaults();
    let json = serde_json::to_value(&raw).unwrap();
    let mut unset = Vec::new();
    collect_nulls(&json, "", &mut unset);
    assert!(
        unset.is_empty(),
        "keys missing from config/example.toml: {unset:?}"
    );
}

fn collect_nulls(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Null => out.push(prefix.to_owned()),
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                collect_nulls(v, &format!("{prefix}.{k}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn example_config_loads_and_validates() {
    let (_dir, settings) = load_text(EXAMPLE_CONFIG, &[], vec![]);
    let settings = settings.unwrap();
    assert_eq!(
        settings.tenant.graph_url.as_str(),
        "https://graph.microsoft.com/"
    );
    assert_eq!(
        settings.rules.mode(Rule::ExchangeMailbox),
        RuleMode::Enforce
    );
    assert!(
        settings.invitation.redirect_url.is_none(),
        "no tenant id, no default redirect"
    );
}

#[test]
fn misspelt_key_names_the_key_and_line() {
    let text = "[throughput]\nmax_concurrency = 4\nmax_concurency = 8\n";
    let (_dir, result) = load_text(text, &[], vec![]);
    let err = result.unwrap_err();
    let Error::Invalid {
        key,
        origin,
        message,
    } = &err
    else {
        panic!("unexpected error {err:?}")
    };
    assert_eq!(key, "throughput.max_concurency");
    assert!(matches!(origin, Origin::File { line: 3, .. }), "{origin:?}");
    assert!(
        message.contains("unknown key `max_concurency`"),
        "{message}"
    );
    assert!(
        message.contains("max_concurrency"),
        "suggests the valid keys: {message}"
    );
    assert!(
        err.to_string().contains("b2b-convert.toml, line 3"),
        "{err}"
    );
}

#[test]
fn misspelt_rule_names_the_rule() {
    let text = "[rules]\nexchange-mailbx = \"warn\"\n";
    let (_dir, result) = load_text(text, &[], vec![]);
    let err = result.unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { key, origin: Origin::File { line: 2, .. }, .. } if key == "rules.exchange-mailbx"),
        "{err:?}"
    );
}

#[test]
fn wrong_type_names_the_key() {
    let (_dir, result) = load_text("[throughput]\nmax_concurrency = \"lots\"\n", &[], vec![]);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("`throughput.max_concurrency`"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn syntax_error_names_the_line() {
    let (_dir, result) = load_text("[tenant]\ncloud = \"global\n", &[], vec![]);
    assert!(matches!(result.unwrap_err(), Error::Syntax { line: 2, .. }));
}

#[test]
fn a_secret_in_the_file_is_refused_with_the_way_to_give_it() {
    let (_dir, result) = load_text("[auth]\nclient_secret = \"hunter2\"\n", &[], vec![]);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("AZURE_CLIENT_SECRET"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "the secret must not be echoed: {err}"
    );
}

#[test]
fn environment_overrides_file_and_flags_override_environment() {
    let text = "[tenant]\ntenant_id = \"contoso.onmicrosoft.com\"\n[store]\npath = \"file.db\"\n";
    let env = [
        ("AZURE_TENANT_ID", "11111111-2222-3333-4444-555555555555"),
        ("B2BC_DB", "env.db"),
    ];
    let flags = vec![FlagOverride {
        flag: "--db".into(),
        key: "store.path".into(),
        value: toml::Value::String("flag.db".into()),
    }];
    let (_dir, settings) = load_text(text, &env, flags);
    let settings = settings.unwrap();
    assert_eq!(
        settings.tenant.tenant_id.as_deref(),
        Some("11111111-2222-3333-4444-555555555555")
    );
    assert_eq!(settings.store.path, Path::new("flag.db"));
    assert_eq!(
        value_of(&settings, "tenant.tenant_id").origin,
        Origin::Env {
            var: "AZURE_TENANT_ID".into()
        }
    );
    assert_eq!(
        value_of(&settings, "store.path").origin,
        Origin::Flag {
            flag: "--db".into()
        }
    );
    assert_eq!(value_of(&settings, "tenant.cloud").origin, Origin::Default);
}

#[test]
fn file_values_report_their_line() {
    let (_dir, settings) = load_text("\n[tenant]\ncloud = \"usgov\"\n", &[], vec![]);
    let settings = settings.unwrap();
    assert!(matches!(
        value_of(&settings, "tenant.cloud").origin,
        Origin::File { line: 3, .. }
    ));
    assert_eq!(
        settings.tenant.graph_url.as_str(),
        "https://graph.microsoft.us/"
    );
    assert_eq!(
        settings.tenant.login_url.as_str(),
        "https://login.microsoftonline.us/"
    );
}

#[test]
fn relative_paths_from_the_file_are_relative_to_its_folder() {
    let (dir, settings) = load_text("[store]\npath = \"state/b2b.db\"\n", &[], vec![]);
    assert_eq!(
        settings.unwrap().store.path,
        dir.path().join("state/b2b.db")
    );
    let (dir, settings) = load_text("", &[], vec![]);
    assert_eq!(
        settings.unwrap().store.path,
        dir.path().join("b2b-convert.db")
    );
    let (_dir, settings) = load_text("", &[("B2BC_DB", "here.db")], vec![]);
    assert_eq!(settings.unwrap().store.path, Path::new("here.db"));
}

#[test]
fn missing_named_file_is_an_error_but_missing_default_file_is_not() {
    let missing = Path::new("/nonexistent/b2b.toml");
    assert!(matches!(
        ConfigFile::read(missing, true),
        Err(Error::FileNotFound { .. })
    ));
    assert!(matches!(ConfigFile::read(missing, false), Ok(None)));
}

#[rstest::rstest]
#[case::http_remote("graph_url = \"http://graph.example.com\"", false)]
#[case::http_loopback_ip("graph_url = \"http://127.0.0.1:8080\"", true)]
#[case::http_localhost("graph_url = \"http://localhost:8080\"", true)]
#[case::http_ipv6_loopback("graph_url = \"http://[::1]:8080\"", true)]
#[case::https_remote("graph_url = \"https://graph.example.com\"", true)]
#[case::ftp("graph_url = \"ftp://graph.example.com\"", false)]
#[case::query("graph_url = \"https://graph.example.com/?a=b\"", false)]
#[case::bad_tenant("tenant_id = \"not a tenant\"", false)]
#[case::domain_tenant("tenant_id = \"Contoso.OnMicrosoft.com\"", true)]
#[case::bad_client("client_id = \"my-app\"", false)]
fn tenant_values_are_checked(#[case] line: &str, #[case] ok: bool) {
    let (_dir, result) = load_text(&format!("[tenant]\n{line}\n"), &[], vec![]);
    assert_eq!(result.is_ok(), ok, "{line}: {result:?}");
    if let Err(err) = result {
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}

#[rstest::rstest]
#[case::ldap_plain("url = \"ldap://dc1.corp.example\"", false)]
#[case::ldap_starttls("url = \"ldap://dc1.corp.example\"\nstarttls = true", true)]
#[case::ldaps("url = \"ldaps://dc1.corp.example:636\"", true)]
#[case::ldaps_and_starttls("url = \"ldaps://dc1.corp.example\"\nstarttls = true", false)]
#[case::http("url = \"https://dc1.corp.example\"", false)]
#[case::short_password("random_password_length = 8", false)]
fn directory_values_are_checked(#[case] lines: &str, #[case] ok: bool) {
    let (_dir, result) = load_text(&format!("[directory]\n{lines}\n"), &[], vec![]);
    assert_eq!(result.is_ok(), ok, "{lines}: {result:?}");
}

#[test]
fn plain_ldap_is_refused_with_the_reason() {
    let (_dir, result) = load_text("[directory]\nurl = \"ldap://dc1\"\n", &[], vec![]);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("plain LDAP is refused"), "{err}");
}

#[rstest::rstest]
#[case::invitations_over_ceiling("max_invitations_per_second = 31.0", false)]
#[case::invitations_at_ceiling("max_invitations_per_second = 30.0", true)]
#[case::invitations_zero("max_invitations_per_second = 0.0", false)]
#[case::writes_over_ceiling("max_directory_writes_per_second = 25.0", false)]
#[case::no_concurrency("max_concurrency = 0", false)]
#[case::request_shorter_than_connect(
    "connect_timeout_seconds = 30\nrequest_timeout_seconds = 10",
    false
)]
#[case::no_attempts("max_attempts = 0", false)]
#[case::a_daily_quota("max_invitations_per_day = 200", true)]
#[case::a_zero_daily_quota("max_invitations_per_day = 0", false)]
#[case::a_negative_daily_quota("max_invitations_per_day = -5", false)]
fn throughput_values_are_checked(#[case] lines: &str, #[case] ok: bool) {
    let (_dir, result) = load_text(&format!("[throughput]\n{lines}\n"), &[], vec![]);
    assert_eq!(result.is_ok(), ok, "{lines}: {result:?}");
}

#[rstest::rstest]
#[case::bad_language("message_language = \"english please\"", false)]
#[case::language("message_language = \"de-DE\"", true)]
#[case::bad_cc("cc_recipient = \"not-an-address\"", false)]
#[case::cc_name_without_cc("cc_recipient_name = \"Pat\"", false)]
#[case::cc(
    "cc_recipient = \"pat@fabrikam.com\"\ncc_recipient_name = \"Pat\"",
    true
)]
#[case::empty_message("custom_message = \"  \"", false)]
#[case::http_redirect("redirect_url = \"http://apps.example.com\"", false)]
#[case::member("invited_user_type = \"Member\"", true)]
#[case::bad_type("invited_user_type = \"Admin\"", false)]
fn invitation_values_are_checked(#[case] lines: &str, #[case] ok: bool) {
    let (_dir, result) = load_text(&format!("[invitation]\n{lines}\n"), &[], vec![]);
    assert_eq!(result.is_ok(), ok, "{lines}: {result:?}");
}

#[test]
fn default_redirect_url_carries_the_tenant_id() {
    let (_dir, settings) = load_text(
        "[tenant]\ntenant_id = \"11111111-2222-3333-4444-555555555555\"\n",
        &[],
        vec![],
    );
    assert_eq!(
        settings.unwrap().invitation.redirect_url.unwrap().as_str(),
        "https://myapps.microsoft.com/?tenantId=11111111-2222-3333-4444-555555555555"
    );
    let (_dir, settings) = load_text("[tenant]\ntenant_id = \"contoso.com\"\n", &[], vec![]);
    assert!(
        settings.unwrap().invitation.redirect_url.is_none(),
        "tenantId takes a GUID, so a domain gives no default"
    );
}

#[test]
fn secrets_come_from_the_environment_and_never_show() {
    let env = [
        ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
        ("B2BC_ACCESS_TOKEN", "eyJtoken"),
    ];
    let (_dir, settings) = load_text("", &env, vec![]);
    let settings = settings.unwrap();
    assert_eq!(
        settings.auth.client_secret.as_ref().unwrap().expose(),
        "s3cr3t-value"
    );
    let debug = format!("{settings:?}");
    assert!(
        !debug.contains("s3cr3t-value") && !debug.contains("eyJtoken"),
        "{debug}"
    );
    let shown = value_of(&settings, "auth.client_secret");
    assert!(shown.secret);
    assert_eq!(shown.value, serde_json::json!("(set)"));
    assert_eq!(
        shown.origin,
        Origin::Env {
            var: "AZURE_CLIENT_SECRET".into()
        }
    );
    let listing = serde_json::to_string(settings.effective_values()).unwrap();
    assert!(!listing.contains("s3cr3t-value"), "{listing}");
}

#[test]
fn secrets_come_from_files_named_in_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.txt"), "from-file\n").unwrap();
    let path = dir.path().join("b2b-convert.toml");
    std::fs::write(&path, "[auth]\nclient_secret_file = \"secret.txt\"\n").unwrap();
    let settings = load(&Sources {
        config_path: Some(path),
        ..Sources::default()
    })
    .unwrap();
    assert_eq!(settings.auth.client_secret.unwrap().expose(), "from-file");
}

#[test]
fn a_missing_secret_file_names_the_key() {
    let (_dir, result) = load_text("[auth]\nclient_secret_file = \"nope.txt\"\n", &[], vec![]);
    let err = result.unwrap_err();
    assert!(
        matches!(&err, Error::SecretFile { key, .. } if key == "auth.client_secret_file"),
        "{err:?}"
    );
    assert!(err.to_string().contains("nope.txt"), "{err}");
}

#[test]
fn an_invalid_environment_value_names_the_variable() {
    let (_dir, result) = load_text("", &[("B2BC_CLOUD", "mars")], vec![]);
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("B2BC_CLOUD") && err.contains("tenant.cloud"),
        "{err}"
    );
}

#[test]
fn every_key_appears_once_in_the_effective_view() {
    let (_dir, settings) = load_text("", &[], vec![]);
    let settings = settings.unwrap();
    let keys: Vec<_> = settings
        .effective_values()
        .iter()
        .map(|v| v.key.as_str())
        .collect();
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!(keys, unique);
    for key in [
        "tenant.tenant_id",
        "rules.exchange-mailbox",
        "auth.client_secret",
        "directory.url",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
}

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "66666666-7777-8888-9999-000000000000";

fn no_prompt() -> crate::graph::auth::PromptFn {
    Box::new(|_| {})
}

#[test]
fn the_auth_description_carries_the_secret_without_showing_it() {
    let env = [
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_CLIENT_ID", CLIENT),
        ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
        ("B2BC_CLOUD", "usgov"),
    ];
    let (_dir, settings) = load_text("", &env, vec![]);
    let auth = settings.unwrap().graph_auth(no_prompt()).unwrap();
    assert_eq!(auth.tenant, TENANT);
    assert_eq!(
        auth.resource, "https://graph.microsoft.us",
        "the cloud's Graph"
    );
    let crate::graph::auth::Credential::ClientSecret { client_id, secret } = &auth.credential
    else {
        panic!("{auth:?}")
    };
    assert_eq!(client_id, CLIENT);
    assert_eq!(secrecy::ExposeSecret::expose_secret(secret), "s3cr3t-value");
    let debug = format!("{auth:?}");
    assert!(!debug.contains("s3cr3t-value"), "{debug}");
}

#[rstest::rstest]
#[case::tenant(&[("AZURE_CLIENT_ID", CLIENT), ("AZURE_CLIENT_SECRET", "s")], "tenant.tenant_id", "AZURE_TENANT_ID")]
#[case::client(&[("AZURE_TENANT_ID", TENANT), ("AZURE_CLIENT_SECRET", "s")], "tenant.client_id", "AZURE_CLIENT_ID")]
#[case::secret(&[("AZURE_TENANT_ID", TENANT), ("AZURE_CLIENT_ID", CLIENT)], "auth.client_secret", "AZURE_CLIENT_SECRET")]
#[case::certificate(
    &[("AZURE_TENANT_ID", TENANT), ("AZURE_CLIENT_ID", CLIENT), ("B2BC_AUTH_METHOD", "certificate")],
    "auth.certificate_path",
    "AZURE_CLIENT_CERTIFICATE_PATH"
)]
#[case::token(&[("B2BC_AUTH_METHOD", "access-token")], "auth.access_token", "B2BC_ACCESS_TOKEN")]
fn what_the_method_needs_but_nobody_set_is_a_config_error(
    #[case] env: &[(&str, &str)],
    #[case] missing: &str,
    #[case] hint: &str,
) {
    let (_dir, settings) = load_text("", env, vec![]);
    let err = settings.unwrap().graph_auth(no_prompt()).unwrap_err();
    assert!(
        matches!(&err, Error::Missing { key, .. } if *key == missing),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(hint), "{text}");
    assert!(text.contains("`auth.method` is "), "{text}");
}

#[test]
fn a_pre_obtained_token_needs_no_tenant_and_is_trimmed() {
    let env = [
        ("B2BC_AUTH_METHOD", "access-token"),
        ("B2BC_ACCESS_TOKEN", "eyJtoken\n"),
    ];
    let (_dir, settings) = load_text("", &env, vec![]);
    let auth = settings.unwrap().graph_auth(no_prompt()).unwrap();
    assert_eq!(auth.tenant, "organizations");
    let crate::graph::auth::Credential::Static { token, origin } = &auth.credential else {
        panic!("{auth:?}")
    };
    assert_eq!(secrecy::ExposeSecret::expose_secret(&**token), "eyJtoken");
    assert_eq!(origin, "environment variable B2BC_ACCESS_TOKEN");
}

#[test]
fn the_certificate_is_read_here_and_its_failures_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.pem"),
        include_str!("../../tests/fixtures/certificate/test-cert.pem"),
    )
    .unwrap();
    let cert_only: String = include_str!("../../tests/fixtures/certificate/test-cert.pem")
        .split_inclusive('\n')
        .skip_while(|l| !l.contains("BEGIN CERTIFICATE"))
        .collect();
    std::fs::write(dir.path().join("cert-only.pem"), cert_only).unwrap();
    let config = dir.path().join("b2b-convert.toml");
    let auth_with = |file: &str| {
        std::fs::write(
            &config,
            format!(
                "[tenant]\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
                 [auth]\nmethod = \"certificate\"\ncertificate_path = \"{file}\"\n"
            ),
        )
        .unwrap();
        load(&Sources {
            config_path: Some(config.clone()),
            ..Sources::default()
        })
        .expect("the certificate is read when signing in, not when loading")
        .graph_auth(no_prompt())
    };

    let auth = auth_with("app.pem").unwrap();
    assert!(
        matches!(
            auth.credential,
            crate::graph::auth::Credential::Certificate { .. }
        ),
        "{auth:?}"
    );
    assert!(!format!("{auth:?}").contains("PRIVATE KEY"));

    let absent = auth_with("absent.pem").unwrap_err();
    assert!(
        matches!(&absent, Error::Invalid { key, origin: Origin::File { line: 6, .. }, .. }
            if key == "auth.certificate_path"),
        "{absent:?}"
    );
    assert!(absent.to_string().contains("absent.pem"), "{absent}");

    let unusable = auth_with("cert-only.pem").unwrap_err();
    assert!(
        matches!(&unusable, Error::Invalid { key, origin: Origin::File { line: 6, .. }, .. }
            if key == "auth.certificate_path"),
        "{unusable:?}"
    );
    let text = unusable.to_string();
    assert!(text.contains("no private key"), "{text}");
    assert!(
        !text.contains("BEGIN"),
        "nothing of the file is echoed: {text}"
    );
}

#[test]
fn exchange_add_on_plans_are_guids() {
    let (_dir, settings) = load_text(
        "[exchange]\nadd_on_plans = [\"F20FEDF3-F3C3-43C3-8267-2BFDD51C0939\"]\n",
        &[],
        Vec::new(),
    );
    assert_eq!(
        settings.unwrap().rules.exchange_add_on_plans,
        [uuid::uuid!("f20fedf3-f3c3-43c3-8267-2bfdd51c0939")]
    );
    let (_dir, result) = load_text("[exchange]\nadd_on_plans = [\"ATP\"]\n", &[], Vec::new());
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("exchange.add_on_plans") && err.contains("ATP"),
        "{err}"
    );
}

fn auto_choice(env: &[(&str, &str)]) -> CredentialChoice {
    let mut all = vec![
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_CLIENT_ID", CLIENT),
        ("B2BC_AUTH_METHOD", "auto"),
    ];
    all.extend_from_slice(env);
    let (_dir, settings) = load_text("", &all, Vec::new());
    settings.unwrap().credential_choice()
}

#[test]
fn auto_follows_the_azure_sdks_order_and_never_picks_device_code() {
    let secret = auto_choice(&[
        ("AZURE_CLIENT_SECRET", "s"),
        ("AZURE_FEDERATED_TOKEN_FILE", "/t"),
    ]);
    assert_eq!(secret.method, AuthMethod::ClientSecret);
    assert!(secret.skipped.is_empty());

    let certificate = auto_choice(&[("AZURE_CLIENT_CERTIFICATE_PATH", "/c.pem")]);
    assert_eq!(certificate.method, AuthMethod::Certificate);

    let workload = auto_choice(&[
        ("AZURE_FEDERATED_TOKEN_FILE", "/t"),
        ("IDENTITY_ENDPOINT", "http://localhost:1/msi/token"),
        ("IDENTITY_HEADER", "h"),
    ]);
    assert_eq!(workload.method, AuthMethod::WorkloadIdentity);
    assert_eq!(workload.skipped.len(), 1);

    let managed = auto_choice(&[
        ("IDENTITY_ENDPOINT", "http://localhost:1/msi/token"),
        ("IDENTITY_HEADER", "h"),
    ]);
    assert_eq!(managed.method, AuthMethod::ManagedIdentity);
    assert!(managed.detail.contains("IDENTITY_ENDPOINT"), "{managed}");
    assert!(
        !managed.to_string().contains("h)"),
        "the header never shows"
    );

    let cli = auto_choice(&[]);
    assert_eq!(cli.method, AuthMethod::AzureCli);
    let skipped: Vec<AuthMethod> = cli.skipped.iter().map(|s| s.method).collect();
    assert_eq!(
        skipped,
        [
            AuthMethod::ClientSecret,
            AuthMethod::WorkloadIdentity,
            AuthMethod::ManagedIdentity
        ]
    );
    assert!(cli.skipped[2].reason.contains("not probed"), "{cli}");
}

#[test]
fn the_metadata_service_default_is_used_only_without_an_override() {
    let load = |env: &[(&str, &str)]| {
        let mut all = vec![
            ("AZURE_TENANT_ID", TENANT),
            ("B2BC_AUTH_METHOD", "managed-identity"),
        ];
        all.extend_from_slice(env);
        let (_dir, settings) = load_text("", &all, Vec::new());
        let settings = settings.unwrap();
        settings
            .graph_auth(Box::new(|_| {}))
            .map(|auth| format!("{:?}", auth.credential))
    };
    let default = load(&[]).unwrap();
    assert!(default.contains("169.254.169.254"), "{default}");
    let overridden = load(&[(
        "B2BC_IMDS_URL",
        "http://127.0.0.1:9/metadata/identity/oauth2/token",
    )])
    .unwrap();
    assert!(overridden.contains("127.0.0.1:9"), "{overridden}");
    let off = load(&[("B2BC_IMDS_URL", "none")]).unwrap_err().to_string();
    assert!(off.contains("disabled"), "{off}");
    let app_service = load(&[
        ("IDENTITY_ENDPOINT", "http://localhost:1/msi/token"),
        ("IDENTITY_HEADER", "secret-header"),
    ])
    .unwrap();
    assert!(
        app_service.starts_with("ManagedIdentity(AppService"),
        "{app_service}"
    );
    assert!(!app_service.contains("secret-header"), "{app_service}");
    let (_dir, remote) = load_text(
        "",
        &[("IDENTITY_ENDPOINT", "http://10.0.0.1/msi/token")],
        Vec::new(),
    );
    let remote = remote.unwrap_err();
    assert!(
        remote.to_string().contains("loopback or link-local"),
        "{remote}"
    );
}

#[test]
fn azure_authority_host_sets_the_login_host_and_b2bc_login_url_wins() {
    let (_dir, settings) = load_text(
        "",
        &[("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/")],
        Vec::new(),
    );
    let settings = settings.unwrap();
    assert_eq!(
        settings.tenant.login_url.as_str(),
        "https://login.microsoftonline.us/"
    );
    assert_eq!(
        value_of(&settings, "tenant.login_url").origin,
        Origin::Env {
            var: "AZURE_AUTHORITY_HOST".into()
        }
    );
    let (_dir, settings) = load_text(
        "",
        &[
            ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/"),
            ("B2BC_LOGIN_URL", "http://127.0.0.1:9/login"),
        ],
        Vec::new(),
    );
    let settings = settings.unwrap();
    assert_eq!(
        settings.tenant.login_url.as_str(),
        "http://127.0.0.1:9/login"
    );
}

#[test]
fn the_certificate_chain_switch_takes_the_azure_sdks_spelling() {
    for (value, expected) in [("true", true), ("1", true), ("false", false), ("0", false)] {
        let (_dir, settings) = load_text(
            "",
            &[("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", value)],
            Vec::new(),
        );
        assert_eq!(
            settings.unwrap().auth.send_certificate_chain,
            expected,
            "{value}"
        );
    }
    let (_dir, settings) = load_text(
        "",
        &[("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "yes please")],
        Vec::new(),
    );
    let err = settings.unwrap_err().to_string();
    assert!(err.contains("auth.send_certificate_chain"), "{err}");
}
