//! Correlation through `Ingest::apply`: dedupe, gaps, restarts, attribution, unknown ids,
//! invalid records, eviction and label caps. Values are read back from the exposition.

mod common;

use cdr_exporter::cdr;
use cdr_exporter::config::Config;
use cdr_exporter::ingest::{Origin, Outcome};
use cdr_exporter::App;
use common::records::*;
use common::{fixture, Scrape};

const CB: &str = "158ba4f7-70eb-4a35-982c-71d4f1674277";
const S1: &str = "aaaaaaaa-0000-4000-8000-000000000001";

struct T {
    app: App,
}

impl T {
    fn new() -> T {
        Self::with(Config::default())
    }
    fn with(cfg: Config) -> T {
        T {
            app: App::new(&cfg).unwrap(),
        }
    }
    fn post(&self, body: &[u8]) -> Outcome {
        let b = cdr::parse(body).expect("well-formed");
        self.app
            .pipeline
            .ingest()
            .apply(&b, &Origin::default(), 1_000_000.0)
    }
    fn scrape(&self) -> Scrape {
        let s = Scrape(self.app.state.exposition.encode_text());
        // No active gauge may ever go below zero.
        for name in [
            "cms_calls_active",
            "cms_call_legs_active",
            "cms_tenant_calls_active",
            "cms_tenant_call_legs_active",
            "cms_recordings_active",
            "cms_streamings_active",
        ] {
            for (labels, v) in s.samples(name) {
                assert!(v >= 0.0, "{name}{labels:?} = {v}");
            }
        }
        s
    }
}

const C1: &str = "c0000000-0000-4000-8000-000000000001";
const L1: &str = "10000000-0000-4000-8000-000000000001";
const L2: &str = "10000000-0000-4000-8000-000000000002";
const TENANT: &str = "7e000000-0000-4000-8000-000000000001";

#[test]
fn the_same_batch_twice_counts_once() {
    let t = T::new();
    for i in 1..=6 {
        t.post(&fixture(&format!("ch6-post{i}.xml")));
    }
    let before = t.scrape();
    for i in 1..=6 {
        let o = t.post(&fixture(&format!("ch6-post{i}.xml")));
        assert_eq!(o.applied, 0);
    }
    let after = t.scrape();
    for name in [
        "cdr_exporter_records_total",
        "cms_calls_started_total",
        "cms_call_legs_ended_total",
        "cms_call_leg_duration_seconds_count",
    ] {
        assert_eq!(before.sum(name, &[]), after.sum(name, &[]), "{name}");
    }
    assert_eq!(after.sum("cdr_exporter_records_total", &[]), 8.0);
    assert_eq!(
        after.get(
            "cdr_exporter_records_duplicate_total",
            &[("call_bridge", CB)]
        ),
        Some(8.0)
    );
    assert_eq!(after.sum("cdr_exporter_records_missing_total", &[]), 0.0);
}

#[test]
fn gaps_by_jump_and_by_num_preceding_are_counted_once() {
    let t = T::new();
    let o = t.post(&fixture("gap-jump.xml"));
    assert_eq!((o.applied, o.missing), (3, 3));
    let t2 = T::new();
    let o = t2.post(&fixture("gap-numpreceeding.xml"));
    assert_eq!(
        (o.applied, o.missing),
        (3, 3),
        "jump and numPreceedingRecordsMissing describe the same 3 records"
    );
    assert_eq!(
        t2.scrape().sum("cdr_exporter_records_missing_total", &[]),
        3.0
    );

    // numPreceedingRecordsMissing without a jump (the sender renumbered nothing) counts too,
    // and the same gap seen again in a resend is not counted twice.
    let t3 = T::new();
    let b1 = batch(S1, Some(CB), &[("callStart", 0, call_start(C1, None))]);
    let b2 = String::from_utf8(batch(S1, Some(CB), &[("callEnd", 1, call_end(C1))]))
        .unwrap()
        .replace(
            "correlatorIndex=\"1\"",
            "correlatorIndex=\"1\" numPreceedingRecordsMissing=\"5\"",
        );
    t3.post(&b1);
    assert_eq!(t3.post(b2.as_bytes()).missing, 5);
    assert_eq!(t3.post(b2.as_bytes()).missing, 0);
    // A gap between batches.
    let b3 = batch(
        S1,
        Some(CB),
        &[(
            "callStart",
            10,
            call_start("c0000000-0000-4000-8000-00000000000a", None),
        )],
    );
    assert_eq!(t3.post(&b3).missing, 8);
    assert_eq!(
        t3.scrape()
            .get("cdr_exporter_records_missing_total", &[("call_bridge", CB)]),
        Some(13.0)
    );
}

