//! `tomtat models`: list the built-in model manifests, show one, download models.

use clap::{Args, Subcommand};

use crate::cli::{exit, Global};
use crate::hub::{self, HubOptions, Manifest, ModelRef};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
tomtat models list\n  \
tomtat models info flan-t5-base\n  \
tomtat models download opus-mt-vi-en distilbart-cnn-12-6\n  \
tomtat models download Helsinki-NLP/opus-mt-en-vi@main\n  \
HF_HUB_OFFLINE=1 tomtat models download ./my-manifest.toml\n\n\
Models are cached like the Python huggingface_hub does (HF_HUB_CACHE, HF_HOME, \
~/.cache/huggingface/hub). Environment: HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE.")]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Table of the built-in models: name, repo, architecture, task.
    List,
    /// A model's manifest and, if cached, its local files (never uses the network).
    Info {
        /// Built-in name, manifest .toml, Hub repo id (owner/name[@revision]) or directory.
        name: String,
        /// Revision to look up in the cache (default: the manifest's, else main).
        #[arg(long, value_name = "R")]
        revision: Option<String>,
    },
    /// Download models into the cache (files already there are not fetched again).
    Download {
        /// Built-in names, manifest .toml files, Hub repo ids (owner/name[@revision]).
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Use only the local cache; fail naming any missing file.
        #[arg(long)]
        offline: bool,
        /// Branch, tag, commit sha or refs/pr/N (overrides manifests and @revision).
        #[arg(long, value_name = "R")]
        revision: Option<String>,
    },
}

pub fn run(args: ModelsArgs, g: Global) -> u8 {
    match args.command {
        ModelsCommand::List => list(),
        ModelsCommand::Info { name, revision } => info(&name, revision, g),
        ModelsCommand::Download {
            names,
            offline,
            revision,
        } => download(&names, offline, revision, g),
    }
}

fn list() -> u8 {
    let rows: Vec<[String; 4]> = hub::builtin_manifests()
        .into_iter()
        .map(|m| {
            [
                m.name.clone(),
                m.repo.clone(),
                m.architecture.clone(),
                m.task.to_string(),
            ]
        })
        .collect();
    let header = ["NAME", "REPO", "ARCH", "TASK"].map(str::to_string);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    exit::OK
}

fn info(name: &str, revision: Option<String>, g: Global) -> u8 {
    let (manifest, mref) = match hub::interpret(name) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FATAL;
        }
    };
    match &manifest {
        Some(m) => print_manifest(m),
        None => println!("# {name}: no manifest (generation defaults come from the model)"),
    }
    let mut opts = HubOptions::from_env();
    opts.offline = true;
    opts.progress = false;
    opts.revision = revision;
    match &mref {
        ModelRef::Local(dir) => println!("\n# local directory {}", dir.display()),
        ModelRef::Hub { repo, revision } => {
            let rev = opts
                .revision
                .clone()
                .or_else(|| revision.clone())
                .unwrap_or_else(|| hub::DEFAULT_REVISION.to_string());
            match hub::cached_snapshot(&opts.cache_dir, repo, &rev) {
                Some((commit, _)) => println!("\n# cached: {repo}@{rev} (commit {commit})"),
                None => {
                    println!(
                        "\n# not cached: {repo}@{rev} is not in {}",
                        opts.cache_dir.display()
                    );
                    return exit::OK;
                }
            }
        }
    }
    match hub::resolve_with_report(name, &opts) {
        Ok(r) => {
            print_files(&r.files);
            exit::OK
        }
        Err(e) => {
            // Cached but incomplete (or broken): say what is missing, as a warning.
            if !g.quiet {
                eprintln!("warning: {e}");
            }
            exit::OK
        }
    }
}

fn print_manifest(m: &Manifest) {
    println!("# {} ({})", m.name, m.origin);
    print!("{}", m.to_toml());
    if !m.prefix.is_empty() {
        println!("# task prefix: {:?}", m.prefix);
    }
}

fn print_files(files: &[hub::FetchedFile]) {
    for f in files {
        println!("{:>10}  {}", human_size(f.size), f.path.display());
    }
}

fn download(names: &[String], offline: bool, revision: Option<String>, g: Global) -> u8 {
    let mut opts = HubOptions::from_env();
    opts.offline |= offline;
    opts.revision = revision;
    opts.progress &= !g.quiet;
    let mut failed = 0usize;
    let (mut total_files, mut total_bytes, mut fetched_bytes) = (0usize, 0u64, 0u64);
    for name in names {
        match hub::resolve_with_report(name, &opts) {
            Ok(r) => {
                let what = match (&r.dir.repo, &r.dir.commit) {
                    (Some(repo), Some(c)) => format!(
                        "{repo}@{} (commit {c})",
                        r.dir.revision.as_deref().unwrap_or(hub::DEFAULT_REVISION)
                    ),
                    _ => "local directory".to_string(),
                };
                println!("{name}: {what}\n  -> {}", r.dir.root.display());
                for f in &r.files {
                    let how = if f.cached { "cached" } else { "downloaded" };
                    println!(
                        "  {:>10}  {how:<10}  {}",
                        human_size(f.size),
                        f.path.display()
                    );
                    total_files += 1;
                    total_bytes += f.size;
                    if !f.cached {
                        fetched_bytes += f.size;
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {name}: {e}");
                failed += 1;
            }
        }
    }
    if failed < names.len() {
        println!(
            "total: {total_files} files, {} ({total_bytes} bytes), {} downloaded",
            human_size(total_bytes),
            human_size(fetched_bytes)
        );
    }
    match failed {
        0 => exit::OK,
        n if n == names.len() => exit::FATAL,
        _ => exit::SOME_FAILED,
    }
}

/// `1.5 MB` style sizes (powers of 1000, as the Hub shows them).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1_500), "1.5 kB");
        assert_eq!(human_size(289_000_000), "289.0 MB");
    }
}
