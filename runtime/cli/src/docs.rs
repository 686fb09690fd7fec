//! `weir completions <shell>` and `weir man`: generated from the CLI definition, so
//! they cannot drift from it.

use std::path::PathBuf;

use clap::CommandFactory;

use super::Cli;

/// `weir man` options.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Directory the pages are written to (one per command: weir.1, weir-topic.1, ...).
    #[arg(long, default_value = "target/man")]
    out: PathBuf,
}

/// Prints the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "weir", &mut script);
    // A closed pipe (`| head`) is not an error worth a panic.
    match std::io::Write::write_all(&mut std::io::stdout(), &script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Writes a man page for `weir` and every subcommand.
pub fn man(args: ManArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    clap_mangen::generate_to(Cli::command(), &args.out)?;
    let mut pages: Vec<String> = std::fs::read_dir(&args.out)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".1"))
        .collect();
    pages.sort();
    println!(
        "{} man pages in {}: {}",
        pages.len(),
        args.out.display(),
        pages.join(" ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command and subcommand ends its `--help` with examples that use it.
    #[test]
    fn every_command_has_examples() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name());
                let examples = sub
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                if !examples.contains(&format!("Examples:\n  {path}")) {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "weir", &mut missing);
        assert!(missing.is_empty(), "commands without examples: {missing:?}");
    }
}
