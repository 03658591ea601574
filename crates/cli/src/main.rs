//! `ttc`: benchmark test-time-compute inference policies. Thin glue over the library crates.

mod cmd_bench;
mod cmd_generate;
mod cmd_model;
mod exit;
mod model_path;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "ttc", version, about = "Benchmark test-time-compute inference policies: latency, throughput and quality per request", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch or locate the model files.
    #[command(subcommand)]
    Model(cmd_model::ModelCommand),
    /// Print the token ids of TEXT as a JSON array.
    Tokenize(cmd_generate::TokenizeArgs),
    /// Generate text with the embedded engine, streaming it to stdout.
    Generate(cmd_generate::GenerateArgs),
    /// Micro-benchmarks.
    #[command(subcommand)]
    Bench(cmd_bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Model(c) => cmd_model::run(c),
        Command::Tokenize(a) => cmd_generate::tokenize(a),
        Command::Generate(a) => cmd_generate::generate(a),
        Command::Bench(c) => cmd_bench::run(c),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::code_for(&e))
        }
    }
}
