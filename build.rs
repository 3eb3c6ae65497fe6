//! Build metadata for `cdr_exporter_build_info` and `--version`: the git commit (or
//! `CDR_BUILD_REVISION` from a packaging script, else `unknown`) and the compiler version.
//! Not under the `CDR_EXPORTER_` prefix: cargo passes these to `cargo run` and `cargo test`
//! processes, and the exporter warns about every such variable that is not a key.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    let revision = std::env::var("CDR_BUILD_REVISION")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CDR_BUILD_REVISION={revision}");
    println!("cargo:rustc-env=CDR_BUILD_RUSTC={rustc_version}");
    println!("cargo:rerun-if-env-changed=CDR_BUILD_REVISION");
    // A new commit changes HEAD or the branch it points to.
    println!("cargo:rerun-if-changed=.git/HEAD");
    if let Some(r) = output("git", &["symbolic-ref", "-q", "HEAD"]) {
        println!("cargo:rerun-if-changed=.git/{r}");
    }
}
