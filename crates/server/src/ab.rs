//! Live A/B assignment (`ttc serve --ab baseline=0.5,speculative_decoding=0.5`): each request to the base model
//! is assigned an arm (a policy of the policies file, routers included). With a valid key header (a user or
//! session id) the assignment is a hash of the key, so a key always lands on the same arm; without one, or
//! with a malformed one, it is random with the same weights (never an error: the client did nothing wrong).

use rand::Rng;
use std::sync::Arc;
use ttc_engine::Policy;

/// The header whose value makes an assignment sticky, unless `--ab-key-header` names another.
pub const DEFAULT_KEY_HEADER: &str = "x-ab-key";
/// The response header naming the arm that served a request.
pub const ARM_HEADER: &str = "x-ttc-arm";
/// Longest sticky key used; a longer value is malformed (random assignment).
pub const MAX_KEY_LEN: usize = 256;

/// `name=weight,...` as written on the command line; weights are in (0, 1] and sum to 1.
#[derive(Debug, Clone, PartialEq)]
pub struct AbSpec(pub Vec<(String, f64)>);

impl std::str::FromStr for AbSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<AbSpec, String> {
        let mut arms: Vec<(String, f64)> = Vec::new();
        for part in s.split(',') {
            let (name, w) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not ARM=WEIGHT (e.g. baseline=0.5,speculative_decoding=0.5)"))?;
            let name = name.trim();
            let w: f64 = w.trim().parse().map_err(|_| format!("arm `{name}`: weight `{}` is not a number", w.trim()))?;
            if !(w > 0.0 && w <= 1.0) {
                return Err(format!("arm `{name}`: weight {w} must be in (0, 1]"));
            }
            if arms.iter().any(|(n, _)| n == name) {
                return Err(format!("arm `{name}` is given twice"));
            }
            arms.push((name.to_string(), w));
        }
        let sum: f64 = arms.iter().map(|(_, w)| w).sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(format!("the weights sum to {sum}, not 1"));
        }
        if arms.len() < 2 {
            return Err("an A/B test needs at least two arms".into());
        }
        Ok(AbSpec(arms))
    }
}

/// Assigns requests to arms.
#[derive(Debug, Clone)]
pub struct Assigner {
    /// Each arm's policy and the upper end of its share of [0, 1).
    arms: Vec<(Arc<Policy>, f64)>,
}

/// How a request got its arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    Sticky,
    Random,
}

impl Assigner {
    /// Resolves each arm against the served policies (`baseline` is always served). An unknown arm is an error
    /// naming the arms that exist.
    pub fn new(spec: &AbSpec, policies: &[Policy]) -> Result<Assigner, String> {
        let mut upper = 0.0;
        let mut arms = Vec::new();
        for (name, w) in &spec.0 {
            let policy = match policies.iter().find(|p| &p.name == name) {
                Some(p) => p.clone(),
                None if name == "baseline" => Policy::baseline(),
                None => {
                    let mut known: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
                    if !known.contains(&"baseline") {
                        known.insert(0, "baseline");
                    }
                    return Err(format!("--ab: arm `{name}` is not a served policy (known: {})", known.join(", ")));
                }
            };
            upper += w;
            arms.push((Arc::new(policy), upper));
        }
        // Rounding must not leave a gap at the top.
        if let Some(last) = arms.last_mut() {
            last.1 = 1.0;
        }
        Ok(Assigner { arms })
    }

    /// The arm for a request carrying `key` (the key header's value, if any).
    pub fn assign(&self, key: Option<&[u8]>) -> (Arc<Policy>, Assignment) {
        match key.filter(|k| valid_key(k)) {
            Some(k) => (self.arm_at(unit_hash(k)), Assignment::Sticky),
            None => (self.arm_at(rand::rng().random::<f64>()), Assignment::Random),
        }
    }

    fn arm_at(&self, u: f64) -> Arc<Policy> {
        let i = self.arms.iter().position(|(_, upper)| u < *upper).unwrap_or(self.arms.len() - 1);
        self.arms[i].0.clone()
    }

