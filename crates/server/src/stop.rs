//! Stop strings applied to a token stream, with the engine's semantics (`ttc_engine::engine::Emitter`): the
//! output ends right before the first occurrence of any stop string, and the token that completed the match
//! is counted in `completion_tokens`. Text that might be the start of a stop string is held back until the
//! next piece decides, so a streaming client never sees part of a stop string (what vLLM and the OpenAI API
//! do) and the streamed text always equals the non-streamed text.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopStep {
    /// No stop yet: this text can be sent.
    Emit(String),
    /// A stop string matched: send this last text, then finish.
    Stopped(String),
}

#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Everything generated so far (up to the stop, once matched).
    text: String,
    /// Bytes of `text` already released; a match can only start at or after it.
    released: usize,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> StopMatcher {
        StopMatcher { stops: stops.into_iter().filter(|s| !s.is_empty()).collect(), ..Default::default() }
    }

    /// Feed the next decoded piece.
    pub fn push(&mut self, piece: &str) -> StopStep {
        self.text.push_str(piece);
        if self.stops.is_empty() {
            return StopStep::Emit(self.release(self.text.len()));
        }
        let pending = &self.text[self.released..];
        if let Some(pos) = self.stops.iter().filter_map(|s| pending.find(s.as_str())).min() {
            let end = self.released + pos;
            let out = self.release(end);
            self.text.truncate(end);
            return StopStep::Stopped(out);
        }
        let hold = self.partial_suffix(pending);
        StopStep::Emit(self.release(self.text.len() - hold))
    }

    /// The generation ended without a stop: release what was held back.
    pub fn flush(&mut self) -> String {
        self.release(self.text.len())
    }

    /// The whole output so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Length of the longest suffix of `pending` that is a proper prefix of a stop string.
    fn partial_suffix(&self, pending: &str) -> usize {
        let mut best = 0;
        for s in &self.stops {
            for k in (1..s.len().min(pending.len() + 1)).rev() {
                if k <= best {
                    break;
                }
                if s.is_char_boundary(k) && pending.ends_with(&s[..k]) {
                    best = k;
                    break;
                }
            }
        }
        best
    }

    fn release(&mut self, end: usize) -> String {
        let out = self.text[self.released..end].to_string();
        self.released = end;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds pieces; returns what was emitted per piece and whether it stopped.
    fn run(stops: &[&str], pieces: &[&str]) -> (Vec<String>, bool, String) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = Vec::new();
        for p in pieces {
            match m.push(p) {
                StopStep::Emit(t) => out.push(t),
                StopStep::Stopped(t) => {
                    out.push(t);
                    return (out, true, m.text().to_string());
                }
            }
        }
        out.push(m.flush());
        (out, false, m.text().to_string())
    }

    #[test]
    fn no_stops_passes_through() {
        assert_eq!(run(&[], &["a", "b"]), (vec!["a".into(), "b".into(), "".into()], false, "ab".into()));
    }

    #[test]
    fn stop_inside_one_piece_cuts_before_it() {
        let (out, stopped, text) = run(&["END"], &["hello ", "worENDx", "never"]);
        assert_eq!((out.concat(), stopped, text), ("hello wor".into(), true, "hello wor".into()));
    }

    #[test]
    fn stop_split_across_pieces_is_held_back_then_dropped() {
        let (out, stopped, _) = run(&["\n\n"], &["one", "\n", "\n", "two"]);
        assert_eq!(out, vec!["one", "", ""]);
        assert!(stopped);
    }

    #[test]
    fn held_back_prefix_is_released_when_it_does_not_complete() {
        let (out, stopped, text) = run(&["abc"], &["xa", "b", "d"]);
        assert_eq!(out, vec!["x", "", "abd", ""]);
        assert_eq!((stopped, text.as_str()), (false, "xabd"));
        // Held back at the end of the generation: flushed.
        let (out, stopped, _) = run(&["abc"], &["xab"]);
        assert_eq!((out, stopped), (vec!["x".to_string(), "ab".to_string()], false));
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let (out, stopped, _) = run(&["zz", "b"], &["a", "bzz"]);
        assert_eq!((out.concat(), stopped), ("a".into(), true));
    }

    #[test]
    fn multibyte_stop_strings_are_matched_on_char_boundaries() {
        let (out, stopped, _) = run(&["é!"], &["caf", "é", "!"]);
        assert_eq!((out.concat(), stopped), ("caf".into(), true));
        let (out, stopped, _) = run(&["éa"], &["é", "b"]);
        assert_eq!((out.concat(), stopped), ("éb".into(), false));
    }
}
