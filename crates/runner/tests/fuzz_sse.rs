//! Property-based fuzzing of the SSE parser (`backend::sse`), the first code that touches a remote server's bytes.
//!
//! - Streams generated from a model (fields, comments, colon-less lines, blank lines, BOM, LF/CRLF/CR endings,
//!   a last event without its blank line) parse to the events the model says, whole or cut anywhere.
//! - Any bytes (random, from an alphabet dense in CR/LF/BOM/colons, or a mutated valid stream) never panic,
//!   and cutting them into reads anywhere never changes the events.

#[path = "../../../tools/fuzz_support.rs"]
mod fuzz_support;

use fuzz_support::{edits, fuzz_config, mutate_bytes};
use proptest::prelude::*;
use proptest::sample::Index;
use ttc_runner::backend::sse::{SseEvent, SseParser};

/// Feeds `input` cut at `cuts` (positions, any order, repeats give empty reads), then finishes.
fn parse_cut(input: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    cuts.sort_unstable();
    let mut p = SseParser::new();
    let mut out = Vec::new();
    let mut start = 0;
    for c in cuts.into_iter().chain([input.len()]) {
        p.feed(&input[start..c], |e| out.push(e));
        start = c;
    }
    p.finish(|e| out.push(e));
    out
}

fn parse_whole(input: &[u8]) -> Vec<SseEvent> {
    parse_cut(input, &[])
}

#[derive(Debug, Clone)]
enum Line {
    /// `name:value` or `name: value`.
    Field { name: String, space: bool, value: String },
    /// A line without a colon: the field `name` with an empty value.
    Bare(String),
    /// `:text`
    Comment(String),
    /// An empty line: dispatch.
    Blank,
}

#[derive(Debug, Clone)]
struct Stream {
    bom: bool,
    lines: Vec<(Line, &'static str)>,
    /// Drop the last line's line end (a stream cut after its last field).
    open_end: bool,
}

impl Stream {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.bom {
            out.extend_from_slice(b"\xEF\xBB\xBF");
        }
        let mut prev_end = "";
        for (k, (line, end)) in self.lines.iter().enumerate() {
            match line {
                Line::Field { name, space, value } => {
                    out.extend_from_slice(name.as_bytes());
                    out.push(b':');
                    if *space {
                        out.push(b' ');
                    }
                    out.extend_from_slice(value.as_bytes());
                }
                Line::Bare(name) => out.extend_from_slice(name.as_bytes()),
                Line::Comment(text) => {
                    out.push(b':');
                    out.extend_from_slice(text.as_bytes());
                }
                Line::Blank => {}
            }
            // CR then an empty LF-terminated line would read as one CRLF: write the empty line's end as CRLF.
            let end = if matches!(line, Line::Blank) && prev_end == "\r" && *end == "\n" { "\r\n" } else { end };
            if !(self.open_end && k + 1 == self.lines.len()) {
                out.extend_from_slice(end.as_bytes());
            }
            prev_end = end;
        }
        out
    }

