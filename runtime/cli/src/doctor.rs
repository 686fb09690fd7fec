//! `weir doctor`: checks what a broker and plugin builds need on this machine and
//! says what to fix. Exits non-zero when something would stop `weir serve`.

use std::path::{Path, PathBuf};

use weir_server::Config;

/// `weir doctor` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  weir doctor\n  weir doctor --data-dir /var/lib/weir --plugin-dir /etc/weir/plugins\n  weir doctor --config weir.toml"
)]
pub struct DoctorArgs {
    /// Data directory [default: ./weir-data, or the config's].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Plugin directory [default: ./weir-plugins, or the config's].
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// TOML config file to check and take the directories from.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Free space below which the data directory is reported as a problem.
const LOW_SPACE: u64 = 1 << 30;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Warn,
    Fail,
}

struct Report {
    failures: usize,
}

impl Report {
    fn line(&mut self, verdict: Verdict, what: &str, detail: &str, fix: Option<&str>) {
        let mark = match verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => {
                self.failures += 1;
                "FAIL"
            }
        };
        println!("[{mark}] {what}: {detail}");
        if let Some(fix) = fix {
            println!("       fix: {fix}");
        }
    }
}

pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let mut report = Report { failures: 0 };
    let mut config = Config::default();
    if let Some(path) = &args.config {
        match Config::load(path) {
            Ok(c) => {
                report.line(Verdict::Ok, "config", &path.display().to_string(), None);
                config = c;
            }
            Err(e) => report.line(
                Verdict::Fail,
                "config",
                &format!("{e:#}"),
                Some("correct the file; `examples/weir.toml` lists every key with its default"),
            ),
        }
    }
    let data_dir = args.data_dir.unwrap_or(config.data_dir.clone());
    let plugin_dir = args.plugin_dir.unwrap_or(config.plugin_dir.clone());
    check_data_dir(&mut report, &data_dir);
    check_plugin_dir(&mut report, &plugin_dir);
    match weir_toolchain::check() {
        Ok(()) => report.line(
            Verdict::Ok,
            "plugin toolchain",
            "Debian's Rust with std sources for wasm32 (for `weir plugin build`)",
            None,
        ),
        Err(e) => report.line(
            Verdict::Warn,
            "plugin toolchain",
            &e.to_string(),
            Some("run `sdk/install-toolchain.sh` (only needed to build plugins, not to run them)"),
        ),
    }
    if report.failures > 0 {
        anyhow::bail!("{} problem(s) found", report.failures);
    }
    println!("everything `weir serve` needs is in place");
    Ok(())
}

fn check_data_dir(report: &mut Report, dir: &Path) {
    let what = "data directory";
    // The directory, or the nearest parent that exists (where it would be created).
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("."));
    if dir.exists() && !dir.is_dir() {
        report.line(
            Verdict::Fail,
            what,
            &format!("{} is not a directory", dir.display()),
            Some("point --data-dir at a directory"),
        );
        return;
    }
    let probe = existing.join(".weir-doctor-probe");
    match std::fs::write(&probe, b"probe") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            let state = if dir.exists() {
                "exists, writable"
            } else {
                "will be created"
            };
            report.line(
                Verdict::Ok,
                what,
                &format!("{} ({state})", dir.display()),
                None,
            );
        }
        Err(e) => report.line(
            Verdict::Fail,
            what,
            &format!("cannot write in {}: {e}", existing.display()),
            Some("run as a user who owns the directory, or choose another with --data-dir"),
        ),
    }
    match fs2::available_space(existing) {
        Ok(free) if free < LOW_SPACE => report.line(
            Verdict::Warn,
            "disk space",
            &format!("{} MiB free under {}", free >> 20, existing.display()),
            Some("free space or move the data directory: publishes fail when the disk fills"),
        ),
        Ok(free) => report.line(
            Verdict::Ok,
            "disk space",
            &format!("{:.1} GiB free", free as f64 / (1u64 << 30) as f64),
            None,
        ),
        Err(e) => report.line(Verdict::Warn, "disk space", &e.to_string(), None),
    }
}

fn check_plugin_dir(report: &mut Report, dir: &Path) {
    let what = "plugin directory";
    if !dir.exists() {
        report.line(
            Verdict::Ok,
            what,
            &format!("{} (will be created, empty)", dir.display()),
            None,
        );
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            report.line(
                Verdict::Fail,
                what,
                &format!("{}: {e}", dir.display()),
                Some("make it readable by the broker's user"),
            );
            return;
        }
    };
    let mut plugins = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !path.is_dir() || hidden {
            continue;
        }
        plugins += 1;
        match weir_broker::plugins::PluginFiles::read(&path) {
            Ok(files) => report.line(
                Verdict::Ok,
                "plugin",
                &format!(
                    "{} ({}, {} KiB)",
                    files.manifest.name,
                    files.manifest.kind.as_str(),
                    files.component.len() >> 10
                ),
                None,
            ),
            Err(e) => report.line(
                Verdict::Warn,
                "plugin",
                &e.to_string(),
                Some("fix or remove the folder; the broker serves without it and says why in GET /v1/plugins"),
            ),
        }
    }
    report.line(
        Verdict::Ok,
        what,
        &format!("{} ({plugins} plugin folder(s))", dir.display()),
        None,
    );
}
