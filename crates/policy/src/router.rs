//! `algorithm: router`: ordered rules over a request's features, each naming a policy defined above the router in
//! the same file; the first rule whose conditions all hold picks the policy, else `default` does
//! (docs/policies.md "router").
//!
//! ```yaml
//! - name: routed
//!   algorithm: router
//!   params:
//!     rules:
//!       - when: {ngram_repetition: ">= 0.3"}          # repetitive prompt: n-gram drafts get accepted
//!         policy: speculative_ngram
//!       - when: {suite: worfbench, prompt_tokens: "< 900"}
//!         policy: early_exit_confidence
//!     default: baseline
//! ```

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

use crate::policy::Policy;

/// What a rule can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Feature {
    /// Prompt tokens after the chat template.
    PromptTokens,
    /// Share of the prompt's token trigrams that occurred earlier in the prompt ([`ngram_repetition`]).
    NgramRepetition,
    /// Entropy (nats) of the full model's first next-token distribution (costs one extra prompt prefill).
    FirstEntropy,
    /// The sample's suite (`crmarena`, `worfbench`, ...).
    Suite,
    /// The sample's task tag within its suite.
    Task,
}

impl Feature {
    pub const NAMES: [&'static str; 5] = ["prompt_tokens", "ngram_repetition", "first_entropy", "suite", "task"];

    pub fn name(self) -> &'static str {
        match self {
            Feature::PromptTokens => "prompt_tokens",
            Feature::NgramRepetition => "ngram_repetition",
            Feature::FirstEntropy => "first_entropy",
            Feature::Suite => "suite",
            Feature::Task => "task",
        }
    }

    fn from_name(s: &str) -> Option<Feature> {
        Some(match s {
            "prompt_tokens" => Feature::PromptTokens,
            "ngram_repetition" => Feature::NgramRepetition,
            "first_entropy" => Feature::FirstEntropy,
            "suite" => Feature::Suite,
            "task" => Feature::Task,
            _ => return None,
        })
    }

    fn is_tag(self) -> bool {
        matches!(self, Feature::Suite | Feature::Task)
    }
}

/// A test on one feature: numeric bounds (`">= 0.3"`, `">= 100, < 900"`) or a set of tags (`crmarena`,
/// `[crmarena, worfbench]`).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Bounds(Vec<(Cmp, f64)>),
    OneOf(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn text(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
    fn holds(self, x: f64, bound: f64) -> bool {
        match self {
            Cmp::Lt => x < bound,
            Cmp::Le => x <= bound,
            Cmp::Gt => x > bound,
            Cmp::Ge => x >= bound,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Condition::Bounds(b) => {
                let parts: Vec<String> = b.iter().map(|(c, v)| format!("{} {v}", c.text())).collect();
                f.write_str(&parts.join(", "))
            }
            Condition::OneOf(tags) => f.write_str(&tags.join("|")),
        }
    }
}

/// Parses `">= 0.3"` or `">= 100, < 900"`.
fn parse_bounds(text: &str) -> Result<Vec<(Cmp, f64)>, String> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let p = part.trim();
        let (cmp, rest) = [("<=", Cmp::Le), (">=", Cmp::Ge), ("<", Cmp::Lt), (">", Cmp::Gt)]
            .iter()
            .find_map(|(op, c)| p.strip_prefix(op).map(|r| (*c, r)))
            .ok_or_else(|| format!("`{p}` is not a comparison (write e.g. \">= 0.3\" or \">= 100, < 900\")"))?;
        let v: f64 = rest.trim().parse().map_err(|_| format!("`{}` in `{p}` is not a number", rest.trim()))?;
        if !v.is_finite() {
            return Err(format!("`{p}`: the bound must be finite"));
        }
        out.push((cmp, v));
    }
    Ok(out)
}

fn parse_condition(feature: Feature, v: &serde_json::Value) -> Result<Condition, String> {
    use serde_json::Value;
    if feature.is_tag() {
        let tags = match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) if !a.is_empty() => a
                .iter()
                .map(|t| t.as_str().map(str::to_string).ok_or_else(|| format!("`{t}` is not a tag name")))
                .collect::<Result<_, _>>()?,
            other => return Err(format!("expected a tag name or a non-empty list of them, got `{other}`")),
        };
        return Ok(Condition::OneOf(tags));
    }
    match v {
        Value::String(s) => parse_bounds(s).map(Condition::Bounds),
        other => Err(format!("expected a comparison in quotes such as \">= 0.3\", got `{other}`")),
    }
}

/// One rule: every condition must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub when: Vec<(Feature, Condition)>,
    pub policy: String,
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct When<'a>(&'a [(Feature, Condition)]);
        impl Serialize for When<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (f, c) in self.0 {
                    match c {
                        Condition::OneOf(t) if t.len() == 1 => m.serialize_entry(f.name(), &t[0])?,
                        Condition::OneOf(t) => m.serialize_entry(f.name(), t)?,
                        Condition::Bounds(_) => m.serialize_entry(f.name(), &c.to_string())?,
                    }
                }
                m.end()
            }
        }
        let mut st = s.serialize_struct("Rule", 2)?;
        st.serialize_field("when", &When(&self.when))?;
        st.serialize_field("policy", &self.policy)?;
        st.end()
    }
}

