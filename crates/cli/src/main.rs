//! `ttc`: benchmark test-time-compute inference policies. Thin glue over the library crates.

mod cmd_bench;
mod cmd_bench_kv;
mod cmd_calibrate;
mod cmd_capacity;
mod cmd_check;
mod cmd_compact;
mod cmd_compare;
mod cmd_dashboard;
mod cmd_generate;
mod cmd_model;
mod cmd_policies;
mod cmd_report;
mod cmd_route;
mod cmd_run;
mod cmd_score;
mod cmd_serve;
mod cmd_suites;
mod cmd_summary;
mod exit;
mod http_args;
mod model_path;
mod results_args;
mod run_args;

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
    /// Run a benchmark: suites x policies through a backend, stored in Parquet, summarised at the end.
    Run(Box<cmd_run::CliRunArgs>),
    /// Capacity at an SLO: per policy, the highest offered rate (requests/s) whose steady state meets every
    /// condition of --slo (doubling, then bisection; saturated probes flagged, never counted).
    Capacity(Box<cmd_capacity::CliCapacityArgs>),
    /// Fit calibrated exit heads (a per-layer affine map to the last layer, the tuned lens) for early exit and
    /// self-speculation, written beside the model; --report scores them against the logit lens on held-out prompts.
    Calibrate(Box<cmd_calibrate::CalibrateArgs>),
    /// List the policies of a policies file with their parameters.
    Policies(cmd_policies::PoliciesArgs),
    /// List the evaluation suites, their tasks and item counts.
    Suites(cmd_suites::SuitesArgs),
    /// Score predictions made elsewhere (JSONL with `prediction` and `reference`).
    Score(cmd_score::ScoreArgs),
    /// Summary table per policy x suite for a stored run.
    Summary(cmd_summary::SummaryArgs),
    /// Generate a Markdown or HTML report for a stored run.
    Report(cmd_report::ReportArgs),
    /// Check KPIs for a stored run (exit 1 if any fails): the CI gate.
    Check(cmd_check::CheckArgs),
    /// Paired comparison of two policies (or runs) on the samples both have.
    Compare(cmd_compare::CompareArgs),
    /// Routers from stored runs: `ttc route fit` learns which policy to run per suite x prompt length.
    Route(cmd_route::RouteArgs),
    /// Merge a run's Parquet part files into one.
    Compact(cmd_compact::CompactArgs),
    /// Serve an OpenAI-compatible API (chat completions, SSE) over the embedded engine; the policy is chosen by
    /// the request's model name (`smollm2-135m:<policy>`).
    Serve(cmd_serve::ServeArgs),
    /// Serve the results dashboard (runs, policy comparison, trade-offs, distributions, trends, live view).
    Dashboard(cmd_dashboard::DashboardArgs),
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
        Command::Run(a) => cmd_run::run(*a),
        Command::Capacity(a) => cmd_capacity::run(*a),
        Command::Serve(a) => cmd_serve::run(a),
        Command::Dashboard(a) => cmd_dashboard::run(a),
        Command::Calibrate(a) => cmd_calibrate::run(*a),
        Command::Policies(a) => cmd_policies::run(a),
        Command::Suites(a) => cmd_suites::run(a),
        Command::Score(a) => cmd_score::run(a),
        Command::Summary(a) => cmd_summary::run(a),
        Command::Report(a) => cmd_report::run(a),
        Command::Check(a) => cmd_check::run(a),
        Command::Compare(a) => cmd_compare::run(a),
        Command::Route(a) => cmd_route::run(a),
        Command::Compact(a) => cmd_compact::run(a),
    };
    exit::finish(result)
}

/// Parses flags into one command's `Args` struct, as clap does for `ttc <command>` (for tests).
#[cfg(test)]
fn parse_args<T: clap::Args>(argv: &[&str]) -> Result<T, clap::Error> {
    #[derive(Parser)]
    struct Wrap<T: clap::Args> {
        #[command(flatten)]
        args: T,
    }
    Wrap::<T>::try_parse_from(std::iter::once("ttc").chain(argv.iter().copied())).map(|w| w.args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
