//! `invite`: one user, through the same rules and executor as a wave.

use b2b_convert::domain::UserState;
use b2b_convert::store::Store;
use b2b_convert_sim::UserCase;

use crate::support::{b2b_convert, cli, quiet_sim, run, sim_env, text};

#[tokio::test(flavor = "multi_thread")]
async fn one_user_is_converted_with_the_options_given_and_recorded() {
    let sim = quiet_sim(120).await;
    let dir = tempfile::tempdir().unwrap();
    let user = sim.find_user(UserCase::CloudOtherMailOnly).unwrap();
    let upn = user.user_principal_name.clone();

    let dry = cli(
        dir.path(),
        &sim,
        &[
            "invite",
            "--user",
            &upn,
            "--dry-run",
            // New-MgInvitation's parameter names work as aliases, values in any case.
            "--invited-user-display-name",
            "Ada (Fabrikam)",
            "--custom-message",
            "Welcome",
            "--message-language",
            "fr-FR",
            "--cc-recipient",
            "pm@contoso.com",
            "--invited-user-type",
            "guest",
            "--invite-redirect-url",
            "https://myapps.microsoft.com/?tenantId=x",
        ],
    )
    .await;
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    let body = text(&dry.stdout);
    for field in [
        "\"invitedUserDisplayName\": \"Ada (Fabrikam)\"",
        "\"customizedMessageBody\": \"Welcome\"",
        "\"messageLanguage\": \"fr-FR\"",
        "\"address\": \"pm@contoso.com\"",
        "\"invitedUserType\": \"Guest\"",
        "\"inviteRedirectUrl\": \"https://myapps.microsoft.com/?tenantId=x\"",
        "\"sendInvitationMessage\": true",
    ] {
        assert!(body.contains(field), "{field} missing in\n{body}");
    }
    assert_eq!(sim.invitation_posts(&user.id), 0, "a dry run sends nothing");

    let mut no_tty = b2b_convert(dir.path());
    no_tty.args(["invite", "--user", &upn]).envs(sim_env(&sim));
    assert_eq!(run(no_tty).await.status.code(), Some(4));

    let done = cli(
        dir.path(),
        &sim,
        &["invite", "--user", &user.id, "--yes", "--no-send-message"],
    )
    .await;
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}\n{}",
        text(&done.stdout),
        text(&done.stderr)
    );
    assert_eq!(
        sim.user(&user.id).unwrap().external_user_state.as_deref(),
        Some("PendingAcceptance")
    );
    let store = Store::open(&dir.path().join("b2b-convert.db"))
        .await
        .unwrap();
    let wave = store
        .wave_by_name(&format!("invite-{}", upn.to_lowercase()))
        .await
        .unwrap()
        .expect("the invitation is recorded as a one-user wave");
    let members = store.members(wave.id).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].state, UserState::Invited);
    assert!(
        members[0].invite_redeem_url.is_some(),
        "own distribution: the link is kept"
    );
    store.close().await;

    // Again: the rules now see a B2B user and refuse; a redemption reset is allowed.
    let again = cli(dir.path(), &sim, &["invite", "--user", &upn, "--yes"]).await;
    assert_eq!(again.status.code(), Some(4), "{}", text(&again.stdout));
    assert!(text(&again.stdout).contains("already-external"));
    sim.redeem(&user.id).unwrap();
    let reset = cli(
        dir.path(),
        &sim,
        &["invite", "--user", &upn, "--yes", "--reset-redemption"],
    )
    .await;
    assert_eq!(
        reset.status.code(),
        Some(0),
        "{}\n{}",
        text(&reset.stdout),
        text(&reset.stderr)
    );
    assert_eq!(sim.invitation_posts(&user.id), 2);
    assert_eq!(
        sim.user(&user.id).unwrap().external_user_state.as_deref(),
        Some("PendingAcceptance"),
        "the reset lets the partner redeem again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_or_unknown_user_is_refused_with_the_reason() {
    let sim = quiet_sim(120).await;
    let dir = tempfile::tempdir().unwrap();
    let mailbox = sim.find_user(UserCase::ExchangeMailbox).unwrap();
    let output = cli(
        dir.path(),
        &sim,
        &["invite", "--user", &mailbox.id, "--yes"],
    )
    .await;
    assert_eq!(output.status.code(), Some(4));
    assert!(
        text(&output.stdout).contains("exchange-mailbox"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(sim.invitation_posts(&mailbox.id), 0);

    let output = cli(
        dir.path(),
        &sim,
        &["invite", "--user", "nobody@contoso.com", "--yes"],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("no user nobody@contoso.com"));

    let output = cli(
        dir.path(),
        &sim,
        &[
            "invite",
            "--user",
            &mailbox.id,
            "--no-send-message",
            "--custom-message",
            "x",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
}
