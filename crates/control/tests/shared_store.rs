//! The state store on a real PostgreSQL (Debian's, started by the test; CI's external stage): what replicas of the
//! control plane share. One replica leads at a time; a write by one that lost the lead is refused and changes
//! nothing (fencing), so a paused or cut-off leader cannot overwrite its successor; what one writes the other
//! reads; the files the cluster shares go through the store into another replica's state directory.

use std::time::Duration;
use stratum_control::Error;
use stratum_control::state::{CheckpointChange, KeptCheckpoint, StateStore};
use stratum_core::events::EventKind;
use stratum_test_support::Postgres;

fn database(name: &str) -> (Postgres, tempfile::TempDir) {
    let folder = tempfile::Builder::new().prefix(name).tempdir_in("/tmp").unwrap();
    (Postgres::start(&folder.path().join("pg")), folder)
}

#[test]
#[ignore = "needs PostgreSQL (CI's external stage)"]
fn one_replica_leads_and_one_that_lost_the_lead_writes_nothing() {
    let (postgres, _folder) = database("lead");
    let first = StateStore::connect(&postgres.url, None).unwrap();
    // Two replicas start together: each brings the schema up to date under the same lock.
    let second = std::thread::scope(|scope| {
        let other = scope.spawn(|| StateStore::connect(&postgres.url, None).unwrap());
        StateStore::connect(&postgres.url, None).unwrap();
        other.join().unwrap()
    });
    let (a, b) = (first.shared().unwrap(), second.shared().unwrap());

    // Nobody leads yet: nobody writes.
    let refused = first.record_version("traffic", "{ir 1}", "{plan 1}").unwrap_err();
    assert!(matches!(refused, Error::NotLeading(_)), "{refused}");

    assert!(a.try_lead("a", "127.0.0.1:7070", Duration::from_millis(700)).unwrap());
    assert!(!b.try_lead("b", "127.0.0.1:7071", Duration::from_secs(5)).unwrap(), "the lead is held");
    let leader = b.leader().unwrap();
    assert_eq!((leader.holder.as_str(), leader.address.as_str(), leader.term), ("a", "127.0.0.1:7070", 1));
    assert!(leader.remaining_milliseconds > 0 && leader.remaining_milliseconds <= 700, "{leader:?}");

    // The leader writes; the standby reads the same state.
    assert_eq!(first.record_version("traffic", "{ir 1}", "{plan 1}").unwrap(), 1);
    first.record_agent("fog1", "{\"tier\": \"fog\"}").unwrap();
    first.record_agent_key("fog1", "abc").unwrap();
    first.record_event("traffic", EventKind::Applied, None, "version 1").unwrap();
    first.record_event("traffic", EventKind::AgentJoined, Some("fog1"), "4 cores").unwrap();
    first
        .change_checkpoints(&[CheckpointChange::Keep(KeptCheckpoint {
            component: "counts".into(),
            holder: Some("fog1".into()),
            file: "{1}".into(),
        })])
        .unwrap();
    first.record_migration("traffic", 1, "counts", "cloud").unwrap();
    first.record_added_instances("traffic", 1, "counts", 2).unwrap();
    assert_eq!(second.latest_deployment().unwrap().unwrap().1, 1);
    assert_eq!(second.agents().unwrap(), [("fog1".to_string(), "{\"tier\": \"fog\"}".to_string())]);
    assert_eq!(second.agent_key("fog1").unwrap().as_deref(), Some("abc"));
    let events = second.events("traffic", 10).unwrap();
    assert_eq!(events.iter().map(|event| event.kind).collect::<Vec<_>>(), [EventKind::Applied, EventKind::AgentJoined]);
    assert_eq!(events[1].component.as_deref(), Some("fog1"));
    assert_eq!(second.component_events("fog1", 10).unwrap().len(), 1);
    assert_eq!(second.kept_checkpoints().unwrap()[0].holder.as_deref(), Some("fog1"));
    assert_eq!(second.migrations("traffic", 1).unwrap(), [("counts".to_string(), "cloud".to_string())]);
    assert_eq!(second.added_instances("traffic", 1).unwrap(), [("counts".to_string(), 2)]);
    assert!(a.renew(Duration::from_millis(700)).unwrap(), "the leader renews its own lease");

    // The leader stops renewing (paused, cut off): its lease lapses and the standby takes over with a new term.
    std::thread::sleep(Duration::from_millis(900));
    assert!(b.try_lead("b", "127.0.0.1:7071", Duration::from_secs(5)).unwrap(), "a lapsed lease is taken over");
    assert_eq!(b.leader().unwrap().term, 2);

    // The old leader wakes up: none of its writes land, and it learns it no longer leads.
    let refused = first.record_version("traffic", "{ir 2}", "{plan 2}").unwrap_err();
    assert!(matches!(refused, Error::NotLeading(_)), "{refused}");
    assert!(first.record_agent("edge1", "{}").is_err());
    assert!(!a.renew(Duration::from_secs(5)).unwrap());
    assert_eq!(second.latest_deployment().unwrap().unwrap().1, 1, "the deposed leader wrote no version");
    assert_eq!(second.agents().unwrap().len(), 1);

    // The new leader writes on from what the old one left.
    assert_eq!(second.record_version("traffic", "{ir 2}", "{plan 2}").unwrap(), 2);
    // It resigns when it stops: the next replica need not wait for the lease.
    b.resign().unwrap();
    assert!(a.try_lead("a", "127.0.0.1:7070", Duration::from_secs(5)).unwrap());
    assert_eq!(a.leader().unwrap().term, 3);
}

