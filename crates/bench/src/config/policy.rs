//! Policies as the runner sees them: a name, an algorithm with its parameters (interpreted by the embedded
//! engine), and optional `remote` settings used by HTTP backends. A list may be written as a YAML sequence
//! of policies or as a mapping `name: {algorithm, params, ...}`; a policies file holds such a list, either at
//! top level or under a `policies:` key.

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::file::NonZero;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    pub name: String,
    #[serde(default = "baseline_algorithm")]
    pub algorithm: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Algorithm parameters, passed to the engine untouched.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// How an HTTP backend runs this policy.
    #[serde(default)]
    pub remote: Option<RemoteParams>,
    /// Requests of this policy in flight at once, overriding `load.concurrency`. A policy with its own
    /// concurrency is measured in phases of its own, one per suite (batching policies need several requests at
    /// once to batch, and must not share the machine with other policies' requests while they do).
    #[serde(default)]
    pub concurrency: Option<NonZero>,
}

fn baseline_algorithm() -> String {
    "baseline".to_string()
}

impl PolicySpec {
    pub fn baseline() -> PolicySpec {
        PolicySpec {
            name: "baseline".into(),
            algorithm: baseline_algorithm(),
            description: None,
            params: BTreeMap::new(),
            remote: None,
            concurrency: None,
        }
    }

    /// `params` as compact JSON with sorted keys (what `Record::params_json` stores).
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

/// The body of a policy written as a mapping entry (`name:` is the key).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    #[serde(default = "baseline_algorithm")]
    algorithm: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    remote: Option<RemoteParams>,
    #[serde(default)]
    concurrency: Option<NonZero>,
}

/// A list of policies, from a YAML sequence or a name-keyed mapping.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct PolicyList(pub Vec<PolicySpec>);

impl PolicyList {
    pub fn baseline() -> PolicyList {
        PolicyList(vec![PolicySpec::baseline()])
    }
}

fn list_from_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<PolicyList, A::Error> {
    Vec::<PolicySpec>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(PolicyList)
}

fn list_from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<PolicyList, A::Error> {
    let mut out = Vec::new();
    while let Some(name) = map.next_key::<String>()? {
        let b: PolicyBody = map.next_value()?;
        out.push(PolicySpec {
            name,
            algorithm: b.algorithm,
            description: b.description,
            params: b.params,
            remote: b.remote,
            concurrency: b.concurrency,
        });
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

/// A policies file: a list at top level, or a document with a `policies:` key (other top-level keys are
/// rejected, so a typo cannot silently drop policies).
pub struct PolicyFile(pub PolicyList);

impl<'de> Deserialize<'de> for PolicyFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PolicyFile;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of policies or a document with a `policies:` key")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<PolicyFile, A::Error> {
                list_from_seq(seq).map(PolicyFile)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PolicyFile, A::Error> {
                let mut list = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "policies" {
                        list = Some(map.next_value::<PolicyList>()?);
                    } else {
                        return Err(de::Error::unknown_field(&key, &["policies"]));
                    }
                }
                list.map(PolicyFile).ok_or_else(|| de::Error::missing_field("policies"))
            }
        }
        d.deserialize_any(V)
    }
}
