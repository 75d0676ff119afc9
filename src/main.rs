//! The `hashgate` command: parses the command line and hands over to [`hashgate::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    hashgate::cli::main(hashgate::cli::Cli::parse())
}
