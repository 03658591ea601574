//! A policy: a name, a typed [`Algorithm`], and the run-level settings that travel with it (`remote` for HTTP
//! backends, `concurrency` for the runner). One parser reads every documented form:
//!
//! - a YAML sequence of policies (`- name: x\n  algorithm: ...`),
//! - a mapping from name to body (`x: {algorithm: ..., params: ...}`),
//! - a policies file: either of the above at top level, or under a `policies:` key.
//!
//! The algorithm and its params are validated while parsing, so a typo or an out-of-range value is an error
//! located at the policy's entry (`file:line:col`) in every command that reads policies.

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::algorithm::{algorithm_from_parts, Algorithm};

/// A validated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub description: Option<String>,
    pub algorithm: Algorithm,
    /// The params as written (records store these, so a record shows what the user asked for).
    pub params: BTreeMap<String, serde_json::Value>,
    /// How an HTTP backend runs this policy.
    pub remote: Option<RemoteParams>,
    /// Requests of this policy in flight at once, overriding the run's `load.concurrency`. A policy with its
    /// own concurrency is measured in phases of its own (batching policies need several requests at once to
    /// batch, and must not share the machine with other policies' requests while they do).
    pub concurrency: Option<u64>,
}

impl Policy {
    /// A policy built in code: its params are the algorithm's full parameter set.
    pub fn new(name: impl Into<String>, algorithm: Algorithm) -> Policy {
        let params = serde_json::from_str(&algorithm.params_json()).unwrap_or_default();
        Policy { name: name.into(), description: None, algorithm, params, remote: None, concurrency: None }
    }

    pub fn baseline() -> Policy {
        Policy::new("baseline", Algorithm::Baseline)
    }

    /// The algorithm's label (`speculative_ngram`, ...).
    pub fn algorithm_name(&self) -> &'static str {
        self.algorithm.name()
    }

    /// The family this policy belongs to, for grouping in reports.
    pub fn family(&self) -> &'static str {
        self.algorithm.family()
    }

    /// The params as written, compact JSON with sorted keys (what records store).
    pub fn params_json(&self) -> String {
        serde_json::to_string(&self.params).unwrap_or_else(|_| "{}".into())
    }
}

/// Request settings an HTTP backend uses for a policy; each overrides the run's `generation` value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteParams {
    /// Model name to request instead of `backend.model` (e.g. a policy-tagged model of `ttc serve`).
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// Extra top-level fields of the request body, passed through as written.
    #[serde(default)]
    pub extra_body: BTreeMap<String, serde_json::Value>,
}

/// The shape a policy is written and serialized in (the config hash covers this form).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    #[serde(default)]
    name: Option<String>,
    #[serde(default = "baseline_name")]
    algorithm: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, deserialize_with = "params_or_null")]
    params: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    remote: Option<RemoteParams>,
    #[serde(default, deserialize_with = "concurrency")]
    concurrency: Option<u64>,
}

fn baseline_name() -> String {
    "baseline".into()
}

/// `params:` left empty in YAML reads as null: the same as no params.
fn params_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, serde_json::Value>, D::Error> {
    Ok(Option::<BTreeMap<String, serde_json::Value>>::deserialize(d)?.unwrap_or_default())
}

fn concurrency<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<u64>::deserialize(d)? {
        Some(0) => Err(de::Error::custom("invalid value 0: expected an integer >= 1")),
        v => Ok(v),
    }
}

impl Written {
    /// `earlier`: the policies defined above this one in the same file (what a router may name).
    fn into_policy<E: de::Error>(self, name: String, earlier: &[Policy]) -> Result<Policy, E> {
        if name.trim().is_empty() || name.contains(|c: char| c.is_whitespace() || c == ',') {
            return Err(E::custom(format!("name: `{name}` must be non-empty, without spaces or commas")));
        }
        let mut algorithm =
            algorithm_from_parts(&self.algorithm, &self.params).map_err(|m| E::custom(format!("policy `{name}`: {m}")))?;
        let targets = resolve_targets(&algorithm, earlier).map_err(|m| E::custom(format!("policy `{name}`: {m}")))?;
        if !targets.is_empty() {
            algorithm.set_targets(targets);
        }
        Ok(Policy {
            name,
            description: self.description,
            algorithm,
            params: self.params,
            remote: self.remote,
            concurrency: self.concurrency,
        })
    }
}

/// The policies a router or adaptive policy names, looked up among those defined above it. A target must decode a
/// request by itself: neither a router nor an adaptive policy (no nesting) nor a batching policy (batching is a
/// scheduler setting).
fn resolve_targets(algorithm: &Algorithm, earlier: &[Policy]) -> Result<BTreeMap<String, Policy>, String> {
    let mut out = BTreeMap::new();
    for (key, name) in algorithm.named_policies() {
        let Some(p) = earlier.iter().find(|p| p.name == name) else {
            let known: Vec<&str> = earlier.iter().map(|p| p.name.as_str()).collect();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            return Err(format!(
                "{key}: unknown policy `{name}` (a {} names policies defined above it in the same file; defined \
                 above: {known})",
                algorithm.name()
            ));
        };
        if matches!(p.algorithm, Algorithm::Router(_) | Algorithm::Adaptive(_) | Algorithm::Batching(_)) {
            return Err(format!(
                "{key}: policy `{name}` is a {} policy; a {} names policies that decode a request by themselves",
                p.algorithm.name(),
                algorithm.name()
            ));
        }
        out.insert(name.to_string(), p.clone());
    }
    Ok(out)
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Written {
            name: Some(self.name.clone()),
            algorithm: self.algorithm.name().to_string(),
            description: self.description.clone(),
            params: self.params.clone(),
            remote: self.remote.clone(),
            concurrency: self.concurrency,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::DeserializeSeed::deserialize(Entry(None, &[]), d)
    }
}

