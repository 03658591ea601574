//! Chat template from GGUF metadata (`tokenizer.chat_template`), rendered with minijinja so any GGUF model's
//! own template works. Falls back to ChatML when a file carries none.

use crate::error::{EngineError, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        ChatMessage { role: role.to_string(), content: content.into() }
    }
}

const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    pub fn new(template: Option<String>, bos_token: String, eos_token: String) -> Result<ChatTemplate> {
        let mut env = minijinja::Environment::new();
        // HF templates call Python string methods (`.strip()`, `.startswith()` ...) and raise_exception.
        env.set_unknown_method_callback(minijinja_contrib_pycompat);
        env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        let source = template.unwrap_or_else(|| CHATML.to_string());
        env.add_template_owned("chat", source).map_err(|e| EngineError::ChatTemplate(e.to_string()))?;
        Ok(ChatTemplate { env, bos_token, eos_token })
    }

    /// The prompt text for `messages`, ending with the assistant turn's opening when `add_generation_prompt`.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self.env.get_template("chat").map_err(|e| EngineError::ChatTemplate(e.to_string()))?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(|e| EngineError::ChatTemplate(e.to_string()))
    }
}

/// The few Python string methods HF chat templates use, for minijinja.
fn minijinja_contrib_pycompat(
    _state: &minijinja::State,
    value: &minijinja::Value,
    method: &str,
    args: &[minijinja::Value],
) -> std::result::Result<minijinja::Value, minijinja::Error> {
    use minijinja::{Error, ErrorKind, Value};
    let Some(s) = value.as_str() else {
        return Err(Error::new(ErrorKind::UnknownMethod, format!("no method `{method}`")));
    };
    let arg = |i: usize| args.get(i).and_then(|a| a.as_str()).map(|a| a.to_string());
    Ok(match method {
        "strip" => Value::from(match arg(0) {
            Some(c) => s.trim_matches(|x| c.contains(x)).to_string(),
            None => s.trim().to_string(),
        }),
        "lstrip" => Value::from(s.trim_start().to_string()),
        "rstrip" => Value::from(s.trim_end().to_string()),
        "startswith" => Value::from(arg(0).map(|p| s.starts_with(&p)).unwrap_or(false)),
        "endswith" => Value::from(arg(0).map(|p| s.ends_with(&p)).unwrap_or(false)),
        "upper" => Value::from(s.to_uppercase()),
        "lower" => Value::from(s.to_lowercase()),
        "split" => Value::from(match arg(0) {
            Some(sep) => s.split(sep.as_str()).map(|x| x.to_string()).collect::<Vec<_>>(),
            None => s.split_whitespace().map(|x| x.to_string()).collect::<Vec<_>>(),
        }),
        _ => return Err(Error::new(ErrorKind::UnknownMethod, format!("no string method `{method}`"))),
    })
}
