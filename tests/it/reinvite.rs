//! `reinvite`, `waves` and `status --pending` against the simulated tenant: links lost to
//! dropped answers recovered by `reinvite --missing-links`; a reinvite killed with answers
//! lost resumes and sends nobody twice; `--older-than` by the invitation times stored;
//! a redemption reset in bulk; the overview and pending lists.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use b2b_convert::domain::{Decision, UserId, UserState};
use b2b_convert::execute::reinvite::{self, Mode, Planned, Selection};
use b2b_convert::execute::{Pace, Quiet, RunObserver, Step};
use b2b_convert::store::{ResendState, Store, Wave};
use b2b_convert_sim::{FaultPlan, Sim, SimSpec, ThrottleConfig};

use crate::support::{cli, client_with_secret, quiet_sim, text};

async fn open_store(dir: &Path) -> Store {
    Store::open(&dir.join("b2b-convert.db")).await.unwrap()
}

/// A simulator that drops `drop` of the invitation answers after making the invitation.
async fn dropping_sim(users: u64, drop: f64) -> Sim {
    Sim::start(
        SimSpec::generated(users, 7)
            .with_throttling(ThrottleConfig::disabled())
            .with_faults(FaultPlan::parse(&format!("invitations:drop={drop}")).unwrap()),
    )
    .await
    .unwrap()
}

/// Discovers, plans every user as wave `pilot` in own-distribution mode (`send_message =
/// false`), and runs it.
async fn converted(sim: &Sim) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("b2b-convert.toml"),
        "[invitation]\nsend_message = false\n",
    )
    .unwrap();
    for args in [
        &["discover"][..],
        &["plan", "--wave", "pilot", "--all"],
        &["run", "--wave", "pilot", "--yes", "--reconcile-delay", "0"],
    ] {
        let output = cli(dir.path(), sim, args).await;
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    dir
}

/// The wave, its eligible users, and those invited without a stored link.
async fn linkless(dir: &Path) -> (Wave, Vec<UserId>, Vec<(UserId, String)>) {
    let store = open_store(dir).await;
    let wave = store.wave_by_name("pilot").await.unwrap().unwrap();
    let members = store.members_with_names(wave.id).await.unwrap();
    store.close().await;
    let eligible = members
        .iter()
        .filter(|(m, _)| m.plan.decision == Decision::Eligible)
        .map(|(m, _)| m.plan.user_id)
        .collect();
    let lost = members
        .into_iter()
        .filter(|(m, _)| m.state == UserState::Invited && m.invite_redeem_url.is_none())
        .map(|(m, names)| (m.plan.user_id, names.user_principal_name))
        .collect();
    (wave, eligible, lost)
}