/// A list of policies, from a YAML sequence or a name-keyed mapping. Names are unique.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct PolicyList(pub Vec<Policy>);

impl PolicyList {
    pub fn baseline() -> PolicyList {
        PolicyList(vec![Policy::baseline()])
    }
}

fn push_unique<E: de::Error>(out: &mut Vec<Policy>, p: Policy) -> Result<(), E> {
    if out.iter().any(|q| q.name == p.name) {
        return Err(E::custom(format!("policy `{}`: name: defined twice", p.name)));
    }
    out.push(p);
    Ok(())
}

fn list_from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<PolicyList, A::Error> {
    let mut out = Vec::new();
    while let Some(p) = seq.next_element_seed(Entry(None, &out))? {
        push_unique(&mut out, p)?;
    }
    Ok(PolicyList(out))
}

/// One policy entry. The checks run inside the entry's own mapping, so YAML errors are located at the entry
/// (serde_yaml stamps an error with the position of the innermost mapping it was raised in). `key` is the
/// entry's name in the name-keyed form; the slice holds the policies defined above it.
struct Entry<'a>(Option<String>, &'a [Policy]);

impl<'de> de::DeserializeSeed<'de> for Entry<'_> {
    type Value = Policy;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Policy, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Entry<'_> {
    type Value = Policy;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a policy: {name, algorithm, params, description, remote, concurrency}")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Policy, E> {
        // `name:` with nothing after it in the name-keyed form: a baseline policy.
        let w = Written {
            name: None,
            algorithm: baseline_name(),
            description: None,
            params: BTreeMap::new(),
            remote: None,
            concurrency: None,
        };
        let name = self.0.ok_or_else(|| E::missing_field("name"))?;
        w.into_policy(name, self.1)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<Policy, A::Error> {
        // Most likely a misspelt `policies:` key in front of a list.
        let key = self.0.unwrap_or_default();
        Err(de::Error::custom(format!(
            "`{key}` holds a list, but a policy's body is a mapping {{algorithm, params, ...}} (a list of policies \
             goes under `policies:`)"
        )))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Policy, A::Error> {
        let w = Written::deserialize(de::value::MapAccessDeserializer::new(map))?;
        let name = match (self.0, w.name.clone()) {
            (Some(key), Some(n)) if n != key => {
                return Err(de::Error::custom(format!("policy `{key}`: name: `{n}` differs from its key")))
            }
            (Some(key), _) => key,
            (None, Some(n)) => n,
            (None, None) => return Err(de::Error::missing_field("name")),
        };
        w.into_policy(name, self.1)
    }
}

fn list_from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<PolicyList, A::Error> {
    let mut out = Vec::new();
    while let Some(name) = map.next_key::<String>()? {
        let p = map.next_value_seed(Entry(Some(name), &out))?;
        push_unique(&mut out, p)?;
    }
    Ok(PolicyList(out))
}

impl<'de> Deserialize<'de> for PolicyList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PolicyList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of policies or a mapping from policy name to {algorithm, params}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<PolicyList, A::Error> {
                list_from_seq(seq)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PolicyList, A::Error> {
                list_from_map(map)
            }
        }
        d.deserialize_any(V)
    }
}

/// The run file's `policies:` value: a path to a policies file, or the policies themselves.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PolicySource {
    File(PathBuf),
    Inline(PolicyList),
}

impl<'de> Deserialize<'de> for PolicySource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PolicySource;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path to a policies file, a list of policies, or a mapping name -> policy")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PolicySource, E> {
                Ok(PolicySource::File(PathBuf::from(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<PolicySource, A::Error> {
                list_from_seq(seq).map(PolicySource::Inline)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PolicySource, A::Error> {
                list_from_map(map).map(PolicySource::Inline)
            }
        }
        d.deserialize_any(V)
    }
}

/// A policies file: a list or a name-keyed mapping at top level, or either under a `policies:` key (then no
/// other top-level key is allowed, so a typo cannot silently drop policies).
pub struct PolicyFile(pub PolicyList);

impl<'de> Deserialize<'de> for PolicyFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PolicyFile;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of policies, a mapping name -> policy, or a document with a `policies:` key")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<PolicyFile, A::Error> {
                list_from_seq(seq).map(PolicyFile)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PolicyFile, A::Error> {
                // `policies:` as the only key is the document form; any other first key starts the
                // name-keyed mapping form.
                let mut out = Vec::new();
                let mut document = false;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "policies" && out.is_empty() && !document {
                        document = true;
                        out = map.next_value::<PolicyList>()?.0;
                    } else if document {
                        return Err(de::Error::unknown_field(&key, &["policies"]));
                    } else {
                        let p = map.next_value_seed(Entry(Some(key), &out))?;
                        push_unique(&mut out, p)?;
                    }
                }
                Ok(PolicyFile(PolicyList(out)))
            }
        }
        d.deserialize_any(V)
    }
}
