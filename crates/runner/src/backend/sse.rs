//! Incremental Server-Sent Events parser, following the WHATWG HTML spec's "event stream interpretation"
//! (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
//!
//! - lines end with CRLF, LF or CR (a CRLF split across two network reads is one line end);
//! - a leading UTF-8 BOM is skipped; lines starting with `:` are comments (keep-alives);
//! - `field: value` with one optional space after the colon; a line without a colon is a field with an
//!   empty value; `data` lines are joined with `\n`; `event`, `id` (ignored if it contains NUL) and `retry`
//!   (ASCII digits only) set the event's metadata; unknown fields are ignored;
//! - an empty line dispatches the event, unless no `data` line was seen (then the buffers are reset only).
//!
//! The parser works on bytes and only decodes whole lines, so a multi-byte UTF-8 character split between
//! two reads is never broken. Invalid UTF-8 is replaced (U+FFFD), as the spec's decoder does.

use memchr::memchr2;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event` field; None means the default type `message`.
    pub event: Option<String>,
    /// The `data` lines joined with `\n`.
    pub data: String,
    /// The last event id seen so far in the stream (the spec keeps it across events).
    pub id: Option<String>,
    /// A reconnection time the server asked for, in milliseconds.
    pub retry_ms: Option<u64>,
}

#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The previous read ended with CR: a LF at the start of the next read belongs to that line end.
    after_cr: bool,
    /// Still at the very start of the stream (BOM check).
    at_start: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    last_id: Option<String>,
    retry_ms: Option<u64>,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser { at_start: true, ..Default::default() }
    }

    /// Feeds bytes as they arrive; `on_event` is called for every event they complete.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_event: impl FnMut(SseEvent)) {
        // Only the first byte after the CR can complete the CRLF; an empty read decides nothing.
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        if self.at_start {
            // The BOM may itself arrive split; only decide once 3 bytes (or a line end) are there.
            self.line.extend_from_slice(bytes);
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let n = self.line.len().min(3);
            if self.line[..n] != BOM[..n] {
                self.at_start = false;
            } else if self.line.len() >= 3 {
                self.line.drain(..3);
                self.at_start = false;
            } else {
                return;
            }
            let pending = std::mem::take(&mut self.line);
            self.feed_lines(&pending, &mut on_event);
            return;
        }
        self.feed_lines(bytes, &mut on_event);
    }

    fn feed_lines(&mut self, mut bytes: &[u8], on_event: &mut impl FnMut(SseEvent)) {
        while let Some(i) = memchr2(b'\n', b'\r', bytes) {
            let line_end_is_cr = bytes[i] == b'\r';
            if self.line.is_empty() {
                self.process_line(&bytes[..i], on_event);
            } else {
                self.line.extend_from_slice(&bytes[..i]);
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, on_event);
                self.line = line;
                self.line.clear();
            }
            bytes = &bytes[i + 1..];
            if line_end_is_cr {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
        }
        self.line.extend_from_slice(bytes);
    }

    fn process_line(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent)) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            return; // comment / keep-alive
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                self.data.push_str(&String::from_utf8_lossy(value));
                self.data.push('\n');
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            // An id containing NUL is ignored; retry must be ASCII digits only.
            b"id" if !value.contains(&0) => self.last_id = Some(String::from_utf8_lossy(value).into_owned()),
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry_ms = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent)) {
        let event = self.event.take();
        if !self.has_data {
            self.data.clear();
            return;
        }
        self.has_data = false;
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the trailing "\n" every data line added
        on_event(SseEvent { event, data, id: self.last_id.clone(), retry_ms: self.retry_ms.take() });
    }

    /// Called at end of stream. The spec discards an event that was not terminated by a blank line; like
    /// vLLM's client we accept it when it has data (servers that close right after `data: [DONE]\n`).
    pub fn finish(&mut self, mut on_event: impl FnMut(SseEvent)) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut on_event);
        }
        self.dispatch(&mut on_event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |e| out.push(e));
        }
        p.finish(|e| out.push(e));
        out
    }

    fn datas(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    /// Every way of splitting the input in two reads gives the same events as one read.
    fn assert_split_invariant(input: &[u8]) -> Vec<SseEvent> {
        let whole = parse_all(&[input]);
        for i in 0..=input.len() {
            assert_eq!(parse_all(&[&input[..i], &input[i..]]), whole, "split at {i} of {:?}", input);
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(parse_all(&bytes), whole, "byte by byte");
        whole
    }

    #[test]
    fn simple_events_and_done() {
        let ev = assert_split_invariant(b"data: {\"a\":1}\n\ndata: [DONE]\n\n");
        assert_eq!(datas(&ev), vec!["{\"a\":1}", "[DONE]"]);
        assert_eq!(ev[0].event, None);
    }

    #[test]
    fn multi_line_data_joined_with_newline() {
        let ev = assert_split_invariant(b"data: first\ndata:second\ndata\ndata:  two spaces\n\n");
        // "data" alone is an empty data line; only one leading space is removed.
        assert_eq!(datas(&ev), vec!["first\nsecond\n\n two spaces"]);
    }

    #[test]
    fn crlf_and_cr_line_endings() {
        let ev = assert_split_invariant(b"data: a\r\n\r\ndata: b\r\rdata: c\n\r\n");
        assert_eq!(datas(&ev), vec!["a", "b", "c"]);
    }

    #[test]
    fn comments_and_keepalives_are_ignored() {
        let ev = assert_split_invariant(b": keep-alive\n\n:\n\ndata: x\n: inside\n\n: ping\r\n\r\n");
        assert_eq!(datas(&ev), vec!["x"]);
    }

    #[test]
    fn event_id_retry_fields() {
        let ev = assert_split_invariant(b"event: error\nid: 7\nretry: 1500\ndata: boom\n\ndata: next\n\n");
        assert_eq!(ev[0].event.as_deref(), Some("error"));
        assert_eq!(ev[0].id.as_deref(), Some("7"));
        assert_eq!(ev[0].retry_ms, Some(1500));
        // The event type resets after dispatch; the last event id persists (spec).
        assert_eq!(ev[1].event, None);
        assert_eq!(ev[1].id.as_deref(), Some("7"));
        assert_eq!(ev[1].retry_ms, None);
    }

    #[test]
    fn invalid_retry_and_nul_id_are_ignored() {
        let ev = assert_split_invariant(b"retry: 12a\nid: a\0b\ndata: x\n\n");
        assert_eq!(ev[0].retry_ms, None);
        assert_eq!(ev[0].id, None);
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        let ev = assert_split_invariant(b"event: ping\n\nid: 3\n\ndata: real\n\n");
        assert_eq!(datas(&ev), vec!["real"]);
        assert_eq!(ev[0].event, None, "event type of the data-less block must not leak");
        assert_eq!(ev[0].id.as_deref(), Some("3"));
    }

    #[test]
    fn unknown_fields_and_colon_less_lines() {
        let ev = assert_split_invariant(b"foo: bar\nbaz\ndata: ok\n\n");
        assert_eq!(datas(&ev), vec!["ok"]);
    }

    #[test]
    fn bom_is_stripped_only_at_start() {
        let ev = assert_split_invariant(b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n");
        // The second BOM is part of a field name, so that line is an unknown field.
        assert_eq!(datas(&ev), vec!["a"]);
    }

    #[test]
    fn utf8_split_across_reads_survives() {
        let input = "data: héllo 世界\n\n".as_bytes();
        let ev = assert_split_invariant(input);
        assert_eq!(datas(&ev), vec!["héllo 世界"]);
    }

    #[test]
    fn trailing_event_without_blank_line_is_accepted_at_finish() {
        let ev = parse_all(&[b"data: a\n\ndata: [DONE]\n"]);
        assert_eq!(datas(&ev), vec!["a", "[DONE]"]);
        let ev = parse_all(&[b"data: a\n\ndata: [DONE]"]);
        assert_eq!(datas(&ev), vec!["a", "[DONE]"]);
    }

    #[test]
    fn colon_in_value_is_kept() {
        let ev = assert_split_invariant(b"data: {\"url\":\"http://x\"}\n\n");
        assert_eq!(datas(&ev), vec!["{\"url\":\"http://x\"}"]);
    }
}