#[test]
fn a_restart_ends_the_old_sessions_calls_and_legs() {
    let t = T::new();
    for i in 1..=4 {
        t.post(&fixture(&format!("ch6-post{i}.xml")));
    }
    let s = t.scrape();
    assert_eq!(s.sum("cms_calls_active", &[("call_bridge", CB)]), 1.0);
    assert_eq!(s.sum("cms_call_legs_active", &[("call_bridge", CB)]), 2.0);
    let o = t.post(&fixture("restart-session2.xml"));
    assert_eq!(o.evicted, 3);
    let s = t.scrape();
    // Old call and both old legs are gone; the new session's call and leg are active.
    assert_eq!(s.sum("cms_calls_active", &[("call_bridge", CB)]), 1.0);
    assert_eq!(s.sum("cms_call_legs_active", &[("call_bridge", CB)]), 1.0);
    assert_eq!(
        s.get(
            "cdr_exporter_evicted_objects_total",
            &[("kind", "call"), ("reason", "restart")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.get(
            "cdr_exporter_evicted_objects_total",
            &[("kind", "call_leg"), ("reason", "restart")]
        ),
        Some(2.0)
    );
    assert_eq!(
        s.get("cdr_exporter_sessions_total", &[("call_bridge", CB)]),
        Some(2.0)
    );
    assert_eq!(
        s.sum("cdr_exporter_records_missing_total", &[]),
        0.0,
        "a new session starts its own index"
    );
    assert_eq!(
        s.get("cdr_exporter_tracked_objects", &[("kind", "call_leg")]),
        Some(1.0)
    );
    // A resend of what the old session already sent is a duplicate; a record it had not
    // sent (a lagging second receiver stream) is applied, never dropped: its leg was ended
    // by the restart, so the end is unmatched and attributed to `unknown`.
    let o = t.post(&fixture("ch6-post4.xml"));
    assert_eq!((o.applied, o.duplicates), (0, 1));
    let o = t.post(&fixture("ch6-post5.xml"));
    assert_eq!((o.applied, o.invalid), (1, 0));
    let s = t.scrape();
    assert_eq!(
        s.sum("cms_tenant_call_legs_ended_total", &[("tenant", "unknown")]),
        1.0
    );
    assert_eq!(
        s.sum("cms_call_legs_active", &[("call_bridge", CB)]),
        1.0,
        "the new session's leg is untouched"
    );
    assert_eq!(s.sum("cdr_exporter_records_invalid_total", &[]), 0.0);
    // The new session is still the Call Bridge's current one: another new, booted session
    // ends it as a restart.
    let s3 = String::from_utf8(fixture("restart-session2.xml"))
        .unwrap()
        .replace(
            "902821fa-0c5b-44d1-a26e-db0afb172aed",
            "902821fa-0c5b-44d1-a26e-db0afb172aee",
        );
    let o = t.post(s3.as_bytes());
    assert!(o.evicted >= 2, "{o:?}");
}

#[test]
fn a_new_session_that_did_not_boot_does_not_end_the_live_one() {
    // Two unclustered Call Bridges behind one address, no ?call_bridge=: the second one's
    // session starts at a high index, so it is not a restart of the first.
    let t = T::new();
    let a = "aaaaaaaa-0000-4000-8000-00000000000a";
    let b = "bbbbbbbb-0000-4000-8000-00000000000b";
    t.post(&batch(
        a,
        None,
        &[
            ("callStart", 0, call_start(C1, None)),
            ("callLegStart", 1, leg_start(L1, Some(C1))),
        ],
    ));
    t.post(&batch(
        b,
        None,
        &[("callLegStart", 5000, leg_start(L2, None))],
    ));
    let s = t.scrape();
    assert_eq!(
        s.sum("cms_call_legs_active", &[]),
        2.0,
        "both bridges' legs stay active"
    );
    assert_eq!(s.sum("cdr_exporter_evicted_objects_total", &[]), 0.0);
    t.post(&batch(
        a,
        None,
        &[("callLegEnd", 2, leg_end(L1, "remoteTeardown"))],
    ));
    let s = t.scrape();
    assert_eq!(s.sum("cms_call_legs_active", &[]), 1.0);
    assert_eq!(
        s.sum("cdr_exporter_records_unmatched_total", &[]),
        0.0,
        "nothing was dropped or evicted"
    );
}

#[test]
fn legs_are_attributed_across_start_and_update() {
    let t = T::new();
    // L1 names its call at start; L2 only in an update.
    t.post(&batch(
        S1,
        Some(CB),
        &[
            ("callStart", 0, call_start(C1, Some(TENANT))),
            ("callLegStart", 1, leg_start(L1, Some(C1))),
            ("callLegStart", 2, leg_start(L2, None)),
        ],
    ));
    let s = t.scrape();
    assert_eq!(
        s.sum("cms_tenant_call_legs_active", &[("tenant", TENANT)]),
        1.0
    );
    assert_eq!(
        s.sum("cms_tenant_call_legs_active", &[("tenant", "unknown")]),
        1.0
    );
    t.post(&batch(
        S1,
        Some(CB),
        &[("callLegUpdate", 3, leg_update(L2, C1))],
    ));
    let s = t.scrape();
    assert_eq!(
        s.sum("cms_tenant_call_legs_active", &[("tenant", TENANT)]),
        2.0
    );
    assert_eq!(
        s.sum("cms_tenant_call_legs_active", &[("tenant", "unknown")]),
        0.0
    );
    t.post(&batch(
        S1,
        Some(CB),
        &[
            ("callLegEnd", 4, leg_end(L1, "remoteTeardown")),
            ("callLegEnd", 5, leg_end(L2, "timeout")),
            ("callEnd", 6, call_end(C1)),
        ],
    ));
    let s = t.scrape();
    assert_eq!(
        s.get("cms_tenant_call_legs_ended_total", &[("tenant", TENANT)]),
        Some(2.0),
        "both legs, whatever their reason (compact detail)"
    );
    assert_eq!(
        s.get(
            "cms_call_legs_ended_total",
            &[
                ("call_bridge", CB),
                ("reason", "timeout"),
                ("remote_teardown", "false")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.sum("cms_tenant_call_legs_ended_total", &[("tenant", TENANT)]),
        2.0
    );
    assert_eq!(s.sum("cms_call_legs_active", &[]), 0.0);
    assert_eq!(s.sum("cms_calls_active", &[]), 0.0);
    assert_eq!(s.sum("cdr_exporter_records_unmatched_total", &[]), 0.0);
}

#[test]
fn a_leg_naming_its_call_before_call_start_is_relabelled() {
    let t = T::new();
    t.post(&batch(
        S1,
        Some(CB),
        &[
            ("callLegStart", 0, leg_start(L1, None)),
            ("callLegUpdate", 1, leg_update(L1, C1)),
        ],
    ));
    assert_eq!(
        t.scrape()
            .sum("cms_tenant_call_legs_active", &[("tenant", "unknown")]),
        1.0
    );
    assert_eq!(
        t.scrape().sum("cms_calls_active", &[]),
        0.0,
        "a call named only by a leg is not active yet"
    );
    t.post(&batch(
        S1,
        Some(CB),
        &[("callStart", 2, call_start(C1, Some(TENANT)))],
    ));
    let s = t.scrape();
    assert_eq!(
        s.sum("cms_tenant_call_legs_active", &[("tenant", TENANT)]),
        1.0
    );
    assert_eq!(
        s.sum("cms_tenant_call_legs_active", &[("tenant", "unknown")]),
        0.0
    );
    assert_eq!(s.sum("cms_tenant_calls_active", &[("tenant", TENANT)]), 1.0);
    t.post(&batch(
        S1,
        Some(CB),
        &[
            ("callLegEnd", 3, leg_end(L1, "callEnded")),
            ("callEnd", 4, call_end(C1)),
        ],
    ));
    let s = t.scrape();
    assert_eq!(
        s.sum("cms_tenant_call_legs_ended_total", &[("tenant", TENANT)]),
        1.0
    );
    assert_eq!(
        s.sum("cms_tenant_calls_ended_total", &[("tenant", TENANT)]),
        1.0
    );
    assert_eq!(
        s.sum("cms_call_legs_active", &[]) + s.sum("cms_calls_active", &[]),
        0.0
    );
}

#[test]
fn end_records_for_unknown_ids_count_but_never_go_below_zero() {
    let t = T::new();
    t.post(&batch(
        S1,
        Some(CB),
        &[
            ("callLegEnd", 0, leg_end(L1, "remoteTeardown")),
            ("callEnd", 1, call_end(C1)),
            (
                "recordingEnd",
                2,
                "<recording id=\"e0000000-0000-4000-8000-000000000001\"/>".into(),
            ),
            (
                "streamingEnd",
                3,
                "<streaming id=\"e0000000-0000-4000-8000-000000000002\"/>".into(),
            ),
        ],
    ));
    let s = t.scrape(); // asserts no negative gauge
    assert_eq!(
        s.get(
            "cms_call_legs_ended_total",
            &[
                ("call_bridge", CB),
                ("reason", "remoteTeardown"),
                ("remote_teardown", "false")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.get(
            "cms_calls_ended_total",
            &[("call_bridge", CB), ("call_type", "unknown")]
        ),
        Some(1.0)
    );
    // And, by tenant, as never attributed.
    assert_eq!(
        s.get("cms_tenant_call_legs_ended_total", &[("tenant", "unknown")]),
        Some(1.0)
    );
    assert_eq!(
        s.get("cms_tenant_calls_ended_total", &[("tenant", "unknown")]),
        Some(1.0)
    );
    assert_eq!(s.sum("cms_recordings_ended_total", &[]), 1.0);
    assert_eq!(
        s.sum(
            "cdr_exporter_records_unmatched_total",
            &[("call_bridge", CB)]
        ),
        4.0
    );
    assert_eq!(s.sum("cms_call_legs_active", &[]), 0.0);
}

#[test]
fn invalid_records_are_counted_and_the_rest_applied() {
    let t = T::new();
    let o = t.post(&fixture("invalid-records.xml"));
    assert_eq!((o.applied, o.invalid, o.missing), (2, 2, 0));
    let s = t.scrape();
    assert_eq!(
        s.sum(
            "cdr_exporter_records_invalid_total",
            &[("reason", "bad_number")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "cdr_exporter_records_invalid_total",
            &[("reason", "missing_id")]
        ),
        1.0
    );
    assert_eq!(s.sum("cdr_exporter_records_total", &[]), 2.0);
}

#[test]
fn an_unreadable_leg_end_still_ends_the_leg() {
    let t = T::new();
    t.post(&batch(
        S1,
        Some(CB),
        &[("callLegStart", 0, leg_start(L1, None))],
    ));
    let bad = format!("<callLeg id=\"{L1}\"><reason>error</reason><durationSeconds>NaN</durationSeconds></callLeg>");
    let o = t.post(&batch(S1, Some(CB), &[("callLegEnd", 1, bad)]));
    assert_eq!(o.invalid, 1);
    let s = t.scrape();
    assert_eq!(s.sum("cms_call_legs_active", &[]), 0.0);
    assert_eq!(
        s.sum(
            "cdr_exporter_records_invalid_total",
            &[("reason", "bad_number")]
        ),
        1.0
    );
}

#[test]
fn tolerant_forms_apply_without_errors_or_false_gaps() {
    let t = T::new();
    let o = t.post(&fixture("tolerant-forms.xml"));
    assert_eq!((o.invalid, o.missing), (0, 0));
    assert_eq!(o.applied, 6);
    let s = t.scrape();
    assert_eq!(
        s.sum(
            "cdr_exporter_records_total",
            &[("record_type", "callLegFuture")]
        ),
        1.0
    );
    assert_eq!(
        s.sum("cms_call_leg_duration_seconds_sum", &[]) as i64 % 9999,
        s.sum("cms_call_leg_duration_seconds_sum", &[]) as i64,
        "nested lookalike ignored"
    );
}

#[test]
fn recordings_and_streamings_are_tracked() {
    let t = T::new();
    for f in ["record-recordingStart.xml", "record-streamingStart.xml"] {
        t.post(&fixture(f));
    }
    let s = t.scrape();
    assert_eq!(s.sum("cms_recordings_active", &[("call_bridge", CB)]), 1.0);
    assert_eq!(s.sum("cms_streamings_active", &[("call_bridge", CB)]), 1.0);
    assert_eq!(s.sum("cms_recordings_started_total", &[]), 1.0);
    for f in ["record-recordingEnd.xml", "record-streamingEnd.xml"] {
        t.post(&fixture(f));
    }
    let s = t.scrape();
    assert_eq!(
        s.sum("cms_recordings_active", &[]) + s.sum("cms_streamings_active", &[]),
        0.0
    );
    assert_eq!(s.sum("cms_streamings_ended_total", &[]), 1.0);
    assert_eq!(s.sum("cdr_exporter_records_unmatched_total", &[]), 0.0);
}

#[test]
fn tracking_is_bounded_by_age_and_count_and_evictions_are_counted() {
    let mut cfg = Config::default();
    cfg.tracking.max_objects = 10;
    cfg.tracking.max_age_seconds = 3600;
    let t = T::with(cfg);
    let legs: Vec<_> = (0..25u64)
        .map(|i| {
            (
                "callLegStart",
                i,
                leg_start(&format!("10000000-0000-4000-8000-{i:012}"), None),
            )
        })
        .collect();
    t.post(&batch(S1, Some(CB), &legs));
    let s = t.scrape();
    let active = s.sum("cms_call_legs_active", &[]);
    let evicted = s.sum(
        "cdr_exporter_evicted_objects_total",
        &[("kind", "call_leg"), ("reason", "max_objects")],
    );
    assert!(active <= 10.0, "active {active}");
    assert_eq!(active + evicted, 25.0);
    assert_eq!(
        s.get("cdr_exporter_tracked_objects", &[("kind", "call_leg")]),
        Some(active)
    );
    // An hour past the batch (applied at t=1e6), everything left is too old.
    let n = t.app.pipeline.ingest().sweep(1_000_000.0 + 3601.0);
    assert_eq!(n as f64, active);
    let s = t.scrape();
    assert_eq!(s.sum("cms_call_legs_active", &[]), 0.0);
    assert_eq!(
        s.get(
            "cdr_exporter_evicted_objects_total",
            &[("kind", "call_leg"), ("reason", "max_age")]
        ),
        Some(active)
    );
    assert_eq!(
        s.get("cdr_exporter_tracked_objects", &[("kind", "call_leg")]),
        Some(0.0)
    );
}

#[test]
fn label_caps_overflow_to_other_and_count() {
    let mut cfg = Config::default();
    cfg.labels.max_tenants = 4; // none, unknown + 2 more
    let t = T::with(cfg);
    let calls: Vec<_> = (0..5u64)
        .map(|i| {
            (
                "callStart",
                i,
                call_start(
                    &format!("c0000000-0000-4000-8000-{i:012}"),
                    Some(&format!("tenant-{i}")),
                ),
            )
        })
        .collect();
    t.post(&batch(S1, Some(CB), &calls));
    let s = t.scrape();
    assert_eq!(
        s.sum("cms_tenant_calls_active", &[("tenant", "other")]),
        3.0
    );
    assert_eq!(s.sum("cms_calls_active", &[]), 5.0);
    assert_eq!(
        s.get(
            "cdr_exporter_label_overflow_total",
            &[("label", "tenant"), ("cause", "max_values")]
        ),
        Some(3.0)
    );
}

#[test]
fn recordings_and_streamings_count_by_tenant_of_their_call() {
    let t = T::new();
    const R1: &str = "2e000000-0000-4000-8000-000000000001";
    const R2: &str = "2e000000-0000-4000-8000-000000000002";
    const ST: &str = "5e000000-0000-4000-8000-000000000001";
    let rec = |id: &str, call: Option<&str>| {
        let c = call
            .map(|c| format!("<call>{c}</call>"))
            .unwrap_or_default();
        format!("<recording id=\"{id}\">{c}</recording>")
    };
    let stream =
        |id: &str, call: &str| format!("<streaming id=\"{id}\"><call>{call}</call></streaming>");
    t.post(&batch(
        S1,
        Some(CB),
        &[
            ("callStart", 0, call_start(C1, Some(TENANT))),
            ("recordingStart", 1, rec(R1, Some(C1))),
            // Its call was never seen: unknown, never dropped.
            (
                "recordingStart",
                2,
                rec(R2, Some("c0000000-0000-4000-8000-00000000dead")),
            ),
            ("streamingStart", 3, stream(ST, C1)),
            // A repeated start counts once on the gauges.
            ("recordingStart", 4, rec(R1, Some(C1))),
        ],
    ));
    let s = t.scrape();
    assert_eq!(
        s.get("cms_tenant_recordings_active", &[("tenant", TENANT)]),
        Some(1.0)
    );
    assert_eq!(
        s.get("cms_tenant_recordings_active", &[("tenant", "unknown")]),
        Some(1.0)
    );
    assert_eq!(
        s.get("cms_tenant_streamings_active", &[("tenant", TENANT)]),
        Some(1.0)
    );
    assert_eq!(
        s.get("cms_tenant_recordings_started_total", &[("tenant", TENANT)]),
        Some(2.0)
    );
    assert_eq!(s.sum("cms_recordings_active", &[]), 2.0);
    // The call ends first (CMS sends recordingEnd later): the tenant is kept with the recording.
    t.post(&batch(
        S1,
        Some(CB),
        &[
            ("callEnd", 5, call_end(C1)),
            ("recordingEnd", 6, format!("<recording id=\"{R1}\"/>")),
            ("streamingEnd", 7, format!("<streaming id=\"{ST}\"/>")),
        ],
    ));
    let s = t.scrape();
    assert_eq!(
        s.get("cms_tenant_recordings_active", &[("tenant", TENANT)]),
        Some(0.0)
    );
    assert_eq!(
        s.get("cms_tenant_streamings_active", &[("tenant", TENANT)]),
        Some(0.0)
    );
    assert_eq!(
        s.get("cms_tenant_recordings_active", &[("tenant", "unknown")]),
        Some(1.0)
    );
    // A restart ends what is left, by tenant too.
    t.post(&batch(
        "aaaaaaaa-0000-4000-8000-000000000002",
        Some(CB),
        &[(
            "callStart",
            0,
            call_start("c0000000-0000-4000-8000-000000000002", None),
        )],
    ));
    let s = t.scrape();
    assert_eq!(s.sum("cms_tenant_recordings_active", &[]), 0.0);
    for (l, v) in s
        .samples("cms_tenant_recordings_active")
        .into_iter()
        .chain(s.samples("cms_tenant_streamings_active"))
    {
        assert!(v >= 0.0, "{l:?} {v}");
    }
}

#[test]
fn legs_count_by_participant_kind() {
    let t = T::new();
    let leg = |id: &str, extra: &str| {
        format!(
            "<callLeg id=\"{id}\"><type>sip</type><direction>incoming</direction>{extra}</callLeg>"
        )
    };
    t.post(&batch(
        S1,
        Some(CB),
        &[
            (
                "callLegStart",
                0,
                leg(
                    L1,
                    "<subType>lync</subType><guestConnection>false</guestConnection>",
                ),
            ),
            (
                "callLegStart",
                1,
                leg(
                    L2,
                    "<subType>webApp</subType><guestConnection>true</guestConnection>",
                ),
            ),
            (
                "callLegStart",
                2,
                leg("10000000-0000-4000-8000-000000000003", ""),
            ),
            (
                "callLegStart",
                3,
                leg(
                    "10000000-0000-4000-8000-000000000004",
                    "<subType>webApp</subType><guestConnection>true</guestConnection>",
                ),
            ),
        ],
    ));
    let s = t.scrape();
    let kind = |st: &str, g: &str| {
        s.get(
            "cms_call_legs_started_by_kind_total",
            &[
                ("call_bridge", CB),
                ("sub_type", st),
                ("guest_connection", g),
            ],
        )
    };
    assert_eq!(kind("lync", "false"), Some(1.0));
    assert_eq!(kind("webApp", "true"), Some(2.0));
    assert_eq!(kind("none", "unknown"), Some(1.0));
}
