//! `cdr-exporter import-freeswitch DIR` against the real binary: err-log-dir files in the
//! upstream names and encodings reach the exporter, move to DIR/imported/, and importing
//! them again counts nothing twice; files that are not CDRs stay and fail the command.

mod common;

use std::path::Path;
use std::process::Command;

use common::binary::{exe, Exporter};
use common::Scrape;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/freeswitch/err-log")
}

fn copy_fixtures(to: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(fixtures()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        n += 1;
    }
    n
}

fn import(dir: &Path, exporter: &Exporter, extra: &[&str]) -> (bool, String) {
    let out = Command::new(exe())
        .arg("import-freeswitch")
        .arg(dir)
        .args(["--quiet", "--target"])
        .arg(format!("http://{}/freeswitch/cdr", exporter.addr))
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn scrape(e: &Exporter) -> Scrape {
    let mut c = common::Conn::open(e.addr).await;
    c.scrape().await
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn err_log_files_are_imported_once_and_bad_ones_stay() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::start(
        &[],
        &[("CDR_EXPORTER_DATA_DIR", data.path().to_str().unwrap())],
    );
    let n = copy_fixtures(dir.path());
    assert_eq!(n, 4);
    // Not CDRs FreeSWITCH wrote: a name that does not match its CDR, and garbage.
    let a_leg = "a_a8d3e6f2-4c1b-4f5e-9b7a-1e2d3c4b5a60.cdr.xml";
    std::fs::copy(
        fixtures().join(a_leg),
        dir.path()
            .join("a_00000000-0000-4000-8000-000000000000.cdr.xml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("junk.cdr.xml"), b"<html>").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not an err-log file").unwrap();

    let (ok, out) = import(dir.path(), &exporter, &[]);
    assert!(!ok, "bad files must fail the command: {out}");
    assert!(
        out.contains("4 posted, 2 not FreeSWITCH CDRs, 0 not delivered"),
        "{out}"
    );
    assert_eq!(
        names(dir.path()),
        [
            "a_00000000-0000-4000-8000-000000000000.cdr.xml",
            "junk.cdr.xml",
            "notes.txt"
        ],
        "the bad ones stay, the imported ones moved"
    );
    assert_eq!(names(&dir.path().join("imported")).len(), 4);
    let s = scrape(&exporter).await;
    assert_eq!(s.sum("freeswitch_cdr_legs_total", &[]), 4.0);
    assert_eq!(
        s.sum("freeswitch_cdr_legs_total", &[("switch", "fs-edge-01")]),
        2.0,
        "the XML A- and B-leg"
    );
    assert_eq!(s.sum("freeswitch_cdr_leg_mos_count", &[]), 4.0);

    // A rerun has nothing left but the bad ones; the same files again count nothing.
    for e in std::fs::read_dir(dir.path().join("imported")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let (_, out) = import(dir.path(), &exporter, &["--keep"]);
    assert!(out.contains("4 posted, 2 not FreeSWITCH CDRs"), "{out}");
    let s = scrape(&exporter).await;
    assert_eq!(s.sum("freeswitch_cdr_legs_total", &[]), 4.0, "idempotent");
    assert_eq!(s.sum("freeswitch_cdr_duplicates_total", &[]), 4.0);
    assert_eq!(names(dir.path()).len(), 7, "--keep leaves them");

    // A receiver that refuses (wrong token) leaves every file in place.
    drop(exporter);
    let exporter = Exporter::start(
        &[],
        &[
            ("CDR_EXPORTER_DATA_DIR", data.path().to_str().unwrap()),
            ("CDR_EXPORTER_AUTH__TOKEN", "right"),
        ],
    );
    std::fs::remove_file(dir.path().join("junk.cdr.xml")).unwrap();
    std::fs::remove_file(
        dir.path()
            .join("a_00000000-0000-4000-8000-000000000000.cdr.xml"),
    )
    .unwrap();
    let (ok, out) = import(dir.path(), &exporter, &["--token", "wrong"]);
    assert!(
        !ok && out.contains("0 posted, 0 not FreeSWITCH CDRs, 4 not delivered"),
        "{out}"
    );
    assert!(out.contains("answered 401"), "{out}");
    let (ok, out) = import(dir.path(), &exporter, &["--token", "right"]);
    assert!(ok, "{out}");
    let s = scrape(&exporter).await;
    assert_eq!(
        s.sum("freeswitch_cdr_legs_total", &[]),
        4.0,
        "the dedupe memory survived the restart"
    );
    assert_eq!(s.sum("freeswitch_cdr_duplicates_total", &[]), 8.0);
}
