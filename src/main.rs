//! The `cdr-exporter` command line: parse flags, load the config, set up logging, run the
//! exporter (default), `demo` (the exporter fed by the simulator), `simulate`, `rules` or
//! `import-freeswitch`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cdr_exporter::config::{Config, LogFormat, Overrides};
use cdr_exporter::sim::{SimConfig, DEFAULT_RETRY};
use clap::{Args, Parser, Subcommand};

/// `--version`: the crate version, the git revision and the compiler it was built with.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("CDR_BUILD_REVISION"),
    ", rustc ",
    env!("CDR_BUILD_RUSTC"),
    ")"
);

/// CDR receiver for Cisco Meeting Server and Prometheus exporter.
///
/// Without a subcommand it runs the exporter.
#[derive(Parser, Debug)]
#[command(version = VERSION, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    exporter: ExporterArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The exporter's flags (also accepted after `demo`).
#[derive(Args, Debug, Default, Clone)]
struct ExporterArgs {
    /// TOML configuration file (optional: built-in defaults apply without one).
    #[arg(long, value_name = "FILE", env = "CDR_EXPORTER_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [config: listen, default 0.0.0.0:19477].
    #[arg(long, value_name = "ADDR", env = "CDR_EXPORTER_LISTEN")]
    listen: Option<String>,
    /// Directory for the exporter's state [config: data_dir, default ./data].
    #[arg(long, value_name = "DIR", env = "CDR_EXPORTER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Log level or tracing filter [config: log_level, default info].
    #[arg(long, value_name = "LEVEL", env = "CDR_EXPORTER_LOG_LEVEL")]
    log_level: Option<String>,
    /// Exporter-toolkit web config file (TLS, basic auth) for the metrics listener
    /// [config: server.web_config_file; needs server.metrics_listen].
    #[arg(
        long = "web.config.file",
        value_name = "FILE",
        env = "CDR_EXPORTER_WEB_CONFIG_FILE"
    )]
    web_config_file: Option<PathBuf>,
    /// Print the effective configuration as TOML (secrets masked) and exit.
    #[arg(long)]
    print_config: bool,
}

impl ExporterArgs {
    /// The flags that set configuration keys.
    fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            log_level: self.log_level.clone(),
            server: self
                .web_config_file
                .as_ref()
                .map(|f| cdr_exporter::config::ServerOverrides {
                    web_config_file: f.display().to_string(),
                }),
        }
    }
}