/// A router's params. `targets` holds the policies its rules name, resolved when the policies file is read.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterParams {
    pub rules: Vec<Rule>,
    pub default: String,
    pub targets: BTreeMap<String, Policy>,
}

impl Serialize for RouterParams {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("RouterParams", 2)?;
        st.serialize_field("rules", &self.rules)?;
        st.serialize_field("default", &self.default)?;
        st.end()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenRule {
    #[serde(default)]
    when: BTreeMap<String, serde_json::Value>,
    policy: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenRouter {
    #[serde(default)]
    rules: Vec<WrittenRule>,
    default: String,
}

/// The request's tags a rule can test (the runner knows them; `ttc serve` has none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTags {
    pub suite: Option<String>,
    pub task: Option<String>,
}

/// Everything a rule can read about one request. `first_entropy` is None unless a rule reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    pub prompt_tokens: u32,
    pub ngram_repetition: f64,
    pub first_entropy: Option<f64>,
    pub tags: RouteTags,
}

impl Features {
    /// The numeric features of a prompt; the entropy is the caller's (it needs the model).
    pub fn of_prompt(prompt: &[u32], tags: RouteTags) -> Features {
        Features { prompt_tokens: prompt.len() as u32, ngram_repetition: ngram_repetition(prompt), first_entropy: None, tags }
    }
}

/// The n of [`ngram_repetition`]: prompt-lookup drafting matches up to 3 tokens by default (`max_ngram: 3`).
pub const REPETITION_N: usize = 3;

/// Share of the prompt's token trigrams that already occurred earlier in the prompt, in [0, 1] (0 for prompts
/// shorter than 4 tokens). A repetitive prompt is what prompt-lookup drafting copies from (Saxena 2023), so
/// this is a cheap predictor of its acceptance.
pub fn ngram_repetition(tokens: &[u32]) -> f64 {
    let n = REPETITION_N;
    if tokens.len() <= n {
        return 0.0;
    }
    let mut seen = std::collections::HashSet::new();
    let mut repeated = 0usize;
    let windows = tokens.windows(n);
    let total = windows.len();
    for w in windows {
        if !seen.insert(w) {
            repeated += 1;
        }
    }
    repeated as f64 / total as f64
}

impl RouterParams {
    /// Parses and checks a router's params as written (the named policies are resolved later, against the file).
    pub(crate) fn from_written(params: &BTreeMap<String, serde_json::Value>) -> Result<RouterParams, String> {
        let w: WrittenRouter = crate::algorithm::typed(params)?;
        let mut rules = Vec::with_capacity(w.rules.len());
        for (i, r) in w.rules.into_iter().enumerate() {
            if r.when.is_empty() {
                return Err(format!("params.rules[{i}].when: a rule needs at least one condition (use `default` for the fallback)"));
            }
            let mut when = Vec::new();
            for (name, v) in &r.when {
                let feature = Feature::from_name(name).ok_or_else(|| {
                    format!("params.rules[{i}].when.{name}: unknown feature `{name}` (known: {})", Feature::NAMES.join(", "))
                })?;
                let c = parse_condition(feature, v).map_err(|m| format!("params.rules[{i}].when.{name}: {m}"))?;
                when.push((feature, c));
            }
            rules.push(Rule { when, policy: r.policy });
        }
        Ok(RouterParams { rules, default: w.default, targets: BTreeMap::new() })
    }

    /// Every policy name the router refers to, with the key path it is written at.
    pub fn named_policies(&self) -> Vec<(String, &str)> {
        let mut out: Vec<(String, &str)> =
            self.rules.iter().enumerate().map(|(i, r)| (format!("params.rules[{i}].policy"), r.policy.as_str())).collect();
        out.push(("params.default".into(), self.default.as_str()));
        out
    }

    /// Whether any rule tests `feature` (the first-step entropy costs a prefill, so it is computed only then).
    pub fn reads(&self, feature: Feature) -> bool {
        self.rules.iter().any(|r| r.when.iter().any(|(f, _)| *f == feature))
    }

    /// The policy name for a request and what chose it (`rules[i]` or `default`).
    pub fn choose(&self, f: &Features) -> (&str, String) {
        for (i, r) in self.rules.iter().enumerate() {
            if r.when.iter().all(|(feat, c)| holds(*feat, c, f)) {
                return (&r.policy, format!("rules[{i}]"));
            }
        }
        (&self.default, "default".into())
    }

    /// The resolved policy a name refers to.
    pub fn target(&self, name: &str) -> Option<&Policy> {
        self.targets.get(name)
    }
}

fn holds(feature: Feature, c: &Condition, f: &Features) -> bool {
    let number = match feature {
        Feature::PromptTokens => Some(f.prompt_tokens as f64),
        Feature::NgramRepetition => Some(f.ngram_repetition),
        Feature::FirstEntropy => f.first_entropy,
        Feature::Suite | Feature::Task => None,
    };
    match c {
        Condition::Bounds(b) => number.is_some_and(|x| b.iter().all(|(cmp, v)| cmp.holds(x, *v))),
        Condition::OneOf(tags) => {
            let tag = if feature == Feature::Suite { &f.tags.suite } else { &f.tags.task };
            tag.as_ref().is_some_and(|t| tags.iter().any(|x| x == t))
        }
    }
}
