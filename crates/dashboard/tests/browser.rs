//! End to end in a real browser: headless Chromium driven over WebDriver (chromedriver + fantoccini).
//!
//! The page loads from a fixture results directory written with ttc-results' writer; the comparison table
//! must show the values the store computes, the scatter plot must be drawn, and a record appended by a
//! writer during the test must appear in the live view without a reload. A screenshot is saved under the
//! target directory. Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian `chromium chromium-driver`,
//! installed by scripts/ci-system-deps.sh); override the paths with TTC_CHROMIUM / TTC_CHROMEDRIVER.

mod common;

use fantoccini::{Client, ClientBuilder, Locator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use ttc_results::analysis::{summarize, AnalysisConfig};
use ttc_results::{RecordSink, ResultsStore};

const WAIT: Duration = Duration::from_secs(20);

fn binary(env: &str, default: &str) -> PathBuf {
    let path = PathBuf::from(std::env::var(env).unwrap_or_else(|_| default.to_string()));
    assert!(
        path.is_file(),
        "{} not found: the browser test needs Chromium and chromedriver. Install them with \
         `bash scripts/ci-system-deps.sh` (Debian packages chromium chromium-driver; CI runs it), or set {env}.",
        path.display()
    );
    path
}

/// chromedriver, killed when the test ends (also on failure).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_driver(chromedriver: &Path) -> (Driver, String) {
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
    let driver = Driver(child);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return (driver, format!("http://127.0.0.1:{port}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on port {port} within 10 s");
}

async fn browser(webdriver: &str, chromium: &Path, profile: &Path) -> Client {
    let caps = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1400,2200", format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let serde_json::Value::Object(caps) = caps else { unreachable!() };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector).capabilities(caps).connect(webdriver).await.expect("starting headless Chromium via chromedriver")
}

async fn serve(dir: &Path) -> String {
    let mut state = ttc_dashboard::app_state(dir, None, None).unwrap();
    state.poll = Duration::from_millis(200);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(ttc_dashboard::serve_state(listener, state));
    url
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap()
}

/// Waits until `css` matches `n` elements.
async fn wait_count(c: &Client, css: &str, n: usize) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got = c.find_all(Locator::Css(css)).await.unwrap().len();
        if got == n {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{css}: {got} elements, expected {n}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the element's text is `want` (the page updates asynchronously).
async fn wait_text(c: &Client, css: &str, want: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got = text(c, css).await;
        if got == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{css}: still `{got}`, expected `{want}`");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let chromium = binary("TTC_CHROMIUM", "/usr/bin/chromium");
    let chromedriver = binary("TTC_CHROMEDRIVER", "/usr/bin/chromedriver");
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    // A run still in progress: 180 records of 6 policies x 3 suites, manifest `running`.
    let mut records = common::records("e2e", 180, 11);
    // Early exit replayed against the full model: a fidelity value on each of its requests.
    for (i, r) in records.iter_mut().filter(|r| r.policy == "early_exit").enumerate() {
        r.fidelity.top1 = Some([0.5, 0.75, 1.0][i % 3]);
    }
    {
        let store = ResultsStore::create(&results).unwrap();
        let mut w = store.start_run(common::meta("e2e", "2025-03-01T12:00:00Z", Some(200)), common::opts(30)).unwrap();
        for r in &records {
            w.push(r.clone()).unwrap();
        }
        w.flush().unwrap();
    }
    let expected = summarize(&records, &AnalysisConfig::default());

    let url = serve(&results).await;
    let (_driver, webdriver) = start_driver(&chromedriver).await;
    let c = browser(&webdriver, &chromium, &tmp.path().join("profile")).await;
    c.goto(&url).await.unwrap();
    c.wait().at_most(WAIT).for_element(Locator::Css("body[data-ready='1']")).await.expect("page did not finish loading");

    // The comparison table shows the store's numbers, formatted as the page formats them.
    for g in &expected.groups {
        let row = format!("#compare-table tr[data-policy='{}'][data-suite='{}']", g.policy, g.suite);
        let e2e = c.find(Locator::Css(&format!("{row} td[data-col='e2e_p95']"))).await.unwrap();
        let p95 = g.e2e_s.p95.unwrap();
        assert_eq!(e2e.attr("data-value").await.unwrap().unwrap().parse::<f64>().unwrap(), p95, "{row}");
        assert_eq!(e2e.text().await.unwrap(), format!("{:.1}", p95 * 1000.0), "{row}");
        assert_eq!(text(&c, &format!("{row} td[data-col='n']")).await, g.n.to_string());
        let q = &g.quality["rouge_l"];
        assert_eq!(text(&c, &format!("{row} td[data-col='quality']")).await, format!("{:.3} [{:.3}, {:.3}]", q.value, q.lo, q.hi));
        let tput = text(&c, &format!("{row} td[data-col='output_tok_s']")).await;
        assert_eq!(tput, format!("{:.1}", g.output_tok_s.unwrap()));
    }
    // Fidelity, every suite pooled: one row per policy that has it, the store's interval.
    assert_eq!(expected.fidelity.len(), 1);
    let f = &expected.fidelity[0];
    let top1 = &f.metrics["fidelity_top1"];
    wait_count(&c, "#fidelity-table tbody tr", 1).await;
    assert_eq!(text(&c, "#fidelity-table tbody tr td:nth-child(1)").await, "early_exit");
    assert_eq!(text(&c, "#fidelity-table tbody tr td:nth-child(4)").await, format!("{:.3} [{:.3}, {:.3}]", top1.value, top1.lo, top1.hi));
    // KPI colouring: the default p95 latency KPI (< 2 s) passes for these fast synthetic policies.
    let coloured = c.find_all(Locator::Css("#compare-table td.pass, #compare-table td.fail")).await.unwrap();
    assert!(!coloured.is_empty(), "no KPI colours in the comparison table");

    // The scatter: one point per policy of the first suite, the store's Pareto-optimal ones marked, the
    // frontier drawn; with every suite selected, one point per policy x suite.
    let first_suite = expected.groups.iter().map(|g| g.suite.as_str()).min().unwrap();
    let in_suite: Vec<_> = expected.groups.iter().filter(|g| g.suite == first_suite).collect();
    let points = c.find_all(Locator::Css("#scatter svg circle.point")).await.unwrap();
    assert_eq!(points.len(), in_suite.len());
    for p in &points {
        assert_eq!(p.attr("data-suite").await.unwrap().as_deref(), Some(first_suite));
    }
    let mut pareto = Vec::new();
    for p in c.find_all(Locator::Css("#scatter svg circle.point.pareto")).await.unwrap() {
        pareto.push(p.attr("data-policy").await.unwrap().unwrap());
    }
    pareto.sort();
    let want: Vec<String> = in_suite.iter().filter(|g| g.pareto_optimal).map(|g| g.policy.clone()).collect();
    assert_eq!(pareto, want, "Pareto-optimal policies of {first_suite}");
    assert!(!c.find_all(Locator::Css("#scatter svg path.frontier")).await.unwrap().is_empty());
    c.find(Locator::Css("#tradeoff-suite")).await.unwrap().select_by_value("").await.unwrap();
    wait_count(&c, "#scatter svg circle.point", expected.groups.len()).await;
    assert_eq!(c.find_all(Locator::Css("#cdf-e2e svg polyline.cdf")).await.unwrap().len(), 6);

    // Live: the live view follows the run; a record appended by a writer appears without a reload.
    c.wait().at_most(WAIT).for_element(Locator::Css("#live-table tbody tr")).await.unwrap();
    assert_eq!(text(&c, "#live-done").await, "180 / 200");
    c.execute("window.__noReload = 42; return null;", vec![]).await.unwrap();
    let dir = results.clone();
    let appended = common::extra_record("e2e", "baseline", "jsonl", "browser-live-1");
    let prediction = appended.prediction.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = common::resume(&dir, "e2e");
        w.push(appended).unwrap();
        w.flush().unwrap();
    })
    .await
    .unwrap();
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#live-table tr[data-sample='browser-live-1']"))
        .await
        .expect("the appended record did not appear in the live view");
    let still = c.execute("return window.__noReload;", vec![]).await.unwrap();
    assert_eq!(still, serde_json::json!(42), "the page was reloaded");
    wait_text(&c, "#live-done", "181 / 200").await;

    // Drill-down of the new request: prediction vs reference.
    c.find(Locator::Css("#live-table tr[data-sample='browser-live-1']")).await.unwrap().click().await.unwrap();
    c.wait().at_most(WAIT).for_element(Locator::Css("#drill:not([hidden])")).await.unwrap();
    wait_text(&c, "#drill-prediction", &prediction).await;
    assert_eq!(text(&c, "#drill-reference").await, "the answer");
    c.find(Locator::Css("#drill-close")).await.unwrap().click().await.unwrap();

    let shot = c.screenshot().await.unwrap();
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-e2e.png");
    std::fs::write(&path, &shot).unwrap();
    println!("screenshot: {}", path.display());
    c.execute("document.querySelector('#tradeoffs').scrollIntoView(); return null;", vec![]).await.unwrap();
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-e2e-charts.png");
    std::fs::write(&path, c.screenshot().await.unwrap()).unwrap();
    println!("screenshot: {}", path.display());

    // An empty results directory: the empty state explains what to do.
    let empty_url = serve(&tmp.path().join("no-results-here")).await;
    c.goto(&empty_url).await.unwrap();
    c.wait().at_most(WAIT).for_element(Locator::Css("body[data-ready='1']")).await.unwrap();
    assert!(c.find(Locator::Css("#empty:not([hidden])")).await.is_ok(), "empty state not shown");
    assert!(text(&c, "#empty-hint").await.contains("does not exist yet"));
    c.close().await.unwrap();
}
