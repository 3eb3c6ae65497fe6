//! `process_*` metrics read from /proc at scrape time.

use super::catalogue::*;
use super::encode::{Scraped, Source, Value};

/// Reads `/proc/self` on every scrape; on other systems it writes nothing.
#[derive(Debug, Default)]
pub struct ProcessSource;

impl Source for ProcessSource {
    fn collect(&self, out: &mut Scraped) {
        let Ok(me) = procfs::process::Process::myself() else {
            return;
        };
        let Ok(stat) = me.stat() else {
            return;
        };
        let tps = procfs::ticks_per_second() as f64;
        let cpu = (stat.utime + stat.stime) as f64 / tps;
        out.add(&PROCESS_CPU, &[], Value::F64(cpu));
        let page = procfs::page_size();
        out.add(&PROCESS_RSS, &[], Value::U64(stat.rss * page));
        out.add(&PROCESS_VMEM, &[], Value::U64(stat.vsize));
        if let Ok(n) = me.fd_count() {
            out.add(&PROCESS_OPEN_FDS, &[], Value::U64(n as u64));
        }
        if let Ok(l) = me.limits() {
            if let procfs::process::LimitValue::Value(v) = l.max_open_files.soft_limit {
                out.add(&PROCESS_MAX_FDS, &[], Value::U64(v));
            }
        }
        if let Ok(boot) = procfs::boot_time_secs() {
            let start = boot as f64 + stat.starttime as f64 / tps;
            out.add(&PROCESS_START, &[], Value::F64(start));
        }
        out.add(&PROCESS_THREADS, &[], Value::I64(stat.num_threads));
    }
}