async fn export_links(dir: &Path, sim: &Sim) -> std::process::Output {
    cli(
        dir,
        sim,
        &[
            "export-links",
            "--wave",
            "pilot",
            "--out",
            "links.csv",
            "--force",
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::too_many_lines)] // one scenario, step by step
async fn lost_links_are_named_then_recovered_by_reinvite_missing_links() {
    let sim = dropping_sim(80, 0.3).await;
    let dir = converted(&sim).await;
    let (_, eligible, lost) = linkless(dir.path()).await;
    assert!(!lost.is_empty(), "some answers were lost");

    let output = export_links(dir.path(), &sim).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    for (_, upn) in &lost {
        assert!(stderr.contains(upn.as_str()), "{upn} is named: {stderr}");
    }

    // The dry run sends nothing and shows one request per link-less user.
    sim.set_faults(FaultPlan::default());
    let posts_before = sim.counters().invitations_created;
    let output = cli(
        dir.path(),
        &sim,
        &[
            "reinvite",
            "--wave",
            "pilot",
            "--missing-links",
            "--dry-run",
        ],
    )
    .await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        stdout.contains(&format!("# {} invitation(s) would be sent", lost.len())),
        "{stdout}"
    );
    assert_eq!(sim.counters().invitations_created, posts_before);
    let output = cli(
        dir.path(),
        &sim,
        &["reinvite", "--wave", "pilot", "--missing-links"],
    )
    .await;
    assert_eq!(output.status.code(), Some(4), "no --yes without a terminal");

    let output = cli(
        dir.path(),
        &sim,
        &[
            "reinvite",
            "--wave",
            "pilot",
            "--missing-links",
            "--yes",
            "--reconcile-delay",
            "0",
        ],
    )
    .await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "{} re-sent ({} with a new link stored)",
            lost.len(),
            lost.len()
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("redeem?"), "links never on stdout");
    for user in &eligible {
        let expected = if lost.iter().any(|(u, _)| u == user) {
            2
        } else {
            1
        };
        assert_eq!(sim.invitation_posts(&user.to_string()), expected, "{user}");
        assert_eq!(
            sim.user(&user.to_string())
                .unwrap()
                .external_user_state
                .as_deref(),
            Some("PendingAcceptance"),
            "a resend keeps the user pending"
        );
    }

    let output = export_links(dir.path(), &sim).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let csv = std::fs::read_to_string(dir.path().join("links.csv")).unwrap();
    assert_eq!(csv.lines().count(), eligible.len() + 1, "{csv}");
    for (_, upn) in &lost {
        assert!(csv.contains(upn.as_str()), "{upn} has its link now");
    }

    // Every link is there: a second reinvite has nobody to send to.
    let output = cli(
        dir.path(),
        &sim,
        &["reinvite", "--wave", "pilot", "--missing-links", "--yes"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("nobody to re-invite"));
    assert_eq!(
        sim.counters().invitations_created,
        posts_before + lost.len() as u64
    );

    // The event log has the re-sends with Graph's request ids, and no link.
    let store = open_store(dir.path()).await;
    let wave = store.wave_by_name("pilot").await.unwrap().unwrap();
    let events = store.wave_events(wave.id).await.unwrap();
    let resent: Vec<_> = events
        .iter()
        .filter(|e| e.event.kind == "invitation.resent")
        .collect();
    assert_eq!(resent.len(), lost.len());
    assert!(resent.iter().all(|e| e.event.request_id.is_some()));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event.kind == "invitation.resend-intent")
            .count(),
        lost.len()
    );
    assert!(
        events
            .iter()
            .all(|e| !e.event.detail.to_string().contains("redeem")),
        "no link in the event log"
    );
    let runs = store.runs(wave.id).await.unwrap();
    assert_eq!(
        runs.iter().filter(|r| r.command == "reinvite").count(),
        1,
        "one recorded run: the second had nobody to send to"
    );
    store.close().await;
}

/// Parks one user's re-send at one step forever, as a crash there would leave it.
struct CrashAt {
    user: UserId,
    step: Step,
    reached: AtomicBool,
}

impl RunObserver for CrashAt {
    fn at_step(&self, user: UserId, step: Step) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        if user == self.user && step == self.step {
            self.reached.store(true, Ordering::SeqCst);
            Box::pin(std::future::pending())
        } else {
            Box::pin(std::future::ready(()))
        }
    }
}

fn pace() -> Pace {
    Pace {
        rate: 30.0,
        concurrency: b2b_convert::execute::Concurrency::Fixed(4),
        limit: None,
        reconcile_delay: Duration::ZERO,
        directory_writes_per_second: 20.0,
        restore_mail_on_failure: false,
        max_invitations_per_day: None,
    }
}

