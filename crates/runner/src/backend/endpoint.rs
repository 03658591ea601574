//! Backend URLs: the request URL built from a base URL, and the one redaction used wherever a URL is printed
//! or stored (records, manifest, errors, logs, `--dry-run`). A base URL may carry credentials in its
//! userinfo (`https://user:pass@host/v1`) or its query (`?token=...`, Azure's `?api-key=...`); those must
//! reach the server but never a record, a log line or the dashboard.

use reqwest::Url;

/// What stands in for a redacted userinfo or query value.
pub const MASK: &str = "***";

/// Secrets shorter than this are not searched for in free text: masking every `1` of a message because of
/// `?v=1` would garble it, and so short a value is not a credential.
const MIN_SCRUB_LEN: usize = 4;

/// `{base}/chat/completions`: the path is appended to the base URL's path, and its query (a token, an API
/// version) stays after the path where the server looks for it. The fragment is never sent.
pub fn chat_completions_url(base: &Url) -> Url {
    let mut u = base.clone();
    let path = format!("{}/chat/completions", u.path().trim_end_matches('/'));
    u.set_path(&path);
    u.set_fragment(None);
    u
}

/// The URL with its userinfo and each query value replaced by [`MASK`] (query keys stay: they say what was
/// configured), without fragment, and without a trailing slash when it has no query.
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    if !u.username().is_empty() || u.password().is_some() {
        let _ = u.set_password(None);
        let _ = u.set_username(MASK);
    }
    if u.query().is_some() {
        let pairs: Vec<(String, bool)> = u.query_pairs().map(|(k, v)| (k.into_owned(), v.is_empty())).collect();
        if pairs.is_empty() {
            u.set_query(None);
        } else {
            let mut q = u.query_pairs_mut();
            q.clear();
            for (k, empty) in &pairs {
                q.append_pair(k, if *empty { "" } else { MASK });
            }
        }
    }
    u.set_fragment(None);
    let s = u.to_string();
    if u.query().is_none() {
        s.trim_end_matches('/').to_string()
    } else {
        s
    }
}

/// [`redact`] for text that should be a URL but may not parse: then everything between `://` and an `@`
/// of the authority, and everything from the first `?` or `#`, is masked.
pub fn redact_str(text: &str) -> String {
    if let Ok(u) = Url::parse(text) {
        return redact(&u);
    }
    let cut = text.find(['?', '#']).unwrap_or(text.len());
    let (head, tail) = text.split_at(cut);
    let mut out = match head.find("://") {
        Some(i) => {
            let rest = &head[i + 3..];
            let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
            match authority.rfind('@') {
                Some(at) => format!("{}{MASK}@{}", &head[..i + 3], &rest[at + 1..]),
                None => head.to_string(),
            }
        }
        None => head.to_string(),
    };
    if !tail.is_empty() {
        out.push_str(&tail[..1]);
        out.push_str(MASK);
    }
    out
}

/// The secret parts of one base URL (userinfo, query values; as written and percent-decoded), to mask in
/// text the server sends back, which may echo the request URL or the token.
#[derive(Debug, Clone, Default)]
pub struct Secrets(Vec<String>);

impl Secrets {
    pub fn of(url: &Url) -> Secrets {
        let mut v = vec![url.username().to_string(), url.password().unwrap_or_default().to_string()];
        for (_, value) in url.query_pairs() {
            v.push(value.into_owned());
        }
        if let Some(q) = url.query() {
            v.extend(q.split('&').filter_map(|kv| kv.split_once('=')).map(|(_, value)| value.to_string()));
        }
        let decoded: Vec<String> = v.iter().filter_map(|s| percent_decode(s)).collect();
        v.extend(decoded);
        v.retain(|s| s.chars().count() >= MIN_SCRUB_LEN);
        // Longest first, so a secret containing another is masked whole.
        v.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        v.dedup();
        Secrets(v)
    }

    /// `text` with every occurrence of a secret replaced by [`MASK`].
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.0 {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }
}

/// The percent-decoded form of `s` when it differs and is UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let decoded = Url::parse(&format!("x:/?v={s}")).ok()?.query_pairs().next()?.1.into_owned();
    (decoded != s).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn chat_url_joins_the_path_and_keeps_the_query_after_it() {
        let cases = [
            ("http://h:8080/v1", "http://h:8080/v1/chat/completions"),
            ("http://h:8080/v1/", "http://h:8080/v1/chat/completions"),
            ("http://h", "http://h/chat/completions"),
            ("https://h/openai/v1?token=abc&api-version=2", "https://h/openai/v1/chat/completions?token=abc&api-version=2"),
            ("https://u:p@h/v1/?token=abc#frag", "https://u:p@h/v1/chat/completions?token=abc"),
        ];
        for (base, want) in cases {
            assert_eq!(chat_completions_url(&url(base)).as_str(), want, "{base}");
        }
    }

    #[test]
    fn redact_masks_userinfo_and_query_values() {
        let cases = [
            ("https://api.example.com/v1/", "https://api.example.com/v1"),
            ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"),
            ("https://user:secret@api.example.com/v1/?key=abc", "https://***@api.example.com/v1/?key=***"),
            ("https://user@h/v1", "https://***@h/v1"),
            ("https://:pw@h/v1", "https://***@h/v1"),
            ("https://h/v1/chat/completions?token=s3cr3t&flag", "https://h/v1/chat/completions?token=***&flag="),
            ("https://h/v1#tok=1", "https://h/v1"),
        ];
        for (raw, want) in cases {
            assert_eq!(redact(&url(raw)), want, "{raw}");
        }
    }

    #[test]
    fn redact_str_masks_what_does_not_parse() {
        assert_eq!(redact_str("https://u:p@h/v1?token=x"), "https://***@h/v1?token=***");
        assert_eq!(redact_str("htp//u:p@h:99999/v1?token=x"), "htp//u:p@h:99999/v1?***");
        assert_eq!(redact_str("http://u:p@h:99999/v1?token=x"), "http://***@h:99999/v1?***");
        assert_eq!(redact_str("ftp://h/x#frag"), "ftp://h/x");
        assert_eq!(redact_str("not a url"), "not a url");
    }

    #[test]
    fn secrets_are_scrubbed_from_free_text_raw_and_decoded() {
        let s = Secrets::of(&url("https://alice:pa%20ss@h/v1?token=s3cr3t%2Bx&v=1"));
        let text = "401 for https://alice:pa%20ss@h/v1?token=s3cr3t%2Bx&v=1: bad token s3cr3t+x (user alice, pa ss)";
        assert_eq!(s.scrub(text), "401 for https://***:***@h/v1?token=***&v=1: bad token *** (user ***, ***)");
    }
}