impl ExporterArgs {
    /// Flags given after the subcommand win over those given before it.
    fn or(self, before: ExporterArgs) -> ExporterArgs {
        ExporterArgs {
            config: self.config.or(before.config),
            listen: self.listen.or(before.listen),
            data_dir: self.data_dir.or(before.data_dir),
            log_level: self.log_level.or(before.log_level),
            web_config_file: self.web_config_file.or(before.web_config_file),
            print_config: self.print_config || before.print_config,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate a cluster of Cisco Meeting Server Call Bridges posting CDRs to a receiver.
    Simulate(Box<SimulateArgs>),
    /// Run the exporter fed by simulated Call Bridges: live metrics within seconds.
    ///
    /// Realistic calls (1:1 calls of a few minutes, meetings of 15–60 min with participants
    /// joining and leaving) played --speedup times faster, and a scripted incident: after
    /// --incident-after one tenant's legs get bad packet loss for --incident-for, then it
    /// recovers (the low-MOS alert fires and clears).
    Demo {
        #[command(flatten)]
        exporter: ExporterArgs,
        #[command(flatten)]
        demo: DemoArgs,
    },
    /// Post the CDRs FreeSWITCH could not deliver (its err-log-dir files) to the exporter.
    ///
    /// Each file is checked, posted as FreeSWITCH would have posted it, and moved to
    /// DIR/imported/ after a 2xx. The exporter counts a leg once however often it arrives.
    ImportFreeswitch(ImportArgs),
    /// Print the Prometheus alert and recording rules, with thresholds and `for` durations
    /// overridden (see alerts/README.md for every parameter).
    Rules {
        /// An override, e.g. `--set low_mos_share=0.2 --set low_mos_for=10m`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// List the parameters with their defaults instead.
        #[arg(long)]
        list: bool,
    },
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// New calls per second of simulated time, over the three Call Bridges (the exporter
    /// gets R × speedup a second).
    #[arg(long = "calls-per-second", value_name = "R", default_value_t = 0.1)]
    demo_calls_per_second: f64,
    /// Tenants.
    #[arg(long = "tenants", value_name = "M", default_value_t = 4)]
    demo_tenants: usize,
    /// Share of connected legs with heavy packet loss outside the incident.
    #[arg(long, value_name = "P", default_value_t = 0.03)]
    bad_share: f64,
    /// Simulated time runs N× faster than the wall clock (1 = real time).
    #[arg(long = "speedup", value_name = "N", default_value_t = 30.0)]
    demo_speedup: f64,
    /// When the incident starts (wall clock from the start).
    #[arg(long, value_name = "D", default_value = "2m", value_parser = humantime::parse_duration)]
    incident_after: Duration,
    /// How long it lasts (wall clock). With the shipped rules (15 min window, 10 min `for`)
    /// the low-MOS alert fires about 10 min after the incident starts.
    #[arg(long, value_name = "D", default_value = "12m", value_parser = humantime::parse_duration)]
    incident_for: Duration,
    /// The tenant it hits (0 = the busiest).
    #[arg(long, value_name = "K", default_value_t = 0)]
    incident_tenant: usize,
    /// Share of that tenant's legs with heavy packet loss during the incident.
    #[arg(long, value_name = "P", default_value_t = 0.8)]
    incident_bad_share: f64,
    /// No scripted incident.
    #[arg(long)]
    no_incident: bool,
}

impl DemoArgs {
    fn options(&self) -> cdr_exporter::DemoOptions {
        cdr_exporter::DemoOptions {
            calls_per_second: self.demo_calls_per_second,
            tenants: self.demo_tenants,
            bad_share: self.bad_share,
            speedup: self.demo_speedup,
            incident: (!self.no_incident).then_some(cdr_exporter::sim::Incident {
                tenant: self.incident_tenant,
                after: self.incident_after,
                lasts: self.incident_for,
                bad_share: self.incident_bad_share,
            }),
        }
    }
}

#[derive(Args, Debug)]
struct ImportArgs {
    /// mod_xml_cdr's or mod_json_cdr's err-log-dir.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The exporter's FreeSWITCH URL [default: from the exporter's configuration, e.g.
    /// http://127.0.0.1:19477/freeswitch/cdr].
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// The token to send [default: the configuration's auth.token or auth.token_file].
    #[arg(
        long,
        value_name = "TOKEN",
        env = "CDR_EXPORTER_IMPORT_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Basic credentials to send, user:password [default: the configuration's auth.basic_*].
    #[arg(
        long,
        value_name = "USER:PASSWORD",
        env = "CDR_EXPORTER_IMPORT_USER",
        hide_env_values = true
    )]
    user: Option<String>,
    /// Leave imported files in DIR instead of moving them to DIR/imported/.
    #[arg(long)]
    keep: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct SimulateArgs {
    /// Receiver URL the Call Bridges post to, e.g. http://127.0.0.1:19477/cdr. Give it up to
    /// 4 times for several receivers (as CMS does): each gets every record on its own queue,
    /// connection and retries; a full queue (a receiver down too long) drops for it alone.
    #[arg(long, value_name = "URL", required = true)]
    target: Vec<String>,
    /// Call Bridges in the cluster.
    #[arg(long, value_name = "N", default_value_t = 3)]
    call_bridges: usize,
    /// How many of them are unclustered (no callBridge attribute; they add
    /// ?call_bridge=sim-cb-<i> to the target URL).
    #[arg(long, value_name = "U", default_value_t = 0)]
    unclustered: usize,
    /// Tenants (0: calls carry no tenant).
    #[arg(long, value_name = "M", default_value_t = 2)]
    tenants: usize,
    /// New calls per second over the whole cluster (Poisson arrivals; simulated time).
    #[arg(long, value_name = "R", default_value_t = 10.0)]
    calls_per_second: f64,
    /// How long calls keep starting (then calls in flight finish), e.g. 10s, 2m (simulated
    /// time).
    #[arg(long, value_name = "D", default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Seed of everything the records say [default: random, printed in the summary].
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Records per POST: each batch holds 1..K records.
    #[arg(long, value_name = "K", default_value_t = 10)]
    batch_max: usize,
    /// Probability that a record is discarded before sending (announced by
    /// numPreceedingRecordsMissing on the next one).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    drop_rate: f64,
    /// Restart each Call Bridge this often (new session, its calls abandoned), e.g. 30s.
    #[arg(long, value_name = "D", value_parser = humantime::parse_duration)]
    restart_every: Option<Duration>,
    /// Probability that an acknowledged batch is sent again.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    duplicate_rate: f64,
    /// Share of connected legs with heavy packet loss.
    #[arg(long, value_name = "P", default_value_t = 0.05)]
    bad_tail: f64,
    /// Time to wait for the answer to a POST before retrying it.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// How long calls last: short (0.5–4 s, for tests) or realistic (minutes; use --speedup).
    #[arg(long, value_name = "MODEL", value_enum, default_value_t = cdr_exporter::sim::Durations::Short)]
    durations: cdr_exporter::sim::Durations,
    /// Simulated time runs N× faster than the wall clock: --duration, --restart-every,
    /// arrivals and call lengths are simulated time; the records report simulated durations.
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    speedup: f64,
    /// Write the totals the exporter should show (JSON) to FILE; with several --target, a
    /// JSON array of {"target", "expected"} in the order given.
    #[arg(long, value_name = "FILE")]
    expect_json: Option<PathBuf>,
    /// FreeSWITCH switches beside the Call Bridges (one CDR POST per leg, as mod_xml_cdr
    /// and mod_json_cdr), each at one bridge's call rate.
    #[arg(long, value_name = "N", default_value_t = 0)]
    freeswitch_switches: usize,
    /// Kamailio nodes with rtpengine (one MOS report POST per call).
    #[arg(long, value_name = "N", default_value_t = 0)]
    kamailio_nodes: usize,
    /// Where the switches post [default: the target's host and port, /freeswitch/cdr].
    #[arg(long, value_name = "URL")]
    freeswitch_target: Option<String>,
    /// Where the nodes post [default: the target's host and port, /kamailio/mos].
    #[arg(long, value_name = "URL")]
    kamailio_target: Option<String>,
    /// mod_xml_cdr `retries`: attempts after the first before a CDR is given up.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RETRY.retries)]
    freeswitch_retries: u32,
    /// mod_xml_cdr `delay` between attempts [default: 500ms].
    #[arg(long, value_name = "D", value_parser = humantime::parse_duration)]
    freeswitch_retry_delay: Option<Duration>,
    /// Attempts after the first before a Kamailio report is given up.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RETRY.retries)]
    kamailio_retries: u32,
    /// Delay between a Kamailio report's attempts [default: 500ms].
    #[arg(long, value_name = "D", value_parser = humantime::parse_duration)]
    kamailio_retry_delay: Option<Duration>,
    /// mod_xml_cdr `err-log-dir`: CDRs given up on are written here as `[a_]<uuid>.cdr.xml`
    /// (or `.cdr.json`), for `import-freeswitch`.
    #[arg(long, value_name = "DIR")]
    freeswitch_err_log_dir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Log level or tracing filter for the simulator's own messages.
    #[arg(long, value_name = "LEVEL", default_value = "warn")]
    log_level: String,
}

/// `cdr-exporter rules`: the shipped rules rendered with overrides, on stdout.
fn rules(set: &[String], list: bool) -> anyhow::Result<()> {
    use cdr_exporter::rules;
    if list {
        for p in rules::parameters() {
            println!("{} = {}    # {}", p.name, p.default, p.description);
        }
        return Ok(());
    }
    let overrides = set
        .iter()
        .map(|s| rules::parse_override(s))
        .collect::<Result<Vec<_>, _>>()?;
    print!("{}", rules::render(&overrides)?);
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run_cli() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cdr-exporter: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once (a cause whose text its parent
/// already contains is not repeated).
fn one_line(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out = format!("{out}: {c}");
        }
    }
    out
}

fn run_cli() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => exporter(cli.exporter, None),
        Some(Command::Demo { exporter: e, demo }) => {
            exporter(e.or(cli.exporter), Some(demo.options()))
        }
        Some(Command::Rules { set, list }) => rules(&set, list),
        Some(Command::ImportFreeswitch(args)) => import(args, cli.exporter),
        Some(Command::Simulate(args)) => {
            let e = &cli.exporter;
            if e.config.is_some()
                || e.listen.is_some()
                || e.data_dir.is_some()
                || e.log_level.is_some()
                || e.print_config
            {
                anyhow::bail!(
                    "--config, --listen, --data-dir, --log-level and --print-config are the \
                     exporter's flags; simulate takes its own (see `cdr-exporter simulate --help`)"
                );
            }
            simulate(*args)
        }
    }
}