#[test]
#[ignore = "needs PostgreSQL (CI's external stage)"]
fn the_files_a_cluster_shares_reach_the_replica_that_takes_over() {
    let (postgres, folder) = database("files");
    let leader = StateStore::connect(&postgres.url, None).unwrap();
    let shared = leader.shared().unwrap();
    assert!(shared.try_lead("a", "a:7070", Duration::from_secs(5)).unwrap());
    let (from, to) = (folder.path().join("a"), folder.path().join("b"));
    for (path, content) in [
        ("path.secret", &b"0123456789abcdef0123456789abcdef"[..]),
        ("tls/ca.pem", b"-----BEGIN CERTIFICATE-----"),
        ("tls/ca.key", b"-----BEGIN PRIVATE KEY-----"),
        ("models/busy/v1.json", b"{\"model\": 1}"),
        ("app/app.stratum", b"app traffic"),
        // Neither a file still being written nor anything outside the shared folders goes.
        ("models/busy/v2.json.partial-1-0", b"{\"half"),
        ("state.db", b"sqlite"),
        ("blobs/abc", b"training data"),
    ] {
        stratum_control::files::write_whole(&from.join(path), content).unwrap();
    }
    let mut mirror = stratum_control::lead::Mirror::default();
    assert_eq!(mirror.upload(shared, &from).unwrap(), 5);
    assert_eq!(mirror.upload(shared, &from).unwrap(), 0, "unchanged files are not sent again");
    std::thread::sleep(Duration::from_millis(20));
    stratum_control::files::write_whole(&from.join("app/app.stratum"), b"app traffic2").unwrap();
    assert_eq!(mirror.upload(shared, &from).unwrap(), 1, "a changed file is");

    let standby = StateStore::connect(&postgres.url, None).unwrap();
    assert_eq!(stratum_control::lead::download(standby.shared().unwrap(), &to).unwrap(), 5);
    assert_eq!(std::fs::read(to.join("app/app.stratum")).unwrap(), b"app traffic2");
    assert_eq!(std::fs::read(to.join("models/busy/v1.json")).unwrap(), b"{\"model\": 1}");
    assert!(
        !to.join("state.db").exists()
            && !to.join("blobs").exists()
            && !to.join("models/busy/v2.json.partial-1-0").exists()
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(to.join("tls/ca.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "a secret is readable by its user alone");
    assert_eq!(stratum_control::lead::download(standby.shared().unwrap(), &to).unwrap(), 0, "nothing differs now");
}

#[test]
#[ignore = "needs PostgreSQL (CI's external stage)"]
fn a_store_reached_over_tls_trusts_only_its_authority() {
    // The database serves TLS with a certificate from an authority of the operator's; the control plane given
    // that authority connects over TLS, one given another authority is refused, and one given none is told how.
    let folder = tempfile::Builder::new().prefix("tls").tempdir_in("/tmp").unwrap();
    let (authority, certificate, key) = stratum_test_support::authority_and_certificate("localhost");
    let postgres = Postgres::start_with(
        &folder.path().join("pg"),
        &[("server.pem", &certificate), ("server.key", &key)],
        &["ssl=on", "ssl_cert_file=../server.pem", "ssl_key_file=../server.key"],
    );
    let url = postgres.url.replace("127.0.0.1", "localhost");
    let store = StateStore::connect(&url, Some(&authority)).unwrap();
    let shared = store.shared().unwrap();
    assert!(shared.try_lead("a", "a:7070", Duration::from_secs(5)).unwrap());
    assert!(shared.over_tls().unwrap(), "the session is encrypted");
    assert_eq!(store.record_version("traffic", "{ir}", "{plan}").unwrap(), 1);

    let (other, _, _) = stratum_test_support::authority_and_certificate("localhost");
    let refused = StateStore::connect(&url, Some(&other)).err().expect("another authority is not trusted");
    assert!(refused.to_string().contains("cannot reach the state store"), "{refused}");
    let untold = StateStore::connect(&format!("{url}?sslmode=require"), None).err().unwrap();
    assert!(untold.to_string().contains("--store-ca"), "{untold}");
    // Without TLS asked for, the same database is reached in the clear (a private network's choice).
    let plain = StateStore::connect(&url, None).unwrap();
    assert!(!plain.shared().unwrap().over_tls().unwrap());
}
