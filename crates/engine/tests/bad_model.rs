//! Bad model files give one clear error naming the problem and the fix, never a panic.

mod common;
use std::io::Write;
use ttc_engine::{Engine, EngineError, WeightFormat};

fn load(path: &std::path::Path) -> EngineError {
    match Engine::load(path, WeightFormat::Q8_0) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_file_says_how_to_get_the_model() {
    let e = load(std::path::Path::new("/definitely/not/here.gguf"));
    assert!(matches!(e, EngineError::ModelNotFound { .. }));
    assert!(e.to_string().contains("ttc model pull"), "{e}");
}

#[test]
fn non_gguf_file_is_rejected() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"{\"this is\": \"json, not a model\"}").unwrap();
    let e = load(f.path());
    assert!(matches!(e, EngineError::NotGguf { .. }), "{e}");
    assert!(e.to_string().contains("not a GGUF file"), "{e}");
}

#[test]
fn truncated_gguf_is_reported_as_corrupt() {
    // A real header followed by too few tensor bytes, as a cut download leaves it.
    let real = std::fs::read(common::model_path()).unwrap();
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(&real[..real.len() / 3]).unwrap();
    let e = load(f.path());
    assert!(matches!(e, EngineError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("truncated or corrupt"), "{e}");
}

#[test]
fn non_llama_architecture_is_rejected() {
    use candle_core::quantized::gguf_file::{self, Value};
    use candle_core::quantized::{GgmlDType, QTensor};
    let t = QTensor::quantize(&candle_core::Tensor::zeros((4, 32), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(), GgmlDType::F32).unwrap();
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let arch = Value::String("gpt_neox".into());
    gguf_file::write(f.as_file_mut(), &[("general.architecture", &arch)], &[("token_embd.weight", &t)]).unwrap();
    let e = load(f.path());
    assert!(matches!(e, EngineError::UnsupportedArch { .. }), "{e}");
    assert!(e.to_string().contains("gpt_neox"), "{e}");
}
