//! `hashgate demo`: runs the demo (see `crate::demo`) and prints its report; exit code 1 when
//! it did not show what it should.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::demo::{self, DemoOptions};

/// Arguments of `hashgate demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder with benign.flv, flagged.flv and flagged.pdq.
    #[arg(long, default_value = "samples")]
    pub samples: PathBuf,
    /// Keep the platform's recordings and the event logs in this folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `demo`.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let report = demo::run(&DemoOptions {
        samples: args.samples.clone(),
        out: args.out.clone(),
    })?;
    print!("{}", report.render());
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
