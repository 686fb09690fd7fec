//! `weir store verify|recover`: offline checks and repair of a stopped broker's data dir.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use weir_broker::maintenance::{self as repair, PartitionCheck, StoreCheck};

/// `weir store` subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Check every batch of every partition (CRC, no gaps, nothing lost since the last
    /// checkpoint); list damaged ranges. Exits non-zero when anything is damaged.
    #[command(after_help = "Examples:\n  weir store verify\n  weir store verify /var/lib/weir")]
    Verify {
        /// The data dir of a stopped broker.
        #[arg(default_value = "weir-data")]
        data_dir: PathBuf,
    },
    /// Truncate every damaged partition back to its last good batch and report exactly
    /// what was dropped; undamaged partitions are left alone. If sled cannot open its
    /// files, its snapshot and then its settings file are moved aside first (sled rebuilds
    /// both). Take a copy of the data dir before running it.
    #[command(after_help = "Examples:\n  weir store recover\n  weir store recover /var/lib/weir")]
    Recover {
        /// The data dir of a stopped broker.
        #[arg(default_value = "weir-data")]
        data_dir: PathBuf,
    },
}

/// Runs a `weir store` subcommand.
pub fn run(command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::Verify { data_dir } => {
            let found = repair::verify(&data_dir).with_context(|| cannot_read(&data_dir))?;
            print_check(&found);
            if !found.is_clean() {
                bail!(
                    "the store in {} is damaged; `weir store recover {}` truncates the damaged \
                     partitions to their last good batch",
                    data_dir.display(),
                    data_dir.display()
                );
            }
            println!("the store in {} is intact", data_dir.display());
            Ok(())
        }
        StoreCommand::Recover { data_dir } => {
            let (found, dropped) =
                repair::recover(&data_dir).with_context(|| cannot_read(&data_dir))?;
            for a in &found.set_aside {
                println!("{a}");
            }
            for p in &found.problems {
                println!("found: {p}");
            }
            for d in &dropped {
                println!(
                    "{}/{}: truncated to offset {}; dropped offsets [{}, {}) ({} chunks, {} bytes): {}",
                    d.topic,
                    d.partition,
                    d.truncated_to,
                    d.truncated_to,
                    d.dropped_to,
                    d.chunks,
                    d.bytes,
                    d.reason
                );
            }
            if dropped.is_empty() && found.problems.is_empty() && found.set_aside.is_empty() {
                println!(
                    "the store in {} is intact; nothing dropped",
                    data_dir.display()
                );
            } else {
                println!(
                    "recovered {}: {} partitions truncated; `weir serve` can start",
                    data_dir.display(),
                    dropped.len()
                );
            }
            Ok(())
        }
    }
}

fn cannot_read(dir: &Path) -> String {
    format!(
        "the storage engine cannot open {} (stop the broker first; if it is stopped, the \
         engine's own files are damaged: restore the data dir from a backup)",
        dir.display()
    )
}

fn print_check(found: &StoreCheck) {
    println!(
        "{:<24} {:>9} {:>10} {:>12} {:>12} {:>12}  STATUS",
        "TOPIC/PARTITION", "CHUNKS", "RECORDS", "LOG_START", "GOOD_END", "ACKED"
    );
    for p in &found.partitions {
        println!(
            "{:<24} {:>9} {:>10} {:>12} {:>12} {:>12}  {}",
            format!("{}/{}", p.topic, p.partition),
            p.chunks,
            p.records,
            p.log_start,
            p.good_end,
            p.acknowledged.map_or("-".to_string(), |a| a.to_string()),
            status(p)
        );
    }
    for p in &found.problems {
        println!("damaged: {p}");
    }
}

fn status(p: &PartitionCheck) -> String {
    match &p.damage {
        None => "ok".into(),
        Some(d) => format!(
            "DAMAGED from offset {} (stored up to {}): {d}",
            p.good_end,
            p.stored_end.max(p.acknowledged.unwrap_or(0))
        ),
    }
}