/// The exporter (default mode), or the exporter with the demo simulator feeding it.
fn exporter(args: ExporterArgs, demo: Option<cdr_exporter::DemoOptions>) -> anyhow::Result<()> {
    let overrides = args.overrides();
    let cfg = Config::load(args.config.as_deref(), &overrides)?;
    let source = cdr_exporter::ConfigSource {
        file: args.config.clone(),
        overrides: overrides.clone(),
    };
    if args.print_config {
        print!("{}", cfg.to_masked_toml());
        return Ok(());
    }
    init_logging(&cfg);
    for var in cdr_exporter::config::unknown_env_vars() {
        // Kubernetes injects CDR_EXPORTER_PORT and friends for a Service of that name.
        tracing::warn!(variable = %var, "environment variable with the CDR_EXPORTER_ prefix is not a configuration key; ignored");
    }
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.listen_addr())
            .await
            .with_context(|| format!("binding {}", cfg.listen))?;
        if let Some(demo_opts) = demo {
            cdr_exporter::demo(cfg, demo_opts, listener, shutdown_signal()).await?;
        } else {
            cdr_exporter::run_with(cfg, Some(source), listener, shutdown_signal()).await?;
        }
        Ok(())
    })
}

fn simulate(a: SimulateArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&a.log_level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut targets = a.target.into_iter();
    let cfg = SimConfig {
        target: targets.next().unwrap_or_default(),
        extra_targets: targets.collect(),
        call_bridges: a.call_bridges,
        unclustered: a.unclustered,
        tenants: a.tenants,
        calls_per_second: a.calls_per_second,
        duration: Some(a.duration),
        seed: a.seed.unwrap_or_else(rand::random),
        batch_max: a.batch_max,
        drop_rate: a.drop_rate,
        restart_every: a.restart_every,
        duplicate_rate: a.duplicate_rate,
        bad_tail: a.bad_tail,
        request_timeout: a.timeout,
        progress: !a.quiet,
        freeswitch_switches: a.freeswitch_switches,
        kamailio_nodes: a.kamailio_nodes,
        freeswitch_target: a.freeswitch_target,
        kamailio_target: a.kamailio_target,
        freeswitch_retry: cdr_exporter::sim::Retry {
            retries: a.freeswitch_retries,
            delay: a.freeswitch_retry_delay.unwrap_or(DEFAULT_RETRY.delay),
        },
        kamailio_retry: cdr_exporter::sim::Retry {
            retries: a.kamailio_retries,
            delay: a.kamailio_retry_delay.unwrap_or(DEFAULT_RETRY.delay),
        },
        freeswitch_err_log_dir: a.freeswitch_err_log_dir,
        durations: a.durations,
        speedup: a.speedup,
        ..SimConfig::default()
    };
    cfg.validate()?;
    let summary = runtime()?.block_on(cdr_exporter::sim::run(cfg, shutdown_signal()))?;
    println!("{summary}");
    if let Some(path) = a.expect_json {
        let json = if summary.targets.len() > 1 {
            let per: Vec<_> = summary
                .targets
                .iter()
                .map(|t| serde_json::json!({"target": t.target, "expected": t.expected}))
                .collect();
            serde_json::to_string_pretty(&per)?
        } else {
            serde_json::to_string_pretty(&summary.expected)?
        };
        std::fs::write(&path, json + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    // Scripts (benchmarks, CI) must notice a receiver that did not take everything.
    if summary.records_unsent > 0 || summary.rejected_records > 0 {
        anyhow::bail!(
            "{} record(s) never acknowledged, {} rejected",
            summary.records_unsent,
            summary.rejected_records
        );
    }
    let (fs, kam) = (&summary.freeswitch, &summary.kamailio);
    if fs.given_up + fs.unsent + kam.given_up + kam.unsent > 0 {
        anyhow::bail!(
            "{} FreeSWITCH CDR(s) given up, {} unsent; {} Kamailio report(s) given up, {} unsent",
            fs.given_up,
            fs.unsent,
            kam.given_up,
            kam.unsent
        );
    }
    Ok(())
}

/// `import-freeswitch`: target and credentials from the flags, else from the configuration.
fn import(a: ImportArgs, e: ExporterArgs) -> anyhow::Result<()> {
    let overrides = e.overrides();
    let cfg = Config::load(e.config.as_deref(), &overrides)?;
    let target = a.target.unwrap_or_else(|| {
        let mut addr = cfg.listen_addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}{}", cfg.freeswitch_path)
    });
    let token = match a.token {
        Some(t) => Some(t),
        None => cfg.token()?,
    };
    let basic = match a.user {
        Some(u) => Some(u),
        None => cfg.basic_credentials()?.map(|(u, p)| format!("{u}:{p}")),
    };
    let icfg = cdr_exporter::import::ImportConfig {
        dir: a.dir,
        target,
        token,
        basic,
        keep: a.keep,
        progress: !a.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let s = runtime()?.block_on(cdr_exporter::import::import_freeswitch(&icfg))?;
    println!(
        "{} posted, {} not FreeSWITCH CDRs, {} not delivered",
        s.posted,
        s.unreadable.len(),
        s.failed.len()
    );
    // Bounded: a directory of garbage must not print a screen per file.
    for (what, list) in [("not a CDR", &s.unreadable), ("not delivered", &s.failed)] {
        for (path, why) in list.iter().take(20) {
            println!("  {what}: {}: {why}", path.display());
        }
        if list.len() > 20 {
            println!("  ... and {} more {what}", list.len() - 20);
        }
    }
    if !s.failed.is_empty() || !s.unreadable.is_empty() {
        anyhow::bail!("some files were not imported (they are left in place)");
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(&cfg.log_level);
    // Colour only on a terminal: log files and journald get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        _ = term => tracing::info!("SIGTERM received, shutting down"),
    }
}
