//! Token ids pinned against llama.cpp's tokenizer for SmolLM2 (engine.md §7.4 and llama-tokenize output).

mod common;
use ttc_engine::{ChatMessage, WeightFormat};

fn ids(text: &str) -> Vec<u32> {
    common::engine(WeightFormat::Q8_0).tokenizer.encode(text).unwrap()
}

#[test]
fn pinned_ids_match_llama_cpp() {
    assert_eq!(ids("Hello world"), vec![19556, 905]);
    assert_eq!(
        ids("<|im_start|>user\nWhat is 12345 + 678?<|im_end|>\n"),
        vec![1, 4093, 198, 1780, 314, 216, 33, 34, 35, 36, 37, 1232, 216, 38, 39, 40, 47, 2, 198]
    );
    assert_eq!(ids("I'll pay $1,000.50 tomorrow"), vec![57, 3060, 2290, 1885, 33, 28, 32, 32, 32, 30, 37, 32, 13759]);
}

#[test]
fn more_pinned_ids() {
    // Non-ASCII, code and whitespace runs; ids from llama.cpp's `llama-tokenize` on the same GGUF.
    for (text, expected) in common_cases() {
        assert_eq!(ids(text), expected, "text {text:?}");
    }
}

fn common_cases() -> Vec<(&'static str, Vec<u32>)> {
    include!("data/tokenizer_cases.rs")
}

#[test]
fn decoding_round_trips() {
    let tok = &common::engine(WeightFormat::Q8_0).tokenizer;
    for text in [
        "Hello world",
        "Grüße aus Köln — 東京 🚀",
        "fn main() {\n    println!(\"{}\", 42);\n}\n",
        "  leading and trailing  ",
        "Case #00123: refund $45.99 for order ORD-7781",
    ] {
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids, false), text);
    }
}

#[test]
fn special_tokens_are_single_ids() {
    assert_eq!(ids("<|im_start|>"), vec![1]);
    assert_eq!(ids("<|im_end|>"), vec![2]);
    assert_eq!(ids("<|endoftext|>"), vec![0]);
}

#[test]
fn chat_template_renders_chatml_with_default_system_prompt() {
    let e = common::engine(WeightFormat::Q8_0);
    let text = e.chat.render(&[ChatMessage::new("user", "Hi")], true).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let with_system =
        e.chat.render(&[ChatMessage::new("system", "Be brief."), ChatMessage::new("user", "Hi")], false).unwrap();
    assert_eq!(with_system, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
}
