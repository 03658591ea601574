//! `ttc dashboard`: the results dashboard (`ttc_dashboard`).

use crate::exit::Outcome;
use crate::http_args::HttpArgs;
use clap::Args;
use std::path::PathBuf;
use ttc_dashboard::DashboardOptions;

/// Serve the web dashboard over a results directory: runs, policy comparison with KPIs, latency-quality
/// trade-offs, distributions, trends across runs, a live view of the running benchmark, request drill-down.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct DashboardArgs {
    /// Results directory (one `run_id=<id>/` folder of Parquet parts per run). It may not exist yet: the
    /// dashboard then shows an empty state and picks up runs as they appear. Or an object store,
    /// `s3://bucket/prefix` (AWS_* variables as for `ttc summary`).
    #[arg(long, env = "TTC_RESULTS", default_value = "results")]
    pub results: PathBuf,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    /// Address to bind. The default serves this machine only; 0.0.0.0 exposes the results to the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// KPI file for the pass/fail colours. Default: configs/kpis.yaml if present, else the built-in KPIs.
    #[arg(long)]
    pub kpis: Option<PathBuf>,
    #[command(flatten)]
    pub http: HttpArgs,
}

impl DashboardArgs {
    pub fn options(self) -> DashboardOptions {
        DashboardOptions { results: self.results, port: self.port, host: self.host, kpis: self.kpis, http: self.http.options() }
    }
}

pub fn run(a: DashboardArgs) -> anyhow::Result<Outcome> {
    ttc_dashboard::run(a.options())?;
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_args;
    use std::time::Duration;

    #[test]
    fn defaults_bind_locally_and_match_the_library() {
        let a: DashboardArgs = parse_args(&[]).unwrap();
        assert_eq!(DashboardOptions { results: "results".into(), ..a.options() }, DashboardOptions::default());
        let a: DashboardArgs = parse_args(&["--results", "r2", "--port", "9000", "--host", "0.0.0.0"]).unwrap();
        assert_eq!((a.results.to_str(), a.port, a.host.as_str()), (Some("r2"), 9000, "0.0.0.0"));
        assert!(parse_args::<DashboardArgs>(&["--port", "70000"]).is_err());
        let a: DashboardArgs = parse_args(&["--header-timeout", "0.5", "--max-connections", "4"]).unwrap();
        assert_eq!((a.http.header_timeout, a.http.max_connections), (Duration::from_millis(500), 4));
    }
}