    /// The events the spec (and the parser's documented end-of-stream rule) give for this stream.
    fn expected(&self) -> Vec<SseEvent> {
        #[derive(Default)]
        struct St {
            data: String,
            has_data: bool,
            event: Option<String>,
            id: Option<String>,
            retry: Option<u64>,
            out: Vec<SseEvent>,
        }
        impl St {
            fn field(&mut self, name: &str, value: &str) {
                match name {
                    "data" => {
                        self.data.push_str(value);
                        self.data.push('\n');
                        self.has_data = true;
                    }
                    "event" => self.event = Some(value.to_string()),
                    "id" if !value.contains('\0') => self.id = Some(value.to_string()),
                    "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => self.retry = value.parse().ok(),
                    _ => {}
                }
            }
            fn dispatch(&mut self) {
                let event = self.event.take();
                if std::mem::take(&mut self.has_data) {
                    let mut data = std::mem::take(&mut self.data);
                    data.pop();
                    self.out.push(SseEvent { event, data, id: self.id.clone(), retry_ms: self.retry.take() });
                } else {
                    self.data.clear();
                }
            }
        }
        let mut st = St::default();
        for (line, _) in &self.lines {
            match line {
                Line::Field { name, space, value } => {
                    let v = if *space { value.as_str() } else { value.strip_prefix(' ').unwrap_or(value) };
                    st.field(name, v);
                }
                Line::Bare(name) => st.field(name, ""),
                Line::Comment(_) => {}
                Line::Blank => st.dispatch(),
            }
        }
        st.dispatch();
        st.out
    }
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["data", "event", "id", "retry"]).prop_map(str::to_string),
        1 => "[^\r\n:\u{FEFF}]{1,6}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[^\r\n]{0,12}",
        1 => "[0-9]{1,25}",
        1 => r#"\{"choices":\[\{"delta":\{"content":"[a-z ]{0,6}"\}\}\]\}"#,
        1 => Just("[DONE]".to_string()),
        1 => " {0,3}[a\u{0}é世]{0,3}",
    ]
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        6 => (field_name(), any::<bool>(), value()).prop_map(|(name, space, value)| Line::Field { name, space, value }),
        1 => field_name().prop_map(Line::Bare),
        1 => "[^\r\n]{0,8}".prop_map(Line::Comment),
        3 => Just(Line::Blank),
    ]
}

fn stream() -> impl Strategy<Value = Stream> {
    let end = prop::sample::select(vec!["\n", "\r\n", "\r"]);
    (any::<bool>(), prop::collection::vec((line(), end), 0..24), any::<bool>())
        .prop_map(|(bom, lines, open_end)| Stream { bom, lines, open_end })
}

const SSE_SNIPPETS: &[&str] = &["\r", "\n", "\r\n", "\n\n", ":", ": ", " ", "data", "data:", "id:\0", "retry: 9", "\u{FEFF}", "\u{FFFD}"];

/// Bytes anything could send: random, SSE-dense (line ends, BOM pieces, colons, field letters), or a valid
/// stream with bytes replaced, inserted and removed.
fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    let dense = prop::sample::select(vec![b'\r', b'\n', b':', b' ', b'd', b'a', b't', b'i', 0xEF, 0xBB, 0xBF, 0, 0xFF]);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        prop::collection::vec(dense, 0..120),
        (stream(), edits(SSE_SNIPPETS)).prop_map(|(s, e)| mutate_bytes(&s.bytes(), &e)),
    ]
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn generated_streams_give_the_modelled_events_however_cut(s in stream(), cuts in prop::collection::vec(any::<Index>(), 0..12)) {
        let bytes = s.bytes();
        let want = s.expected();
        prop_assert_eq!(&parse_whole(&bytes), &want);
        let cuts: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        prop_assert_eq!(&parse_cut(&bytes, &cuts), &want, "cut at {:?}", cuts);
    }

    #[test]
    fn any_bytes_never_panic_and_cutting_never_changes_events(bytes in any_bytes(), cuts in prop::collection::vec(any::<Index>(), 0..12)) {
        let whole = parse_whole(&bytes);
        let cuts: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        prop_assert_eq!(&parse_cut(&bytes, &cuts), &whole, "cut at {:?}", cuts);
        let every: Vec<usize> = (0..=bytes.len()).collect();
        prop_assert_eq!(&parse_cut(&bytes, &every), &whole, "byte by byte");
    }
}

/// Found by the fuzzer: a read holding only the LF of a CRLF left the parser expecting that LF still, so the
/// LF of the next read, a blank line, was swallowed and two events merged into one.
#[test]
fn regression_lf_alone_after_cr_does_not_swallow_the_next_blank_line() {
    let input = b"data: a\r\n\ndata: b\n\n";
    let want = vec![
        SseEvent { data: "a".into(), ..SseEvent::default() },
        SseEvent { data: "b".into(), ..SseEvent::default() },
    ];
    assert_eq!(parse_whole(input), want);
    // Reads "data: a\r" | "\n" | "\ndata: b\n\n".
    assert_eq!(parse_cut(input, &[8, 9]), want);
}