    pub fn arm_names(&self) -> Vec<&str> {
        self.arms.iter().map(|(p, _)| p.name.as_str()).collect()
    }
}

/// A usable sticky key: 1..=256 visible ASCII characters (what a user or session id looks like).
fn valid_key(k: &[u8]) -> bool {
    !k.is_empty() && k.len() <= MAX_KEY_LEN && k.iter().all(|b| b.is_ascii_graphic())
}

/// The key hashed to a point of [0, 1): FNV-1a (stable across builds and machines, unlike std's SipHash keys),
/// then the splitmix64 finalizer so that similar keys spread evenly.
fn unit_hash(k: &[u8]) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in k {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assigner(spec: &str) -> Assigner {
        let spec: AbSpec = spec.parse().unwrap();
        let spec_policy = ttc_engine::Policy::new("spec", ttc_engine::Algorithm::SpeculativeNgram(ttc_engine::policy::NgramParams {
            lookahead_tokens: 4,
            max_ngram: 3,
            min_ngram: 1,
        }));
        Assigner::new(&spec, &[spec_policy]).unwrap()
    }

    /// The two-sided 99% binomial interval for n draws at p, by the normal approximation (z = 2.5758).
    fn interval(n: usize, p: f64) -> (f64, f64) {
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        (n as f64 * p - 2.5758 * sd, n as f64 * p + 2.5758 * sd)
    }

    #[test]
    fn random_and_keyed_assignment_match_the_split_within_the_99_percent_interval() {
        let a = assigner("baseline=0.3,spec=0.7");
        let n = 2000;
        let (lo, hi) = interval(n, 0.3);
        let random = (0..n).filter(|_| a.assign(None).0.name == "baseline").count() as f64;
        assert!((lo..=hi).contains(&random), "random: {random} of {n} not in [{lo:.0}, {hi:.0}]");
        // 2,000 distinct users: the hash spreads them with the same split.
        let keyed = (0..n).filter(|i| a.assign(Some(format!("user-{i}").as_bytes())).0.name == "baseline").count() as f64;
        assert!((lo..=hi).contains(&keyed), "keyed: {keyed} of {n} not in [{lo:.0}, {hi:.0}]");
    }

    #[test]
    fn a_sticky_key_always_lands_on_the_same_arm_and_a_malformed_one_is_random() {
        let a = assigner("baseline=0.5,spec=0.5");
        for i in 0..50 {
            let key = format!("session-{i}");
            let (first, how) = a.assign(Some(key.as_bytes()));
            assert_eq!(how, Assignment::Sticky);
            for _ in 0..20 {
                assert_eq!(a.assign(Some(key.as_bytes())).0.name, first.name);
            }
        }
        let long = vec![b'k'; MAX_KEY_LEN + 1];
        for bad in [&b""[..], b"has space", b"tab\t", "caf\u{e9}".as_bytes(), &long] {
            assert_eq!(a.assign(Some(bad)).1, Assignment::Random, "{bad:?}");
        }
        // A malformed key is not stuck to one arm: both show up.
        let arms: std::collections::HashSet<String> = (0..200).map(|_| a.assign(Some(b"has space")).0.name.clone()).collect();
        assert_eq!(arms.len(), 2);
    }

    #[test]
    fn bad_specs_name_the_problem() {
        let e = |s: &str| s.parse::<AbSpec>().unwrap_err();
        assert_eq!(e("baseline=0.5,spec=0.4"), "the weights sum to 0.9, not 1");
        assert!(e("baseline=0.5,spec").contains("`spec` is not ARM=WEIGHT"));
        assert!(e("baseline=x,spec=1").contains("weight `x` is not a number"));
        assert!(e("baseline=0,spec=1").contains("must be in (0, 1]"));
        assert!(e("baseline=1").contains("at least two arms"));
        assert!(e("a=0.5,a=0.5").contains("given twice"));
        let spec: AbSpec = "baseline=0.5,fast=0.5".parse().unwrap();
        let err = Assigner::new(&spec, &[]).unwrap_err();
        assert_eq!(err, "--ab: arm `fast` is not a served policy (known: baseline)");
    }
}
