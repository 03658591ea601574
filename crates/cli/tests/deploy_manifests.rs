//! The Kubernetes manifests of deploy/k8s/: valid against the Kubernetes schemas (kubernetes-validate from PyPI,
//! installed by scripts/test.sh from scripts/test-requirements.txt; strict: an unknown field is an error), and
//! consistent with `ttc run`: an Indexed Job whose shard count is the number of completions, each shard resuming
//! the one run id on the shared results volume, the model fetched by an init container, and arguments the real
//! `ttc run` accepts.

use serde_yaml::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s")
}

fn manifests() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    assert!(v.len() >= 2, "{v:?}");
    v
}

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let python = std::env::var("TTC_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args(["-m", "kubernetes_validate", "--strict", "--quiet"])
        .args(manifests())
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("No module named"), "kubernetes-validate is not installed: pip install -r scripts/test-requirements.txt\n{text}");
    assert!(out.status.success(), "a manifest does not validate:\n{text}");
}

fn job() -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(k8s_dir().join("job.yaml")).unwrap()).unwrap()
}

fn env_of(container: &Value, name: &str) -> String {
    let envs = container["env"].as_sequence().unwrap();
    let e = envs.iter().find(|e| e["name"].as_str() == Some(name)).unwrap_or_else(|| panic!("env {name} missing"));
    e["value"].as_str().unwrap().to_string()
}

#[test]
fn the_job_is_an_indexed_job_of_ttc_shards() {
    let job = job();
    assert_eq!(job["kind"].as_str(), Some("Job"));
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let completions = spec["completions"].as_u64().unwrap();
    assert!(spec["parallelism"].as_u64().unwrap() <= completions);
    assert!(spec["backoffLimitPerIndex"].as_u64().is_some());
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"].as_str(), Some("Never"), "backoffLimitPerIndex needs restartPolicy Never");

    let init = &pod["initContainers"][0];
    let pull: Vec<&str> = init["command"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(&pull[..3], &["ttc", "model", "pull"]);

    let ttc = &pod["containers"][0];
    let script = ttc["args"][0].as_str().unwrap();
    for want in ["ttc run", "--shards \"$SHARDS\"", "--resume \"$RUN_ID\"", "--results /results"] {
        assert!(script.contains(want), "`{want}` not in {script}");
    }
    assert_eq!(env_of(ttc, "SHARDS").parse::<u64>().unwrap(), completions, "--shards must equal completions");
    assert_eq!(env_of(ttc, "TTC_HOME"), env_of(init, "TTC_HOME"), "the init container fills the cache ttc reads");
    let mounts = |c: &Value| -> Vec<String> {
        c["volumeMounts"].as_sequence().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()).collect()
    };
    assert!(mounts(ttc).contains(&"results".to_string()) && mounts(ttc).contains(&"cache".to_string()));
    let claim = pod["volumes"].as_sequence().unwrap().iter().find(|v| v["name"].as_str() == Some("results")).unwrap();
    let pvc: Value =
        serde_yaml::from_str(&std::fs::read_to_string(k8s_dir().join("results-pvc.yaml")).unwrap()).unwrap();
    assert_eq!(claim["persistentVolumeClaim"]["claimName"], pvc["metadata"]["name"]);
    assert_eq!(pvc["spec"]["accessModes"][0].as_str(), Some("ReadWriteMany"), "every shard writes the same volume");
}

/// The container's command line, as the shell expands it for shard 1, is accepted by `ttc run` (dry run).
#[test]
fn the_job_command_line_is_accepted_by_ttc_run() {
    let job = job();
    let ttc = &job["spec"]["template"]["spec"]["containers"][0];
    let script = ttc["args"][0].as_str().unwrap().replace("exec ttc", env!("CARGO_BIN_EXE_ttc"));
    let results = tempfile::tempdir().unwrap();
    let script = script.replace("/results", results.path().to_str().unwrap()) + " --dry-run";
    let out = Command::new("/bin/sh")
        .args(["-c", &script])
        .env("SHARDS", env_of(ttc, "SHARDS"))
        .env("RUN_ID", "k8s-test")
        .env("START_AT", "")
        .env("JOB_COMPLETION_INDEX", "1")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script}\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("shard 1/{}", env_of(ttc, "SHARDS"))), "{stdout}");
}
