//! The crash test: the simulator drives load while the exporter is killed with SIGKILL at
//! random moments and restarted each time; at the end every counter equals the
//! simulator's acknowledged totals exactly.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdr_exporter::sim::{self, SimConfig};
use common::expect::assert_exporter_shows;
use rand::{Rng, SeedableRng};

fn spawn(port: u16, data: &std::path::Path) -> common::Reaped {
    common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_cdr-exporter"))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
                data.to_str().unwrap(),
                "--log-level",
                "warn",
            ])
            .env("CDR_EXPORTER_SNAPSHOT__INTERVAL_SECONDS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

async fn wait_listening(port: u16) {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "exporter did not come back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = spawn(port, dir.path());
    wait_listening(port).await;

    let cfg = SimConfig {
        target: format!("http://127.0.0.1:{port}/cdr"),
        call_bridges: 4,
        unclustered: 1,
        tenants: 3,
        calls_per_second: 25.0,
        duration: Some(Duration::from_secs(8)),
        seed: 7_000_003,
        drop_rate: 0.01,
        restart_every: Some(Duration::from_secs(3)),
        duplicate_rate: 0.05,
        // A killed exporter never answers: retry soon.
        request_timeout: Duration::from_secs(2),
        ..SimConfig::default()
    };
    let sim = tokio::spawn(sim::run(cfg, std::future::pending()));

    // Kill at random moments (seeded, so a failure can be replayed), restart at once.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0xC0FFEE);
    let mut kills = 0;
    while kills < 5 && !sim.is_finished() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        child = spawn(port, dir.path());
        wait_listening(port).await;
    }
    assert!(kills >= 3, "only {kills} kills before the simulation ended");
    let summary = tokio::time::timeout(Duration::from_secs(120), sim)
        .await
        .expect("simulation hung")
        .unwrap()
        .expect("simulation failed");
    assert_eq!(
        summary.records_unsent, 0,
        "every record was eventually acknowledged"
    );
    assert_eq!(summary.rejected_batches, 0);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_exporter_shows(addr, &summary.expected).await;

    // And once more after a final kill: the state on disk alone gives the same numbers.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut child = spawn(port, dir.path());
    wait_listening(port).await;
    assert_exporter_shows(addr, &summary.expected).await;
    child.kill().unwrap();
    child.wait().unwrap();
}
