//! `hashgate bank add` builds a media bank from clips; `hashgate bank check` shows how each
//! sampled frame of a video stands against one (for tuning and benchmarks).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::bank::build::{add_media, sampled};
use crate::bank::file::{load, save};
use crate::bank::{CheckSettings, FrameFeatures, IndexedBank, MediaBank};

/// `hashgate bank …`.
#[derive(Debug, Subcommand)]
pub enum BankCommand {
    /// Create an empty bank file (for a gate whose clips will come through the admin API).
    New {
        /// The bank file; an existing one is not overwritten.
        #[arg(long)]
        bank: PathBuf,
    },
    /// Add clips to a bank file (created when missing): each file's sampled frames.
    Add(AddArgs),
    /// Check a video's sampled frames against a bank: one line per frame, the best reference
    /// frame and how many feature pairs one mapping explains.
    Check(CheckArgs),
}

/// Arguments of `hashgate bank add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The bank file.
    #[arg(long)]
    pub bank: PathBuf,
    /// Samples per second taken from each clip.
    #[arg(long, default_value_t = 2.0)]
    pub fps: f64,
    /// Do not also add each clip mirrored left to right (local features do not see through
    /// a mirror; the mirrored frames double the bank, not the cost of a check).
    #[arg(long)]
    pub no_mirror: bool,
    /// The name matches of these clips carry.
    pub name: String,
    /// Video files (or images) of the clip.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Arguments of `hashgate bank check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The bank file.
    #[arg(long)]
    pub bank: PathBuf,
    /// Samples per second.
    #[arg(long, default_value_t = 2.0)]
    pub fps: f64,
    /// The video.
    pub file: PathBuf,
}

/// Runs a `bank` subcommand.
pub fn run(command: &BankCommand) -> anyhow::Result<()> {
    match command {
        BankCommand::New { bank } => {
            if bank.exists() {
                anyhow::bail!("{}: exists; not overwritten", bank.display());
            }
            save(&MediaBank::default(), bank).with_context(|| format!("writing {}", bank.display()))
        }
        BankCommand::Add(args) => add(args),
        BankCommand::Check(args) => check(args),
    }
}

fn add(args: &AddArgs) -> anyhow::Result<()> {
    let mut bank = if args.bank.exists() {
        load(&args.bank)?
    } else {
        MediaBank::default()
    };
    for file in &args.files {
        let source = file.display().to_string();
        let count = add_media(
            &mut bank,
            &args.name,
            file,
            &source,
            args.fps,
            !args.no_mirror,
        )?;
        eprintln!("hashgate: {source}: {count} frames");
    }
    save(&bank, &args.bank).with_context(|| format!("writing {}", args.bank.display()))?;
    eprintln!(
        "hashgate: {}: {} clips, {} frames, {} features",
        args.bank.display(),
        bank.clips.len(),
        bank.frames.len(),
        bank.feature_count()
    );
    Ok(())
}

fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let bank = IndexedBank::new(load(&args.bank)?);
    let settings = CheckSettings::default();
    for (at_ms, luma) in sampled(&args.file, args.fps)? {
        let started = std::time::Instant::now();
        let features = FrameFeatures::of(&luma, settings.features);
        let hit = bank.best(&features, &settings);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match hit {
            Some(h) => println!(
                "{:.3}\t{}\t{:.3}\t{}\t{}\t{ms:.1}",
                f64::from(at_ms) / 1000.0,
                bank.bank.clips[h.clip as usize].name,
                f64::from(h.at_ms) / 1000.0,
                h.inliers,
                h.pairs
            ),
            None => println!("{:.3}\t-\t-\t0\t0\t{ms:.1}", f64::from(at_ms) / 1000.0),
        }
    }
    Ok(())
}
