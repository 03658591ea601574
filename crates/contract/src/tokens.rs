//! Token counting when the backend does not report exact counts. The lead's GGUF tokenizer implements
//! [`TokenCounter`]; without one, output is counted in content chunks (one token per chunk, as guidellm's
//! fallback does) and the record's `token_count_source` stays null to say so.

use crate::ChatMessage;

pub trait TokenCounter: Send + Sync {
    /// Tokens of the prompt as the model would see it (chat template applied), if the counter can tell.
    fn count_prompt(&self, messages: &[ChatMessage]) -> Option<u32>;
    /// Tokens of generated text.
    fn count_text(&self, text: &str) -> u32;
}

/// A crude counter for tests: whitespace-separated words.
pub struct WordCounter;

impl TokenCounter for WordCounter {
    fn count_prompt(&self, messages: &[ChatMessage]) -> Option<u32> {
        Some(messages.iter().map(|m| self.count_text(&m.content)).sum())
    }
    fn count_text(&self, text: &str) -> u32 {
        text.split_whitespace().count() as u32
    }
}
