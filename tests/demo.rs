//! The README's main command as a stranger meets it: `holterd demo` started
//! in an empty directory, with no database anywhere (`HOLTER_DATA_DIR` names
//! a directory that does not exist), plays the bundled excerpts and stores
//! classified beats in `./holterd.sqlite`.

mod common;

use holterd::rhythm::EpisodeKind;
use holterd::store::{AnyStore, BeatQuery, EpisodeQuery, SqliteStore, Store, Verdict};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_from_an_empty_directory_without_the_database() {
    let dir = common::temp_dir("demo");
    let log = std::fs::File::create(dir.join("demo.log")).unwrap();
    let mut child = common::holterd()
        .current_dir(&dir)
        .env("HOLTER_DATA_DIR", dir.join("no-database-here"))
        .env_remove("HOLTER_STORE_URL")
        .env("RUST_LOG", "warn")
        .args(["demo", "--records", "119", "--speed", "0"])
        .arg("--set")
        .arg(format!("http.listen=127.0.0.1:{}", common::free_port()))
        .arg("--set")
        .arg(format!(
            "embedded_broker.listen=127.0.0.1:{}",
            common::free_port()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();

    // The excerpt of record 119 holds 329 reference beats (248 N, 81 V) in 5 minutes.
    let db = dir.join("holterd.sqlite");
    let started = Instant::now();
    let (mut beats, mut last_change) = (Vec::new(), Instant::now());
    while started.elapsed() < Duration::from_secs(180) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.join("demo.log")).unwrap_or_default();
            panic!("the demo exited early ({status}):\n{log}");
        }
        if !db.exists() {
            continue;
        }
        let Ok(store) = SqliteStore::open(&db).await else {
            continue;
        };
        let store = AnyStore::Sqlite(store);
        let now = store
            .beats(&BeatQuery::all("demo-119", u32::MAX))
            .await
            .unwrap_or_default();
        if now.len() != beats.len() {
            (beats, last_change) = (now, Instant::now());
        } else if beats.len() >= 300 && last_change.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(dir.join("demo.log")).unwrap_or_default();
    assert!(status.success(), "the demo did not stop cleanly: {log}");

    assert!(
        (300..=360).contains(&beats.len()),
        "{} beats stored for demo-119 (the excerpt has 329):\n{log}",
        beats.len()
    );
    let abnormal = beats
        .iter()
        .filter(|b| b.verdict == Verdict::Abnormal)
        .count();
    assert!(
        (40..=200).contains(&abnormal),
        "{abnormal} of {} beats flagged (the excerpt has 81 V beats)",
        beats.len()
    );
    assert!(beats.iter().all(|b| b.model == "context-mlp-beat-inter"));

    // The rhythm analyser ran beside the beats: record 119's ventricular
    // bigeminy and trigeminy are stored as episodes.
    let store = AnyStore::Sqlite(SqliteStore::open(&db).await.unwrap());
    let episodes = store
        .episodes(&EpisodeQuery {
            device: "demo-119".into(),
            from_us: i64::MIN,
            to_us: i64::MAX,
            kind: None,
            limit: 1000,
        })
        .await
        .unwrap();
    let patterns: Vec<_> = episodes
        .iter()
        .filter(|e| {
            matches!(
                e.episode.kind,
                EpisodeKind::Bigeminy | EpisodeKind::Trigeminy
            )
        })
        .collect();
    assert!(!patterns.is_empty(), "{episodes:?}");
    assert!(
        patterns
            .iter()
            .all(|e| e.episode.beats >= 6
                && e.analyser.starts_with("rhythm/1 context-mlp-beat-inter"))
    );
}