async fn reinvite_once(
    sim: &Sim,
    store: &Store,
    wave: &Wave,
    selection: &Selection,
    observer: Arc<dyn RunObserver>,
) -> reinvite::ResendSummary {
    let planned = reinvite::plan(store, wave, selection, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    let (operation, _) = reinvite::start(
        store,
        wave,
        selection,
        planned,
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    let template = reinvite::wave_template(store, wave, selection.mode)
        .await
        .unwrap()
        .unwrap();
    reinvite::reinvite_wave(
        client_with_secret(sim, sim.client_id(), sim.client_secret()),
        store,
        wave,
        template,
        &pace(),
        &operation,
        selection.mode,
        &b2b_convert::operator::Operator::default(),
        observer,
        std::future::pending(),
    )
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::too_many_lines)] // one scenario, step by step
async fn a_reinvite_killed_with_answers_lost_resumes_and_sends_nobody_twice() {
    for step in [Step::IntentRecorded, Step::InvitationAnswered] {
        let sim = dropping_sim(120, 0.3).await;
        let dir = converted(&sim).await;
        let (wave, _, lost) = linkless(dir.path()).await;
        assert!(lost.len() >= 4, "{step:?}: {} lost", lost.len());
        let store = open_store(dir.path()).await;
        let selection = Selection {
            mode: Mode::Resend,
            missing_links: true,
            older_than: None,
            users: vec![],
        };
        // A third of the re-sends' answers are lost too, and one re-send is killed at `step`.
        let victim = lost[lost.len() / 2].0;
        let crash = Arc::new(CrashAt {
            user: victim,
            step,
            reached: AtomicBool::new(false),
        });
        let reached = async {
            while !crash.reached.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::select! {
            summary = reinvite_once(&sim, &store, &wave, &selection, crash.clone()) => panic!("{step:?}: should have parked: {summary:?}"),
            () = reached => {}
        }
        // The reinvite is dropped here with whatever was in flight: a crash.
        let victim_posts = sim.invitation_posts(&victim.to_string());
        assert_eq!(
            victim_posts,
            1 + u64::from(step == Step::InvitationAnswered),
            "{step:?}"
        );

        // The rerun resumes the same operation (answers still being lost) and settles the
        // victim by reading it: it is never sent again.
        let planned = reinvite::plan(&store, &wave, &selection, time::OffsetDateTime::now_utc())
            .await
            .unwrap();
        assert!(matches!(planned, Planned::Resume { .. }), "{planned:?}");
        let other = Selection {
            older_than: Some(time::Duration::days(14)),
            ..selection.clone()
        };
        let refused = reinvite::plan(&store, &wave, &other, time::OffsetDateTime::now_utc())
            .await
            .unwrap_err();
        assert!(
            matches!(refused, reinvite::PlanError::OtherOpen { .. }),
            "another selection waits for the unfinished one: {refused}"
        );
        let summary = reinvite_once(&sim, &store, &wave, &selection, Arc::new(Quiet)).await;
        assert!(summary.finished, "{summary:?}");
        assert!(summary.unknown >= 1, "the victim at least: {summary:?}");
        assert_eq!(
            sim.invitation_posts(&victim.to_string()),
            victim_posts,
            "{step:?}: the victim is not sent again"
        );
        for (user, upn) in &lost {
            let posts = sim.invitation_posts(&user.to_string());
            assert!(
                posts <= 2,
                "{step:?}: {upn} invited once and re-sent at most once, got {posts}"
            );
        }
        let members = store.reinvite_members(summary.reinvite).await.unwrap();
        assert_eq!(members.len(), lost.len());
        let victim_row = members.iter().find(|m| m.user_id == victim).unwrap();
        assert_eq!(victim_row.state, ResendState::Unknown, "{step:?}");
        // Every lost answer is `unknown`; every other member was re-sent once.
        for member in &members {
            let posts = sim.invitation_posts(&member.user_id.to_string());
            match member.state {
                ResendState::Sent => assert_eq!(posts, 2),
                ResendState::Unknown => assert!(posts <= 2),
                other => panic!("{step:?}: {other:?}"),
            }
        }

        // The operation is over: a rerun from the command line is a new reinvite, which sends
        // to those still without a link (by the operator's choice), each once more.
        sim.set_faults(FaultPlan::default());
        store.close().await;
        let output = cli(
            dir.path(),
            &sim,
            &[
                "reinvite",
                "--wave",
                "pilot",
                "--missing-links",
                "--yes",
                "--reconcile-delay",
                "0",
            ],
        )
        .await;
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let output = export_links(dir.path(), &sim).await;
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn older_than_selects_by_the_time_an_invitation_was_last_sent() {
    let sim = quiet_sim(40).await;
    let dir = converted(&sim).await;
    let store = open_store(dir.path()).await;
    let (wave, eligible, _) = linkless(dir.path()).await;
    let fortnight = Selection {
        mode: Mode::Resend,
        missing_links: false,
        older_than: Some(time::Duration::days(14)),
        users: vec![],
    };
    let now = time::OffsetDateTime::now_utc();
    let count_at = |when| reinvite::plan(&store, &wave, &fortnight, when);
    assert_eq!(count_at(now).await.unwrap().count(), 0, "invited today");
    assert_eq!(
        count_at(now + time::Duration::days(15))
            .await
            .unwrap()
            .count(),
        eligible.len() as u64,
        "all invited more than 14 days before then"
    );
    store.close().await;

    // One user's invitation re-sent now: it is not older than 14 days at a time when the
    // others (invited before it) are.
    let first = eligible[0];
    let output = cli(
        dir.path(),
        &sim,
        &[
            "reinvite",
            "--wave",
            "pilot",
            "--older-than",
            "1m",
            "--user",
            &first.to_string(),
            "--yes",
        ],
    )
    .await;
    // Invited less than a minute ago: nobody yet.
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("nobody to re-invite"));
    let store = open_store(dir.path()).await;
    let wave = store.wave_by_name("pilot").await.unwrap().unwrap();
    let one = Selection {
        users: vec![first],
        older_than: Some(time::Duration::minutes(1)),
        ..fortnight.clone()
    };
    // Two minutes on (the injected "now" of the selection), it is older than a minute.
    let later = now + time::Duration::minutes(2);
    let summary = reinvite_once_at(&sim, &store, &wave, &one, later).await;
    assert_eq!(summary.sent, 1, "{summary:?}");
    assert_eq!(sim.invitation_posts(&first.to_string()), 2);
    let pending = store.pending_members(wave.id).await.unwrap();
    let resent_at = pending
        .iter()
        .find(|m| m.user_id == first)
        .and_then(|m| m.resent_at)
        .expect("the re-send is stamped");
    // 14 days after the re-send, everybody else is older than 14 days; it is not.
    let Planned::New(users) = reinvite::plan(
        &store,
        &wave,
        &fortnight,
        resent_at + time::Duration::days(14),
    )
    .await
    .unwrap() else {
        panic!("a new selection")
    };
    assert!(!users.contains(&first), "re-sent just now");
    assert_eq!(users.len(), eligible.len() - 1);
    store.close().await;

    let output = cli(
        dir.path(),
        &sim,
        &[
            "status",
            "--wave",
            "pilot",
            "--pending",
            "--older-than",
            "14d",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("0 member(s) have not redeemed"),
        "{}",
        text(&output.stdout)
    );
}

/// [`reinvite_once`] with the selection made at `now`.
async fn reinvite_once_at(
    sim: &Sim,
    store: &Store,
    wave: &Wave,
    selection: &Selection,
    now: time::OffsetDateTime,
) -> reinvite::ResendSummary {
    let planned = reinvite::plan(store, wave, selection, now).await.unwrap();
    let (operation, _) = reinvite::start(store, wave, selection, planned, now)
        .await
        .unwrap();
    let template = reinvite::wave_template(store, wave, selection.mode)
        .await
        .unwrap()
        .unwrap();
    reinvite::reinvite_wave(
        client_with_secret(sim, sim.client_id(), sim.client_secret()),
        store,
        wave,
        template,
        &pace(),
        &operation,
        selection.mode,
        &b2b_convert::operator::Operator::default(),
        Arc::new(Quiet),
        std::future::pending(),
    )
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_redemption_reopens_accepted_members_who_must_redeem_again() {
    let sim = quiet_sim(40).await;
    let dir = converted(&sim).await;
    let (_, eligible, _) = linkless(dir.path()).await;
    let (a, b) = (eligible[0], eligible[1]);
    for user in [a, b] {
        sim.redeem(&user.to_string()).unwrap();
    }
    let output = cli(
        dir.path(),
        &sim,
        &["status", "--wave", "pilot", "--refresh"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    let output = cli(
        dir.path(),
        &sim,
        &["reinvite", "--wave", "pilot", "--reset-redemption", "--yes"],
    )
    .await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("2 re-sent (2 with a new link stored)"),
        "{stdout}"
    );
    let store = open_store(dir.path()).await;
    let wave = store.wave_by_name("pilot").await.unwrap().unwrap();
    for user in [a, b] {
        assert_eq!(
            sim.user(&user.to_string())
                .unwrap()
                .external_user_state
                .as_deref(),
            Some("PendingAcceptance")
        );
        assert_eq!(sim.invitation_posts(&user.to_string()), 2);
        let member = store.member(wave.id, user).await.unwrap().unwrap();
        assert_eq!(member.state, UserState::Invited, "must redeem again");
        assert!(member.invite_redeem_url.is_some(), "a new link");
    }
    store.close().await;
    let output = cli(
        dir.path(),
        &sim,
        &["reinvite", "--wave", "pilot", "--reset-redemption", "--yes"],
    )
    .await;
    assert!(text(&output.stdout).contains("nobody to re-invite"));
}

#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::too_many_lines)] // one scenario, step by step
async fn waves_and_status_pending_show_the_funnel_and_who_has_not_redeemed() {
    let sim = dropping_sim(60, 0.3).await;
    let dir = converted(&sim).await;
    let (_, eligible, lost) = linkless(dir.path()).await;
    let redeemed = eligible[0];
    sim.redeem(&redeemed.to_string()).unwrap();
    let output = cli(
        dir.path(),
        &sim,
        &["status", "--wave", "pilot", "--refresh"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    let output = cli(dir.path(), &sim, &["waves"]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(stdout.starts_with("wave"), "{stdout}");
    assert!(
        stdout.contains("pilot") && stdout.contains("(run, completed)"),
        "{stdout}"
    );
    let output = cli(dir.path(), &sim, &["waves", "--json"]).await;
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let row = &document["waves"][0];
    assert_eq!(row["wave"], "pilot");
    assert_eq!(row["eligible"], eligible.len());
    assert_eq!(row["accepted"], 1);
    assert_eq!(row["invited"], eligible.len() - 1);
    assert_eq!(
        row["planned"].as_u64().unwrap(),
        row["eligible"].as_u64().unwrap() + row["blocked"].as_u64().unwrap()
    );
    assert_eq!(row["last_run_command"], "run");

    let output = cli(
        dir.path(),
        &sim,
        &["status", "--wave", "pilot", "--pending", "--json"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let pending = document["users"].as_array().unwrap();
    assert_eq!(
        pending.len(),
        eligible.len() - 1,
        "the redeemed one is not pending"
    );
    let without_link = pending.iter().filter(|r| r["link_stored"] == false).count();
    assert_eq!(
        without_link,
        lost.iter().filter(|(u, _)| *u != redeemed).count()
    );
    let invited: Vec<&str> = pending
        .iter()
        .map(|r| r["invited_at"].as_str().unwrap())
        .collect();
    assert!(invited.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    let output = cli(
        dir.path(),
        &sim,
        &["status", "--wave", "pilot", "--pending", "--csv"],
    )
    .await;
    let csv = text(&output.stdout);
    assert!(
        csv.starts_with(
            "user_principal_name,address,invited_at,resent_at,days_pending,link_stored,user_id"
        ),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), eligible.len());
    let output = cli(
        dir.path(),
        &sim,
        &["status", "--wave", "pilot", "--pending"],
    )
    .await;
    let table = text(&output.stdout);
    assert!(
        table.contains(&format!(
            "{} member(s) have not redeemed",
            eligible.len() - 1
        )),
        "{table}"
    );
    assert!(!table.contains("redeem?"), "no link is shown");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_whose_answer_is_lost_is_settled_by_reading_and_a_killed_one_is_sent_once() {
    let sim = quiet_sim(40).await;
    let dir = converted(&sim).await;
    let (wave, eligible, _) = linkless(dir.path()).await;
    let (lost, killed) = (eligible[0], eligible[1]);
    for user in [lost, killed] {
        sim.redeem(&user.to_string()).unwrap();
    }
    let output = cli(
        dir.path(),
        &sim,
        &["status", "--wave", "pilot", "--refresh"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let store = open_store(dir.path()).await;
    let reset = |user| Selection {
        mode: Mode::ResetRedemption,
        missing_links: false,
        older_than: None,
        users: vec![user],
    };

    // Every answer lost: the reset landed (Graph shows it pending again, changed after the
    // intent), so it is recorded as made, without a link, and not sent again.
    sim.set_faults(FaultPlan::parse("invitations:drop=1").unwrap());
    let summary = reinvite_once(&sim, &store, &wave, &reset(lost), Arc::new(Quiet)).await;
    assert_eq!(summary.reconciled, 1, "{summary:?}");
    assert_eq!(sim.invitation_posts(&lost.to_string()), 2);
    let member = store.member(wave.id, lost).await.unwrap().unwrap();
    assert_eq!(member.state, UserState::Invited);
    assert_eq!(member.invite_redeem_url, None, "its link is unknown");
    sim.set_faults(FaultPlan::default());

    // Killed after the intent, before the request: Graph still shows it accepted, so the
    // resumed reset sends it, once.
    let selection = reset(killed);
    let crash = Arc::new(CrashAt {
        user: killed,
        step: Step::IntentRecorded,
        reached: AtomicBool::new(false),
    });
    let reached = async {
        while !crash.reached.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        summary = reinvite_once(&sim, &store, &wave, &selection, crash.clone()) => panic!("should have parked: {summary:?}"),
        () = reached => {}
    }
    assert_eq!(sim.invitation_posts(&killed.to_string()), 1);
    let summary = reinvite_once(&sim, &store, &wave, &selection, Arc::new(Quiet)).await;
    assert_eq!((summary.sent, summary.finished), (1, true), "{summary:?}");
    assert_eq!(sim.invitation_posts(&killed.to_string()), 2);
    assert_eq!(
        sim.user(&killed.to_string())
            .unwrap()
            .external_user_state
            .as_deref(),
        Some("PendingAcceptance")
    );
    let member = store.member(wave.id, killed).await.unwrap().unwrap();
    assert_eq!(member.state, UserState::Invited);
    assert!(member.invite_redeem_url.is_some(), "the new link is stored");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_abuse_block_stops_a_reinvite_at_once_and_its_members_stay_open() {
    let sim = dropping_sim(100, 0.4).await;
    let dir = converted(&sim).await;
    let (_, _, lost) = linkless(dir.path()).await;
    assert!(lost.len() >= 6, "enough link-less users: {}", lost.len());
    let posts = |sim: &Sim| -> Vec<u16> {
        sim.request_log()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/invitations"))
            .map(|r| r.status)
            .collect()
    };
    let before = posts(&sim).len();
    // Two more invitations, then Microsoft blocks the tenant.
    let allowed = sim.counters().invitations_created + 2;
    sim.set_faults(FaultPlan::parse(&format!("invitations:abuse-after={allowed}")).unwrap());
    let output = cli(
        dir.path(),
        &sim,
        &[
            "reinvite",
            "--wave",
            "pilot",
            "--missing-links",
            "--yes",
            "--rate",
            "4",
            "--concurrency",
            "8",
        ],
    )
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Only Microsoft support can lift the block"),
        "{stderr}"
    );
    assert_eq!(
        posts(&sim)[before..],
        [201, 201, 403],
        "nothing after the block, not even the re-sends waiting for their turn"
    );
    // The members not re-sent are still open: once the block is lifted, the same reinvite
    // resumes and re-sends each of them once.
    sim.set_faults(FaultPlan::default());
    let output = cli(
        dir.path(),
        &sim,
        &["reinvite", "--wave", "pilot", "--missing-links", "--yes"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        posts(&sim)[before..].len(),
        3 + lost.len() - 2,
        "each link-less member re-sent once in all"
    );
}
