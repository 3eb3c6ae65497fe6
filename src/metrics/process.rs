//! `process_*` metrics read from /proc at scrape time (prometheus-client has no process collector).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// Reads `/proc/self` on every scrape; on other systems it writes nothing.
#[derive(Debug, Default)]
pub struct ProcessCollector;

fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: f64,
) -> std::fmt::Result {
    let mut me = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    me.encode_gauge(&v)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(me) = procfs::process::Process::myself() else {
            return Ok(());
        };
        let Ok(stat) = me.stat() else {
            return Ok(());
        };
        let tps = procfs::ticks_per_second() as f64;
        let cpu = (stat.utime + stat.stime) as f64 / tps;
        {
            let mut m = enc.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent",
                Some(&Unit::Seconds),
                MetricType::Counter,
            )?;
            m.encode_counter::<NoLabelSet, f64, f64>(&cpu, None)?;
        }
        let page = procfs::page_size() as f64;
        gauge(
            &mut enc,
            "process_resident_memory",
            "Resident memory size",
            Some(&Unit::Bytes),
            stat.rss as f64 * page,
        )?;
        gauge(
            &mut enc,
            "process_virtual_memory",
            "Virtual memory size",
            Some(&Unit::Bytes),
            stat.vsize as f64,
        )?;
        if let Ok(n) = me.fd_count() {
            gauge(
                &mut enc,
                "process_open_fds",
                "Number of open file descriptors",
                None,
                n as f64,
            )?;
        }
        if let Ok(l) = me.limits() {
            if let procfs::process::LimitValue::Value(v) = l.max_open_files.soft_limit {
                gauge(
                    &mut enc,
                    "process_max_fds",
                    "Maximum number of open file descriptors",
                    None,
                    v as f64,
                )?;
            }
        }
        if let Ok(boot) = procfs::boot_time_secs() {
            let start = boot as f64 + stat.starttime as f64 / tps;
            gauge(
                &mut enc,
                "process_start_time",
                "Start time of the process since the Unix epoch",
                Some(&Unit::Seconds),
                start,
            )?;
        }
        gauge(
            &mut enc,
            "process_threads",
            "Number of OS threads in the process",
            None,
            stat.num_threads as f64,
        )?;
        Ok(())
    }
}
